"""How fast the benchmark tasks are generated (the harness itself, no model).

    python benchmarks/bench_generate.py [--tokens 1m] [--repeat 5] [--tasks sniah oolong ...]

For each task, generates one item of ``--tokens`` estimated tokens ``--repeat`` times
(seeds 0, 1, ...) in this process and prints the median, min and max wall time, the
context size and the generation rate. The target is under 5 s for a 1M-token item.
"""

from __future__ import annotations

import argparse
import statistics
import time

from rlmagent.bench import TASKS, format_tokens, parse_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", default="1m")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    args = parser.parse_args()
    tokens = parse_tokens(args.tokens)
    print(f"{'task':<13} {'size':>5} {'median':>8} {'min':>7} {'max':>7} {'chars':>11} {'MB/s':>6}")
    for task in args.tasks:
        family = TASKS[task]
        times, chars = [], 0
        for seed in range(args.repeat):
            started = time.perf_counter()
            item = family.generate(tokens, seed, 0)
            times.append(time.perf_counter() - started)
            chars = len(item.context)
        median = statistics.median(times)
        print(
            f"{task:<13} {format_tokens(tokens):>5} {median:>7.2f}s {min(times):>6.2f}s "
            f"{max(times):>6.2f}s {chars:>11,} {chars / median / 1e6:>6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
