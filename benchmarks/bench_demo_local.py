"""The shipped demo on the embedded local model (root and sub), over several seeds.

    python benchmarks/bench_demo_local.py --seeds 0 1 2 3 4 [--trace-dir DIR]

Prints one line per seed (correct?, turns, calls, wall time) and the totals.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from rlmagent import RLMAgent
from rlmagent.cli.common import LOCAL_ROOT_TEMPERATURE
from rlmagent.demo import make_demo
from rlmagent.engines import get_engine


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--model", default="local:qwen2.5-coder-1.5b")
    parser.add_argument("--trace-dir", type=Path, default=None)
    args = parser.parse_args()
    root, sub = get_engine(args.model), get_engine(args.model)
    correct, walls = 0, []
    for seed in args.seeds:
        demo = make_demo(seed)
        trace = args.trace_dir / f"demo-{seed}.jsonl" if args.trace_dir else None
        agent = RLMAgent(
            root,
            root.model,
            sub_engine=sub,
            sub_model=sub.model,
            temperature=LOCAL_ROOT_TEMPERATURE,
            trace=trace,
        )
        t0 = time.perf_counter()
        result = agent.run(demo.question, context=demo.context)
        wall = time.perf_counter() - t0
        ok = demo.answer in result.content
        correct += ok
        walls.append(wall)
        print(
            f"seed {seed}: {'OK ' if ok else 'BAD'} answer={result.content[:60]!r} "
            f"expected={demo.answer} turns={result.turns} calls={result.usage.calls} "
            f"wall={wall:.1f}s stop={result.metadata.get('stop_reason')}",
            flush=True,
        )
    print(
        f"correct {correct}/{len(args.seeds)}; wall median {statistics.median(walls):.1f}s, "
        f"total {sum(walls):.1f}s"
    )


if __name__ == "__main__":
    main()
