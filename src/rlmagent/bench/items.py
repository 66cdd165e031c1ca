"""Benchmark items: what a generator produces and a method answers.

A :class:`BenchItem` is one question over one long context, with the gold answer the
generator computed and the name of the scorer that compares an answer with it.

Sizes are counted in *estimated tokens*: ``ceil(len(text) / 4)``, the same rule as
:func:`rlmagent.engines.base.estimate_tokens`. Real tokenizers differ (the local
Qwen tokenizer gives roughly 0.8-1.3 tokens per 4 characters of English), which is why
every record keeps the context's character count too. ``"8k"`` means 8,192 tokens and
``"1m"`` 1,048,576 (powers of two, as in RULER and the RLM paper's figures).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmagent.engines.base import estimate_tokens
from rlmagent.errors import UsageError

CHARS_PER_TOKEN = 4
"""The token estimate used for every size in the benchmarks (see the module docstring)."""

SCORERS = ("value", "number", "option", "pairs", "exact", "choice")
"""Names of the scoring rules an item may ask for (implemented in :mod:`.scoring`)."""


@dataclass(frozen=True, slots=True)
class BenchItem:
    """One benchmark question.

    ``tokens`` is the requested size; ``context_tokens`` the estimate of the generated
    context. ``gold`` is a string, an int, or (for pairs) a list of ``[a, b]`` lists.
    ``scoring`` names the rule in :mod:`rlmagent.bench.scoring`; ``meta`` holds what
    that rule and the tests need (question kind, options, distractor values...).
    """

    task: str
    item_id: str
    tokens: int
    seed: int
    index: int
    context: str
    question: str
    gold: Any
    scoring: str
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def context_tokens(self) -> int:
        return estimate_tokens(self.context)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (the inverse of :meth:`from_json`)."""
        return {
            "task": self.task,
            "item_id": self.item_id,
            "tokens": self.tokens,
            "seed": self.seed,
            "index": self.index,
            "context_tokens": self.context_tokens,
            "question": self.question,
            "gold": self.gold,
            "scoring": self.scoring,
            "meta": dict(self.meta),
            "context": self.context,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchItem:
        try:
            return cls(
                task=str(data["task"]),
                item_id=str(data["item_id"]),
                tokens=int(data["tokens"]),
                seed=int(data["seed"]),
                index=int(data["index"]),
                context=str(data["context"]),
                question=str(data["question"]),
                gold=data["gold"],
                scoring=str(data["scoring"]),
                meta=dict(data.get("meta") or {}),
            )
        except KeyError as exc:
            raise UsageError(f"benchmark item is missing the field {exc.args[0]!r}") from None


def item_id(task: str, tokens: int, seed: int, index: int) -> str:
    """The stable identifier of one generated item."""
    return f"{task}-{tokens}-s{seed}-{index}"


def item_rng(task: str, tokens: int, seed: int, index: int) -> random.Random:
    """The random generator of one item.

    Seeded from a string (hashed with SHA-512 by :mod:`random`), so it is the same on
    every machine and Python process whatever ``PYTHONHASHSEED`` is, and item ``i``
    does not depend on how many items were asked for.
    """
    return random.Random(f"rlmagent-bench:{task}:{tokens}:{seed}:{index}")


def target_chars(tokens: int) -> int:
    """How many characters a context of ``tokens`` estimated tokens holds."""
    return tokens * CHARS_PER_TOKEN


def parse_tokens(text: str | int) -> int:
    """``"8k"`` -> 8192, ``"1m"`` -> 1048576, ``"5000"`` -> 5000."""
    if isinstance(text, int):
        value = text
    else:
        raw = text.strip().lower().replace("_", "")
        multiplier = 1
        if raw.endswith("k"):
            multiplier, raw = 1024, raw[:-1]
        elif raw.endswith("m"):
            multiplier, raw = 1024 * 1024, raw[:-1]
        try:
            value = int(float(raw) * multiplier)
        except ValueError:
            raise UsageError(
                f"cannot read {text!r} as a token count (examples: 8k, 32k, 1m, 5000)"
            ) from None
    if value < 256:
        raise UsageError(f"a context needs at least 256 tokens, got {value}")
    return value


def parse_token_list(text: str) -> list[int]:
    """``"8k,32k,128k"`` -> ``[8192, 32768, 131072]``."""
    sizes = [parse_tokens(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise UsageError("give at least one context size, e.g. --tokens 8k,32k")
    return sizes


def format_tokens(tokens: int) -> str:
    """The short label of a size: 8192 -> ``"8K"``, 1048576 -> ``"1M"``."""
    if tokens % (1024 * 1024) == 0:
        return f"{tokens // (1024 * 1024)}M"
    if tokens % 1024 == 0:
        return f"{tokens // 1024}K"
    return str(tokens)


def write_items(items: Iterable[BenchItem], path: str | Path) -> int:
    """Write items as JSON lines; returns how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps(item.to_json(), ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count


def read_items(path: str | Path) -> Iterator[BenchItem]:
    """Read items written by :func:`write_items`."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not a JSON line ({exc.msg})") from None
            yield BenchItem.from_json(data)
