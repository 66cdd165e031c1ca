"""A 5-question session over one small context on the embedded local model.

    python benchmarks/bench_session_local.py [--seed 0] [--orders 60] [--out FILE.jsonl]
        [--mode session|runs] [--trace FILE.jsonl]

One session (one REPL) answers five questions about a generated order log, the third
building on the second's answer ("and of those ..."). Prints, per question, whether the
answer is right, the turns, the root's prompt tokens (the largest root call and the sum)
and the seconds; each row also goes to ``--out`` as it finishes, so a run stopped early
keeps what it did. ``--mode runs`` asks the same questions as separate runs (the
baseline: no REPL or history carried over).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter
from pathlib import Path

CITIES = ("Lyon", "Porto", "Gdansk", "Turin", "Ghent")


def make_log(seed: int, orders: int) -> tuple[str, list[tuple[str, object]]]:
    rng = random.Random(seed)
    weights = [5, 3, 2, 2, 1]
    rows = []
    for i in range(orders):
        city = rng.choices(CITIES, weights)[0]
        rows.append((1000 + i, city, rng.randint(5, 99)))
    text = "\n".join(
        f"2026-11-{1 + i % 28:02d} order {oid} city={city} amount={amount}"
        for i, (oid, city, amount) in enumerate(rows)
    )
    top_city = Counter(c for _, c, _ in rows).most_common(1)[0][0]
    biggest = max(rows, key=lambda r: r[2])
    questions: list[tuple[str, object]] = [
        ("How many orders are in the log?", len(rows)),
        ("Which city has the most orders?", top_city),
        (
            "What is the total amount of the orders from that city?",
            sum(a for _, c, a in rows if c == top_city),
        ),
        ("Which order id has the largest amount?", biggest[0]),
        ("How many orders have an amount over 50?", sum(a > 50 for _, _, a in rows)),
    ]
    return text + "\n", questions


def lookup_questions(text: str, seed: int) -> list[tuple[str, object]]:
    """Five lookups over the same log, the second and fourth building on the answer
    before them (the 1.5B root is reliable for lookups, not for aggregation)."""
    rows = [line.split() for line in text.splitlines()]
    rng = random.Random(seed + 1)
    amounts = Counter(r[4] for r in rows)
    unique = [r for r in rows if amounts[r[4]] == 1]
    a, b = rng.sample(unique, 2)
    c = rng.choice([r for r in unique if r not in (a, b)])
    return [
        (f"Which city is order {a[2]} from?", a[3].split("=")[1]),
        ("What is the amount of that order?", int(a[4].split("=")[1])),
        (f"On which date was order {b[2]} placed?", b[0]),
        ("And what is its amount?", int(b[4].split("=")[1])),
        (f"Which order has an amount of {c[4].split('=')[1]}?", int(c[2])),
    ]


def correct(answer: str, expected: object) -> bool:
    if isinstance(expected, int):
        return str(expected) in re.findall(r"\d+", answer.replace(",", ""))
    return str(expected).lower() in answer.lower()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--trace", type=Path, default=None, help="the session's JSONL")
    parser.add_argument(
        "--set",
        choices=("aggregate", "lookup"),
        default="aggregate",
        help="aggregate: counts, a top city, a sum; lookup: five lookups, two follow-ups",
    )
    parser.add_argument(
        "--mode",
        choices=("session", "runs"),
        default="session",
        help="one session, or (the baseline) a separate run per question",
    )
    args = parser.parse_args()

    from rlmagent import RLMAgent
    from rlmagent.engines import get_engine
    from rlmagent.settings import LOCAL_ROOT_MAX_TOKENS, LOCAL_ROOT_TEMPERATURE

    text, questions = make_log(args.seed, args.orders)
    if args.set == "lookup":
        questions = lookup_questions(text, args.seed)
    root, sub = get_engine("local:qwen2.5-coder-1.5b"), get_engine("local:qwen2.5-coder-1.5b")
    agent = RLMAgent(
        root,
        root.model,
        sub_engine=sub,
        sub_model=sub.model,
        temperature=LOCAL_ROOT_TEMPERATURE,
        max_tokens=LOCAL_ROOT_MAX_TOKENS,
        sub_temperature=0.0,
        trace=args.trace,
    )
    window = root.context_window(root.model)
    print(f"context: {len(text):,} characters, {args.orders} orders; root window {window}")
    right = 0
    session = agent.session(context=text) if args.mode == "session" else None
    for number, (question, expected) in enumerate(questions, 1):
        t0 = time.perf_counter()
        try:
            if session is not None:
                result = session.ask(question)
            else:
                result = agent.run(question, context=text)
            answer, stop, steps = result.content, result.stop_reason, result.trajectory
        except Exception as exc:  # a benchmark reports a failure and goes on
            answer, stop, steps = f"<{type(exc).__name__}: {exc}>", "error", ()
        seconds = time.perf_counter() - t0
        prompts = [s.usage.prompt_tokens for s in steps]
        ok = correct(answer, expected)
        right += ok
        row = {
            "mode": args.mode,
            "set": args.set,
            "question": number,
            "text": question,
            "expected": expected,
            "answer": answer[:200],
            "correct": ok,
            "stop_reason": stop,
            "turns": len(steps),
            "root_prompt_max": max(prompts, default=0),
            "root_prompt_sum": sum(prompts),
            "seconds": round(seconds, 1),
        }
        print(
            f"Q{number}: {'right' if ok else 'WRONG'} answer={answer[:60]!r} "
            f"expected={expected!r} stop={stop} turns={len(steps)} "
            f"root prompt max {row['root_prompt_max']:,} / sum {row['root_prompt_sum']:,} "
            f"tokens, {seconds:.0f} s",
            flush=True,
        )
        if args.out is not None:
            with args.out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
    print(f"{args.mode}: {right}/{len(questions)} right")
    if session is not None:
        print(f"session usage: {session.usage.calls} calls, {session.usage.total_tokens:,} tokens")
        session.close()
    for engine in (root, sub):
        engine.close()


if __name__ == "__main__":
    main()
