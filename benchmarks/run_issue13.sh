#!/usr/bin/env bash
# Issue 13's figures on the embedded model (BENCHMARKS.md, "The local model on the task
# families"): every run one item at a time, results appended to benchmarks/results/
# (a rerun resumes where it stopped), trajectories to $TRACES (default /tmp/b13-traces).
set -euo pipefail
cd "$(dirname "$0")/.."
R=benchmarks/results
TRACES=${TRACES:-/tmp/b13-traces}
COMMON=(--model local:qwen2.5-coder-1.5b --seed 0 --concurrency 1 --overflow-check engine
        --max-tokens 64 --rlm-max-seconds 600 --trace-dir "$TRACES" --quiet)
python benchmarks/heldout_items.py --out "$TRACES/heldout.jsonl"
rlm bench run --task sniah --tokens 8k,32k,128k --n 10 --method rlm "${COMMON[@]}" --out $R/b13b-sniah.jsonl
rlm bench run --task multihop --tokens 32k --n 10 --method rlm "${COMMON[@]}" --out $R/b13b-multihop.jsonl
rlm bench run --items "$TRACES/heldout.jsonl" --method rlm "${COMMON[@]}" --out $R/b13b-heldout.jsonl
rlm bench run --task oolong --tokens 8k --n 10 --method rlm,direct,bm25 "${COMMON[@]}" --out $R/b13b-oolong.jsonl
rlm bench run --task oolong --tokens 32k --n 5 --method rlm,direct,bm25 "${COMMON[@]}" --out $R/b13b-oolong.jsonl
# bm25 overflows the window at its default fill (by the 4-characters-a-token estimate);
# given a smaller window it fits (last, the longest runs of the baselines):
rlm bench run --task oolong --tokens 8k --n 5 --method bm25 --window 6144 "${COMMON[@]}" --out $R/b13b-oolong-bm25-w6k.jsonl
rlm bench run --task oolong --tokens 32k --n 5 --method bm25 --window 6144 "${COMMON[@]}" --out $R/b13b-oolong-bm25-w6k.jsonl
