"""``oolong``: OOLONG-style aggregation over labelled lines.

The context is lines ``Date: Mar 04, 2023 || User: 48213 || Instance: <question>``. Each
instance is a general-knowledge question whose *hidden* label is one of six coarse
question types (TREC-style, as in OOLONG's synthetic split). Instances are written from
per-label templates that share their vocabulary (``name``, ``city``, ``flag``, ``first``
and the same slot fillers appear under several labels), so counting keywords does not
give the labels: each line has to be read.

Questions ask for a label's count, the most or least frequent label, a comparison of two
labels, one user's count of a label, or a label's count after a date. Numbers are scored
``0.75 ** |error|`` as in the RLM paper, the other answers by exact match against a closed
set of options. :mod:`rlmagent.bench.oolong_pairs` builds on the same records.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rlmagent.bench.items import BenchItem, item_id, item_rng, target_chars
from rlmagent.bench.text import ADJECTIVES, NOUNS, unique_names

TASK = "oolong"
DESCRIPTION = "OOLONG-style aggregation: count lines by a hidden semantic label"

LABELS = (
    "description and abstract concept",
    "entity",
    "human being",
    "numeric value",
    "location",
    "abbreviation",
)

TEMPLATES: dict[str, tuple[str, ...]] = {
    "abbreviation": (
        "What does {abbr} stand for in the name of the {org}?",
        "What is the full form of {abbr} on the {thing} shown at the {event}?",
        "What is {abbr} short for in the city records of {place}?",
        "What do the letters {abbr} mean on the flag of {place}?",
        "Which words make up the name {abbr} used by the {org}?",
    ),
    "entity": (
        "What is the name of the {thing} that was first shown at the {event}?",
        "Which {thing} did the {org} choose for the {event}?",
        "What kind of animal appears on the flag of {place}?",
        "What instrument is played when the {event} opens in {place}?",
        "Which language do the members of the {org} speak in {place}?",
    ),
    "description and abstract concept": (
        "Why did the {org} move the {event} away from {place}?",
        "What is the meaning of the {thing} on the flag of {place}?",
        "How does the {thing} work during the {event}?",
        "What is the reason the {event} was first held in {place}?",
        "What does it mean when the {org} lowers the {thing}?",
    ),
    "human being": (
        "Who first named the {thing} shown at the {event}?",
        "Which person founded the {org} in {place}?",
        "What is the name of the founder of the {event}?",
        "Who led the {org} when the {event} came to {place}?",
        "Which writer first described the {thing} of {place}?",
    ),
    "location": (
        "Where was the {thing} first shown before the {event}?",
        "What city hosted the {event} organised by the {org}?",
        "In which country is the {org} that makes the {thing}?",
        "What is the name of the river that runs through {place}?",
        "Which region of {place} holds the {event} each year?",
    ),
    "numeric value": (
        "How many copies of the {thing} were shown at the {event}?",
        "In what year did the {org} first hold the {event}?",
        "How far is {place} from the city that hosted the {event}?",
        "What is the population of the city where the {org} is based?",
        "How much did the {org} pay for the {thing} in {place}?",
    ),
}

LABEL_HINTS = {
    "description and abstract concept": "asks why or how something happens, or what it means",
    "entity": "asks for a thing: an object, animal, language, instrument",
    "human being": "asks for a person",
    "numeric value": "asks for a number: a count, year, distance, amount",
    "location": "asks for a place",
    "abbreviation": "asks what an abbreviation stands for",
}

FIRST_DAY = dt.date(2021, 1, 1)
DAYS = 4 * 365 + 1  # 2021-01-01 .. 2024-12-31
EVENT_KINDS = ("Fair", "Festival", "Games", "Market", "Parade", "Regatta")
ORG_KINDS = ("Guild", "Society", "Council", "Company", "Trust", "Union")
LINE = "Date: {date} || User: {user} || Instance: {text}"
HEADER = (
    "Each line below is one data point: a date, a user ID (users appear on many lines) "
    "and an instance, which is a general-knowledge question. The instances are not "
    "labelled.\n\n"
)
KINDS = ("count", "most_frequent", "least_frequent", "compare", "user_count", "date_count")
COMPARISONS = ("more common than", "less common than", "same frequency as")


@dataclass(frozen=True, slots=True)
class Record:
    """One line of the data: its day (0 = 2021-01-01), user, text and hidden label."""

    day: int
    user: int
    text: str
    label: str


def format_day(day: int) -> str:
    """Day number -> ``"Mar 04, 2023"``."""
    return (FIRST_DAY + dt.timedelta(days=day)).strftime("%b %d, %Y")


def year_of(day: int) -> int:
    """Day number -> calendar year."""
    return (FIRST_DAY + dt.timedelta(days=day)).year


def labels_intro() -> str:
    """The sentence every oolong question starts with: the six labels and what they mean."""
    described = "; ".join(f"'{label}' ({LABEL_HINTS[label]})" for label in LABELS)
    return (
        "Every Instance in the data is a question that belongs to exactly one of six "
        f"labels, which are not written in the data: {described}. "
    )


class _Slots:
    """Slot fillers for one item, shared by every label's templates."""

    def __init__(self, rng: random.Random) -> None:
        names = unique_names(rng, 200)
        self.place = names[:80]
        self.event = [
            f"{rng.choice(ADJECTIVES).capitalize()} {rng.choice(NOUNS).capitalize()} "
            f"{rng.choice(EVENT_KINDS)}"
            for _ in range(60)
        ]
        self.org = [f"{n} {rng.choice(ORG_KINDS)}" for n in names[80:140]]
        self.thing = [f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}" for _ in range(80)]
        letters = "ABCDEFGHJKLMNPRSTVW"
        self.abbr = ["".join(rng.choices(letters, k=rng.choice((3, 4)))) for _ in range(60)]

    def fill(self, rng: random.Random, template: str) -> str:
        choice = rng.choice
        return template.format(
            place=choice(self.place),
            event=choice(self.event),
            org=choice(self.org),
            thing=choice(self.thing),
            abbr=choice(self.abbr),
        )


