"""Core loop figures (issue 2), measured side by side in one process.

    python benchmarks/bench_core.py [--repeats 7] [--sandbox auto|process|inprocess]

1. batch: one cell runs llm_batch of 64 prompts; each sub-call takes 100 ms (an async
   FunctionEngine that sleeps); max_concurrency 16. Ideal: 4 x 100 ms.
2. turn: marginal cost of one more root turn (instant engine, one small cell).
3. fixed: a whole run with one trivial turn (sandbox start to teardown).
4. big: a 100 MB context and a regex search for one line, whole run; host peak memory
   growth (VmHWM after a reset, in a fresh child process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time

from timing import timed

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.sandbox import InProcessSandbox, SubprocessSandbox

FINAL = "```repl\nFINAL('done')\n```"


def make_sandbox(kind: str):
    if kind == "inprocess":
        return InProcessSandbox()
    if kind == "auto":
        return SubprocessSandbox()
    return SubprocessSandbox(isolation=kind)  # type: ignore[call-arg]


def bench_batch(kind: str, repeats: int) -> dict:
    async def slow(messages, model):
        await asyncio.sleep(0.1)
        return "ok"

    code = "r = llm_batch([f'p{i}' for i in range(64)])\nprint(len(r))"

    def once():
        root = ScriptedEngine([f"```repl\n{code}\n```", FINAL])
        agent = RLMAgent(
            root,
            "m",
            sub_engine=FunctionEngine(slow),
            max_concurrency=16,
            sandbox=make_sandbox(kind),
        )
        assert agent.run("q", context="c").trajectory[0].cells[0].result.output == "64\n"

    times = timed(once, repeats)
    med = statistics.median(times)
    return {"median_s": med, "ratio_to_ideal": med / 0.4, "runs": times}


def bench_turns(kind: str, repeats: int) -> dict:
    def run(turns: int) -> float:
        # a different cell each turn: a root repeating one cell is asked to answer early
        replies = [f"```repl\nx = {i}\nx + 1\n```" for i in range(turns)] + [FINAL]
        agent = RLMAgent(
            ScriptedEngine(replies), "m", max_turns=turns + 1, sandbox=make_sandbox(kind)
        )
        t0 = time.perf_counter()
        agent.run("q", context="c")
        return time.perf_counter() - t0

    marginal = []
    for _ in range(repeats):
        short, long = run(1), run(51)
        marginal.append((long - short) / 50)
    return {"median_ms": statistics.median(marginal) * 1000}


def bench_fixed(kind: str, repeats: int) -> dict:
    def once():
        RLMAgent(ScriptedEngine([FINAL]), "m", sandbox=make_sandbox(kind)).run("q", context="c")

    once()  # warm imports
    return {"median_ms": statistics.median(timed(once, repeats)) * 1000}


BIG_CHILD = r"""
import json, sys, time
from rlmagent import RLMAgent, ScriptedEngine
sys.path.insert(0, "benchmarks")
from bench_core import make_sandbox
kind = sys.argv[1]
line = "filler line with nothing to see, just words and more words here....\n"
n = 100_000_000 // len(line)
context = line * (n // 2) + "The secret number is 982451653.\n" + line * (n - n // 2)
def status(key):
    for row in open("/proc/self/status"):
        if row.startswith(key):
            return int(row.split()[1]) * 1024
code = "import re\nm = re.search(r'secret number is (\\d+)', context)\nprint(m.group(1))"
agent = RLMAgent(ScriptedEngine([f"```repl\n{code}\n```", "FINAL(seen)"]), "m",
                 sandbox=make_sandbox(kind))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
t0 = time.perf_counter()
result = agent.run("q", context=context)
wall = time.perf_counter() - t0
assert result.trajectory[0].cells[0].result.output == "982451653\n", result
print(json.dumps({"wall_s": wall, "peak_growth_mb": (status("VmHWM:") - base) / 2**20,
                  "context_mb": len(context) / 2**20}))
"""


def bench_big(kind: str, repeats: int) -> dict:
    rows = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", BIG_CHILD, kind], capture_output=True, text=True, check=True
        )
        rows.append(json.loads(out.stdout))
    return {
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "median_peak_growth_mb": statistics.median(r["peak_growth_mb"] for r in rows),
        "context_mb": rows[0]["context_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sandbox", default="auto")
    args = parser.parse_args()
    report = {
        "sandbox": args.sandbox,
        "batch64_100ms_c16": bench_batch(args.sandbox, args.repeats),
        "marginal_turn": bench_turns(args.sandbox, max(3, args.repeats // 2)),
        "fixed_run": bench_fixed(args.sandbox, args.repeats),
        "context_100mb_regex": bench_big(args.sandbox, max(3, args.repeats // 2)),
    }
    report["batch64_100ms_c16"].pop("runs")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
