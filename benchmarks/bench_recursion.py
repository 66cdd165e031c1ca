"""What recursion and budgets cost the host (issue 7).

    python benchmarks/bench_recursion.py [--repeats 5]

1. Depth: a FunctionEngine model splits a list `context` into ``--fanout`` parts with
   ``rlm_batch`` at every level; below ``max_depth`` each part is a child RLM (its own
   sandbox), at the limit a plain sub-call. Wall time for max_depth 1, 2 and 3 with
   ``max_concurrency`` 16 and 2 (child runs at a depth share ``max_concurrency`` slots),
   over the default sandbox. The models answer at once: this is the host's own cost.
2. Budget: one cell's ``llm_batch`` of 1,000 prompts on an instant FunctionEngine, with
   no budget and with ``Budget(max_calls=10_000, max_tokens=10**9)`` (every call
   reserves and settles under the ledger's lock; nothing is refused).
3. Cancellation: a max_depth 2 tree whose root waits on ``rlm_batch`` of two children,
   one in ``time.sleep(60)``, one with an ``llm_batch`` of 3 calls in flight (3
   sandboxes); time from ``task.cancel()`` until ``arun`` has raised, by which point
   every sandbox of the tree is closed.

Medians (min-max) over ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time

from rlmagent import Budget, EventBus, FunctionEngine, RLMAgent
from rlmagent.events import CodeStarted, Event, SubCallStarted

SPLIT = """```repl
n = len(context)
parts = [context[i * n // FANOUT:(i + 1) * n // FANOUT] for i in range(FANOUT)]
answers = rlm_batch([["Sum these numbers.", p] for p in parts])
FINAL(sum(int(a) for a in answers))
```"""


def summing(fanout: int):
    def fn(messages, model):
        if len(messages) == 1:
            return str(sum(json.loads(messages[0]["content"].split("\n\n", 1)[1])))
        return SPLIT.replace("FANOUT", str(fanout))

    return fn


def timed(make, repeats: int) -> tuple[float, float, float, object]:
    make()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = make()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fanout", type=int, default=3)
    args = parser.parse_args()
    numbers = list(range(3**6))
    print("| max_depth | max_concurrency | runs (sandboxes) | engine calls | wall time |")
    print("|----------:|----------------:|-----------------:|-------------:|-----------|")
    for depth in (1, 2, 3):
        for concurrency in (16, 2):
            agent = RLMAgent(
                FunctionEngine(summing(args.fanout)),
                "m",
                max_depth=depth,
                max_concurrency=concurrency,
            )
            med, lo, hi, result = timed(
                lambda a=agent: a.run("Sum.", context=numbers), args.repeats
            )
            assert result.content == str(sum(numbers))
            runs = sum(args.fanout**d for d in range(depth))
            print(
                f"| {depth} | {concurrency} | {runs} | {result.usage.calls} | "
                f"{med:.3f} s ({lo:.3f}-{hi:.3f}) |"
            )
    code = "```repl\nr = llm_batch([str(i) for i in range(1000)])\nprint(len(r))\n```"

    def batch_run(budget):
        replies = iter([code, "FINAL(done)"] * 10)

        def root(messages, model):
            return next(replies) if len(messages) == 2 else "FINAL(done)"

        agent = RLMAgent(
            FunctionEngine(root), "m", sub_engine=FunctionEngine(lambda m, n: "ok"), budget=budget
        )
        return agent.run("q", context="c")

    print()
    print("| llm_batch of 1,000 | wall time |")
    print("|--------------------|-----------|")
    for name, budget in (
        ("no budget", None),
        ("Budget(max_calls=10_000, max_tokens=10**9)", Budget(max_calls=10_000, max_tokens=10**9)),
    ):
        med, lo, hi, result = timed(lambda b=budget: batch_run(b), args.repeats)
        assert result.usage.calls == 1002
        print(f"| {name} | {med:.3f} s ({lo:.3f}-{hi:.3f}) |")

    print()
    print("| cancel a 3-sandbox tree | until arun raised |")
    print("|-------------------------|-------------------|")
    times = [cancel_once() for _ in range(args.repeats)]
    print(
        f"| {args.repeats} runs | {statistics.median(times) * 1000:.0f} ms "
        f"({min(times) * 1000:.0f}-{max(times) * 1000:.0f}) |"
    )


def cancel_once() -> float:
    release = threading.Event()

    def model(messages, name):
        if len(messages) == 1:
            release.wait(30)
            return "late"
        question = messages[1]["content"]
        if "sleepy" in question:
            return "```repl\nimport time\ntime.sleep(60)\n```"
        if "batchy" in question:
            return "```repl\nprint(llm_batch(['x', 'y', 'z']))\n```"
        return "```repl\nprint(rlm_batch([['sleepy', 'a'], ['batchy', 'b']]))\n```"

    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)

    def ready() -> bool:
        cells = sum(isinstance(e, CodeStarted) and e.depth == 1 for e in events)
        calls = sum(isinstance(e, SubCallStarted) and e.depth == 1 for e in events)
        return cells == 2 and calls == 3

    async def main() -> float:
        task = asyncio.create_task(
            RLMAgent(FunctionEngine(model), "m", max_depth=2, bus=bus).arun("root", context="c")
        )
        while not ready():
            await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return time.perf_counter() - t0
        raise AssertionError("not cancelled")

    try:
        return asyncio.run(main())
    finally:
        release.set()


if __name__ == "__main__":
    main()
