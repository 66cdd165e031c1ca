"""`rlm demo` on the embedded local model (root and sub), over several seeds.

    python benchmarks/bench_demo_local.py --seeds 0 1 2 3 4

Runs the README's main command once per seed, as a user would (a fresh process each
time, model load included), and prints one line per seed and the totals.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    correct, walls = 0, []
    for seed in args.seeds:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "rlmagent", "demo", "--seed", str(seed), "--json", "--no-log"],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        walls.append(wall)
        try:
            row = json.loads(out.stdout)
        except ValueError:
            print(f"seed {seed}: no result (exit {out.returncode}): {out.stderr[-500:]}")
            continue
        correct += bool(row["correct"])
        print(
            f"seed {seed}: {'correct' if row['correct'] else 'WRONG'} "
            f"answer={row['answer'][:40]!r} expected={row['expected']} turns={row['turns']} "
            f"calls={row['usage']['calls']} run={row['metadata']['elapsed_s']:.1f}s "
            f"process={wall:.1f}s",
            flush=True,
        )
    print(
        f"correct {correct}/{len(args.seeds)}; process wall median "
        f"{statistics.median(walls):.1f}s, total {sum(walls):.1f}s"
    )


if __name__ == "__main__":
    main()
