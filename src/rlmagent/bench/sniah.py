"""``sniah``: a RULER-style single needle in a haystack.

One sentence ``One of the special magic numbers for <key> is: <value>.`` is hidden at a
chosen depth of filler text. Distractor needles with keys that share a word with the
real key (``quiet-harbor`` against ``quiet-meadow`` and ``brisk-harbor``) and other
seven-digit values are scattered elsewhere. The answer is the value; it is scored by
:func:`rlmagent.bench.scoring.score_value` (the gold number present, no distractor's).
"""

from __future__ import annotations

import random

from rlmagent.bench.items import BenchItem, item_id, item_rng, target_chars
from rlmagent.bench.text import ADJECTIVES, NOUNS, SentencePool, paragraphs

TASK = "sniah"
DESCRIPTION = "RULER-style single needle: find the value of one key hidden in filler text"
NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUESTION = (
    "What is the special magic number for {key} mentioned in the provided text? "
    "Answer with the number only."
)
DEFAULT_DISTRACTORS = 6
GOLDEN = 0.6180339887498949


def default_depth(index: int) -> float:
    """Depths spread evenly over items whatever their number (a golden-ratio sequence)."""
    return ((index + 1) * GOLDEN) % 1.0


def _keys(rng: random.Random, count: int) -> tuple[str, list[str]]:
    adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
    key = f"{adjective}-{noun}"
    chosen: list[str] = []
    seen = {key}
    while len(chosen) < count:
        shape = len(chosen) % 3
        if shape == 0:  # same adjective, another noun
            candidate = f"{adjective}-{rng.choice(NOUNS)}"
        elif shape == 1:  # another adjective, same noun
            candidate = f"{rng.choice(ADJECTIVES)}-{noun}"
        else:
            candidate = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        if candidate not in seen:
            seen.add(candidate)
            chosen.append(candidate)
    return key, chosen


def _values(rng: random.Random, count: int) -> list[str]:
    values: list[str] = []
    while len(values) < count:
        value = str(rng.randrange(1_000_000, 10_000_000))
        if value not in values:
            values.append(value)
    return values


def generate(
    tokens: int,
    seed: int,
    index: int,
    *,
    depth: float | None = None,
    distractors: int = DEFAULT_DISTRACTORS,
) -> BenchItem:
    """One ``sniah`` item of about ``tokens`` estimated tokens.

    ``depth`` (0 = start, 1 = end) places the real needle; by default it varies with
    ``index`` (see :func:`default_depth`).
    """
    rng = item_rng(TASK, tokens, seed, index)
    depth = default_depth(index) if depth is None else min(1.0, max(0.0, depth))
    key, distractor_keys = _keys(rng, distractors)
    value, *distractor_values = _values(rng, distractors + 1)
    needle = NEEDLE.format(key=key, value=value)
    others = [
        NEEDLE.format(key=k, value=v)
        for k, v in zip(distractor_keys, distractor_values, strict=True)
    ]
    budget = target_chars(tokens) - sum(len(s) + 1 for s in [needle, *others])
    sentences = SentencePool(rng).take(rng, budget)
    for other in others:
        sentences.insert(rng.randrange(len(sentences) + 1), other)
    sentences.insert(round(depth * len(sentences)), needle)
    return BenchItem(
        task=TASK,
        item_id=item_id(TASK, tokens, seed, index),
        tokens=tokens,
        seed=seed,
        index=index,
        context=paragraphs(rng, sentences),
        question=QUESTION.format(key=key),
        gold=value,
        scoring="value",
        meta={
            "key": key,
            "depth": round(depth, 4),
            "distractor_keys": distractor_keys,
            "distractor_values": distractor_values,
        },
    )
