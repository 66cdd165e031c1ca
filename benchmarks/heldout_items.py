"""Held-out items: the bench's own contexts asked in other words, and a counting task the
bench does not have. For checking that a change helps the mechanism, not one phrasing.

    python benchmarks/heldout_items.py --out heldout.jsonl
    rlm bench run --items heldout.jsonl --method rlm --concurrency 1 --out heldout-results.jsonl

- ``sniah`` (32K, 6 items) and ``multihop`` (32K, 6 items): the generators' contexts
  and gold answers, each question rewritten in one of several phrasings that never
  appear in the prompts or in the generators (seed 1, so the items differ from
  ``rlm bench run --seed 0``).
- ``tickets`` (4 items): about 170 support messages (the 48 of bench_operators.py, each
  1 to 6 times under different customer numbers, shuffled), none naming its topic; the
  question asks how many are about one topic, described in words. Scored as a number
  (``0.75 ** |error|``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from rlmagent.bench import generate_items
from rlmagent.bench.items import BenchItem

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_operators import TICKETS

SNIAH = (
    "Which number does the text give as the special magic number of {key}? Reply with "
    "the digits alone.",
    "Somewhere in this document a number is attached to '{key}'. What is it?",
    "Look up {key}: what special magic number is recorded for it?",
)
MULTIHOP_2 = (
    "The {landmark} was put up by a firm. Who started that firm? Give the full name.",
    "Name the person who founded the builder of the {landmark}.",
    "Whose company constructed the {landmark}? I need the founder's full name.",
)
MULTIHOP_3 = (
    "Where was the person born who founded the firm that constructed the {landmark}? "
    "Just the city.",
    "The {landmark}'s builder was founded by someone. What is that person's birthplace?",
    "Give the birth city of whoever founded the company behind the {landmark}.",
)
TOPICS = {
    "billing": "money: charges, refunds, invoices or payments",
    "delivery": "shipping: parcels that are late, lost or damaged on the way",
    "technical problem": "something in the app or website that does not work",
    "feature request": "asking for something the product does not do yet",
}
COUNT_QUESTIONS = (
    "How many of these customer messages are about {meaning}? Answer with a number.",
    "Count the messages whose subject is {meaning}.",
    "What is the number of tickets dealing with {meaning}?",
    "Among the messages below, how many concern {meaning}?",
)


def _rephrased(items: list[BenchItem], phrasings: tuple[str, ...], **fields: str) -> list:
    out = []
    for n, item in enumerate(items):
        values = {name: str(item.meta[key]) for name, key in fields.items()}
        question = phrasings[n % len(phrasings)].format(**values)
        out.append({**item.to_json(), "question": question, "task": f"{item.task}-heldout"})
    return out


def _multihop(items: list[BenchItem]) -> list[dict]:
    out = []
    for n, item in enumerate(items):
        phrasings = MULTIHOP_2 if item.meta["hops"] == 2 else MULTIHOP_3
        question = phrasings[n // 2 % len(phrasings)].format(landmark=item.meta["chain"][0])
        out.append({**item.to_json(), "question": question, "task": "multihop-heldout"})
    return out


def _tickets(seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = [(text, topic) for text, topic in TICKETS for _ in range(rng.randint(1, 6))]
    rng.shuffle(rows)
    numbers = rng.sample(range(10_000, 99_999), len(rows))
    context = "\n".join(f"#{num} {text}" for num, (text, _) in zip(numbers, rows, strict=True))
    out = []
    for n, (topic, meaning) in enumerate(TOPICS.items()):
        gold = sum(t == topic for _, t in rows)
        item = BenchItem(
            task="tickets-heldout",
            item_id=f"tickets-heldout-{n}",
            tokens=len(context) // 4,
            seed=seed,
            index=n,
            context=context,
            question=COUNT_QUESTIONS[n].format(meaning=meaning),
            gold=gold,
            scoring="number",
            meta={"topic": topic},
        )
        out.append(item.to_json())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sniah = generate_items("sniah", 32_768, 6, seed=args.seed)
    multihop = generate_items("multihop", 32_768, 6, seed=args.seed)
    rows = _rephrased(sniah, SNIAH, key="key") + _multihop(multihop) + _tickets(args.seed)
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} held-out items to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
