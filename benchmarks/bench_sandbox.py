"""Sandbox figures (issue 4): start, cell round trip, llm_query round trip, restart.

    python benchmarks/bench_sandbox.py [--repeats 30] [--tier bwrap,landlock,process]
        [--json out.json]

For each tier:

1. probe: the one-time check that the tier works (bubblewrap, Landlock: a real worker
   and one cell; the first SubprocessSandbox use probes bubblewrap, then Landlock).
2. start: ``sandbox.start(context)`` until the worker is ready (a 1,000-character
   context; the work directory, the context file, the launch, the limits).
3. start+cell: the same plus a first trivial cell (the first cell also pays for the
   worker's lazily imported modules).
4. cell: round trip of a trivial cell (``x = 1``) on a warm worker.
5. llm_query (channel): one ``llm_query`` from model code to a host handler that
   answers at once, measured inside the cell over 2,000 calls.
6. llm_query (agent): the same through ``RLMAgent``'s real handler with an instant
   ``FunctionEngine`` sub-model (event loop hop, budget, events included).
7. restart: a cell that kills its worker (``os._exit``) until the fresh worker answered.

Medians of ``--repeats`` runs (p90 in brackets). The load average is printed: other jobs
on the machine inflate every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

from timing import timed

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.sandbox import FunctionSpec, SubprocessSandbox
from rlmagent.sandbox.bwrap import find_bwrap
from rlmagent.sandbox.landlock_tier import LandlockLauncher
from rlmagent.sandbox.subprocess import WORKER, _probe, _run_probe

QUERY = [FunctionSpec("llm_query", "")]
CALLS = 2000
LOOP = (
    "import time\nt0 = time.perf_counter()\nfor _ in range({n}):\n    llm_query('p')\n"
    "print((time.perf_counter() - t0) / {n} * 1e6)"
)


def instant(name: str, params: dict[str, Any]) -> str:
    return "ok"


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[int(0.9 * (len(ordered) - 1))] * 1000,
        "n": len(ordered),
    }


def bench_tier(tier: str, repeats: int) -> dict[str, Any]:
    sandbox = SubprocessSandbox(isolation=tier)
    assert sandbox.isolation == tier
    context = "c" * 1000
    results: dict[str, Any] = {}
    if tier == "bwrap":
        bwrap = find_bwrap()
        assert bwrap is not None
        results["probe"] = stats(timed(lambda: _probe(bwrap, sandbox.python), 5))
    if tier == "landlock":
        launcher = LandlockLauncher(sandbox.python, WORKER)
        results["probe"] = stats(timed(lambda: _run_probe(launcher, "Landlock"), 5))

    def start_only() -> float:
        t0 = time.perf_counter()
        session = sandbox.start(context, instant)
        elapsed = time.perf_counter() - t0
        session.close()  # not timed; one sandbox alive at a time, as in an agent run
        return elapsed

    def start_and_cell() -> float:
        t0 = time.perf_counter()
        session = sandbox.start(context, instant)
        session.execute("1")
        elapsed = time.perf_counter() - t0
        session.close()
        return elapsed

    results["start"] = stats([start_only() for _ in range(repeats)])
    results["start+cell"] = stats([start_and_cell() for _ in range(repeats)])

    session = sandbox.start(context, instant, functions=QUERY)
    try:
        session.execute("x = 1")
        results["cell"] = stats(timed(lambda: session.execute("x = 1"), repeats * 20))
        per_call = [
            float(session.execute(LOOP.format(n=CALLS)).output) / 1e6 for _ in range(repeats)
        ]
        results["llm_query (channel)"] = stats(per_call)
        results["restart"] = stats(
            timed(lambda: session.execute("import os\nos._exit(0)"), repeats)
        )
    finally:
        session.close()

    def agent_run() -> float:
        root = ScriptedEngine([f"```repl\n{LOOP.format(n=CALLS)}\n```", "```repl\nFINAL('x')\n```"])
        agent = RLMAgent(
            root,
            "root",
            sub_engine=FunctionEngine(lambda messages, model: "ok"),
            sandbox=sandbox,
        )
        result = agent.run("q", context=context)
        return float(result.trajectory[0].cells[0].result.output) / 1e6

    results["llm_query (agent)"] = stats([agent_run() for _ in range(max(3, repeats // 5))])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--tier", default="bwrap,landlock,process")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    report: dict[str, Any] = {"loadavg_before": os.getloadavg()}
    for tier in args.tier.split(","):
        report[tier] = bench_tier(tier, args.repeats)
    report["loadavg_after"] = os.getloadavg()
    for tier in args.tier.split(","):
        print(f"\n{tier}")
        for name, figures in report[tier].items():
            print(
                f"  {name:22} median {figures['median_ms']:8.3f} ms   "
                f"p90 {figures['p90_ms']:8.3f} ms   n={figures['n']}"
            )
    print(f"\nload average before {report['loadavg_before']}, after {report['loadavg_after']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