def _distinct_counts(rng: random.Random, total: int) -> list[int]:
    """Six label counts summing to ``total``, all different (so most/least are unique)."""
    if total < 21:
        raise ValueError(f"{total} lines are too few for six distinct label counts")
    while True:
        weights = [rng.uniform(0.4, 3.0) for _ in LABELS]
        scale = total / sum(weights)
        counts = [max(1, int(w * scale)) for w in weights]
        counts[counts.index(max(counts))] += total - sum(counts)
        if len(set(counts)) == len(counts) and min(counts) > 0:
            return counts


def make_records(rng: random.Random, tokens: int) -> list[Record]:
    """Records whose lines fill about ``tokens`` estimated tokens (with :data:`HEADER`)."""
    slots = _Slots(rng)
    budget = target_chars(tokens) - len(HEADER)
    sample = [
        len(LINE.format(date="Mar 04, 2023", user=10000, text=slots.fill(rng, t))) + 1
        for label in LABELS
        for t in TEMPLATES[label]
    ]
    n_lines = max(60, round(budget / (sum(sample) / len(sample))))
    counts = _distinct_counts(rng, n_lines)
    labels = [label for label, count in zip(LABELS, counts, strict=True) for _ in range(count)]
    rng.shuffle(labels)
    n_users = max(12, n_lines // 30)
    users = rng.sample(range(10000, 100000), n_users)
    user_weights = [rng.uniform(0.3, 2.0) for _ in users]
    line_users = rng.choices(users, weights=user_weights, k=n_lines)
    days = [rng.randrange(DAYS) for _ in range(n_lines)]
    fill, templates = slots.fill, TEMPLATES
    return [
        Record(day, user, fill(rng, rng.choice(templates[label])), label)
        for day, user, label in zip(days, line_users, labels, strict=True)
    ]


def render(records: list[Record]) -> str:
    """The context text of some records."""
    day_names = [format_day(d) for d in range(DAYS)]
    lines = [LINE.format(date=day_names[r.day], user=r.user, text=r.text) for r in records]
    return HEADER + "\n".join(lines)


def _question(
    rng: random.Random, kind: str, records: list[Record]
) -> tuple[str, Any, str, dict[str, Any]]:
    """(question, gold, scoring, meta) for one question kind."""
    gold: Any
    counts = Counter(r.label for r in records)
    label = rng.choice(LABELS)
    if kind == "count":
        q = f"How many data points should be classified as label '{label}'?"
        return q + " Answer with a number.", counts[label], "number", {"label": label}
    if kind in ("most_frequent", "least_frequent"):
        ranked = sorted(LABELS, key=lambda lab: counts[lab])
        gold = ranked[-1] if kind == "most_frequent" else ranked[0]
        word = "most" if kind == "most_frequent" else "least"
        q = f"Which label is the {word} common among the data points? Answer with the label only."
        return q, gold, "option", {"options": list(LABELS)}
    if kind == "compare":
        a, b = rng.sample(LABELS, 2)
        gold = COMPARISONS[0 if counts[a] > counts[b] else 1 if counts[a] < counts[b] else 2]
        q = (
            f"Is label '{a}' more common, less common, or the same frequency as label '{b}'? "
            "Answer with exactly one of: more common than, less common than, same frequency as."
        )
        return q, gold, "option", {"options": list(COMPARISONS), "labels": [a, b]}
    if kind == "user_count":
        per_user = Counter(r.user for r in records)
        busy = sorted(u for u, c in per_user.items() if c >= 5) or sorted(per_user)
        user = rng.choice(busy)
        gold = sum(1 for r in records if r.user == user and r.label == label)
        q = (
            f"For the user with ID {user}, how many of their data points should be "
            f"classified as label '{label}'? Answer with a number."
        )
        return q, gold, "number", {"label": label, "user": user}
    if kind == "date_count":
        return _date_window(rng, records, label)
    raise ValueError(f"unknown oolong question kind {kind!r}")


def _date_window(
    rng: random.Random, records: list[Record], label: str
) -> tuple[str, Any, str, dict[str, Any]]:
    """A label's count before, after or between dates (bounds excluded)."""
    low = rng.randrange(DAYS // 4, DAYS // 2)
    high = rng.randrange(DAYS // 2 + 30, 3 * DAYS // 4)
    direction = rng.choice(("before", "after", "between"))
    if direction == "before":
        window, start, end = f"strictly before {format_day(low)}", -1, low
    elif direction == "after":
        window, start, end = f"strictly after {format_day(low)}", low, DAYS
    else:
        window, start, end = f"strictly between {format_day(low)} and {format_day(high)}", low, high
    gold = sum(1 for r in records if r.label == label and start < r.day < end)
    q = (
        f"How many data points dated {window} should be classified as label '{label}'? "
        "Answer with a number."
    )
    meta: dict[str, Any] = {"label": label, "direction": direction, "cutoff": format_day(low)}
    if direction == "between":
        meta["cutoff_end"] = format_day(high)
    return q, gold, "number", meta


def generate(tokens: int, seed: int, index: int, *, kind: str | None = None) -> BenchItem:
    """One ``oolong`` item; the question kind cycles through :data:`KINDS` with ``index``."""
    rng = item_rng(TASK, tokens, seed, index)
    kind = kind or KINDS[index % len(KINDS)]
    records = make_records(rng, tokens)
    question, gold, scoring, meta = _question(rng, kind, records)
    return BenchItem(
        task=TASK,
        item_id=item_id(TASK, tokens, seed, index),
        tokens=tokens,
        seed=seed,
        index=index,
        context=render(records),
        question=labels_intro() + question,
        gold=gold,
        scoring=scoring,
        meta={"kind": kind, **meta},
    )
