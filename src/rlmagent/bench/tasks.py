"""The task families and how to generate their items.

Each family is a module with ``TASK``, ``DESCRIPTION`` and
``generate(tokens, seed, index, **options) -> BenchItem``. Items are deterministic: the
same (task, tokens, seed, index) gives the same item on any machine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rlmagent.bench import codeqa, multihop, oolong, oolong_pairs, sniah
from rlmagent.bench.items import BenchItem
from rlmagent.errors import UsageError


@dataclass(frozen=True, slots=True)
class TaskFamily:
    """A named generator of benchmark items."""

    name: str
    description: str
    scoring: str
    generate: Callable[..., BenchItem]


TASKS: dict[str, TaskFamily] = {
    family.name: family
    for family in (
        TaskFamily(sniah.TASK, sniah.DESCRIPTION, "value match", sniah.generate),
        TaskFamily(oolong.TASK, oolong.DESCRIPTION, "0.75^|error| / exact", oolong.generate),
        TaskFamily(oolong_pairs.TASK, oolong_pairs.DESCRIPTION, "F1", oolong_pairs.generate),
        TaskFamily(multihop.TASK, multihop.DESCRIPTION, "exact match", multihop.generate),
        TaskFamily(codeqa.TASK, codeqa.DESCRIPTION, "accuracy", codeqa.generate),
    )
}


def get_task(name: str) -> TaskFamily:
    """The family called ``name``; a :class:`UsageError` lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(TASKS)
        raise UsageError(f"unknown benchmark task {name!r}; known tasks: {known}") from None


def iter_items(
    task: str, tokens: int, n: int, seed: int = 0, **options: Any
) -> Iterator[BenchItem]:
    """Generate items ``0..n-1`` of ``task`` at ``tokens`` estimated tokens, one at a time."""
    family = get_task(task)
    if n < 1:
        raise UsageError(f"the number of items must be at least 1, got {n}")
    for index in range(n):
        yield family.generate(tokens, seed, index, **options)


def generate_items(
    task: str, tokens: int, n: int, seed: int = 0, **options: Any
) -> list[BenchItem]:
    """All items of :func:`iter_items` as a list."""
    return list(iter_items(task, tokens, n, seed, **options))
