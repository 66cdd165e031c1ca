"""``oolong-pairs``: pairs of users that both satisfy a condition on hidden labels.

The data are :mod:`rlmagent.bench.oolong` records. A question asks for every pair of
user IDs such that both users satisfy a condition on their labelled lines:

- ``atleast``: at least ``t`` lines labelled X;
- ``either``: at least ``t`` lines labelled X or Y (together);
- ``year``: at least ``t`` lines labelled X dated in a given year.

The generator picks ``t`` so that a handful of users qualify (so the answer is a few to
a few dozen pairs, whatever the context size). Answers are lists of pairs, scored by F1
over unordered pairs.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable

from rlmagent.bench.items import BenchItem, item_id, item_rng
from rlmagent.bench.oolong import DAYS, LABELS, Record, labels_intro, make_records, year_of
from rlmagent.bench.oolong import render as render_records

TASK = "oolong-pairs"
DESCRIPTION = "OOLONG-Pairs: list the pairs of users that both meet a label condition (F1)"
KINDS = ("atleast", "either", "year")
MIN_USERS, MAX_USERS = 3, 12
ANSWER_FORMAT = (
    " List every such pair once as (smaller ID, larger ID), one pair per line, "
    "and nothing else. If no pair qualifies, answer NONE."
)


def _threshold(rng: random.Random, values: Counter[int], users: list[int]) -> int | None:
    """A threshold ``t >= 1`` such that a few users (MIN_USERS..MAX_USERS) have
    ``values[user] >= t``, near a random target size; None when no ``t`` does."""
    want = rng.randint(MIN_USERS + 1, MAX_USERS - 2)
    best_t, best_gap = None, 0
    for t in sorted({v for v in values.values() if v >= 1}):
        size = sum(1 for u in users if values[u] >= t)
        if MIN_USERS <= size <= MAX_USERS and (best_t is None or abs(size - want) < best_gap):
            best_t, best_gap = t, abs(size - want)
    return best_t


def _condition(
    rng: random.Random, kind: str
) -> tuple[Callable[[Record], bool], str, dict[str, object]]:
    """(which records count, how the question describes them, meta)."""
    if kind == "atleast":
        label = rng.choice(LABELS)
        return (lambda r: r.label == label), f"labelled '{label}'", {"labels": [label]}
    if kind == "either":
        a, b = rng.sample(LABELS, 2)
        return (
            (lambda r: r.label in (a, b)),
            f"labelled '{a}' or '{b}' (the two labels counted together)",
            {"labels": [a, b]},
        )
    if kind == "year":
        label = rng.choice(LABELS)
        years = [year_of(day) for day in range(DAYS)]
        year = rng.choice(sorted(set(years)))
        return (
            (lambda r: r.label == label and years[r.day] == year),
            f"labelled '{label}' and dated in {year}",
            {"labels": [label], "year": year},
        )
    raise ValueError(f"unknown oolong-pairs question kind {kind!r}")


def generate(tokens: int, seed: int, index: int, *, kind: str | None = None) -> BenchItem:
    """One ``oolong-pairs`` item; the condition kind cycles through :data:`KINDS`."""
    rng = item_rng(TASK, tokens, seed, index)
    kind = kind or KINDS[index % len(KINDS)]
    records = make_records(rng, tokens)
    users = sorted({r.user for r in records})
    for _attempt in range(20):  # small contexts: redraw the condition until a few qualify
        matches, described, meta = _condition(rng, kind)
        values: Counter[int] = Counter(r.user for r in records if matches(r))
        found = _threshold(rng, values, users)
        if found is not None:
            break
    threshold = found or 1
    qualifying = [u for u in users if values[u] >= threshold]
    gold = [[a, b] for a, b in itertools.combinations(qualifying, 2)]
    question = (
        labels_intro()
        + f"Find every pair of different users who each have at least {threshold} data "
        f"point(s) {described}." + ANSWER_FORMAT
    )
    return BenchItem(
        task=TASK,
        item_id=item_id(TASK, tokens, seed, index),
        tokens=tokens,
        seed=seed,
        index=index,
        context=render_records(records),
        question=question,
        gold=gold,
        scoring="pairs",
        meta={"kind": kind, "threshold": threshold, **meta},
    )
