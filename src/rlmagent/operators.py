"""Semantic operators over lists: ``llm_filter``, ``llm_map`` and ``llm_classify``.

The REPL exposes them so the root model can write ``llm_classify(lines, ["bug",
"question"])`` instead of building prompts and parsing answers itself. This module holds
the operators, their results, the checks of their arguments and the engine that runs
them (packing, sub-calls, retries, counting), never the engines or the run tree; their
prompts and the reading of answers are :mod:`rlmagent.answers` (its ``parse_*`` are
importable from here too). Each operator takes ``ask``, an async function like
``llm_batch``: prompts in, answers out in the same order, a failed item being a string
that starts with ``"Error: "``. The host passes its own batch function, so concurrency,
budget, cache and events are those of ``llm_batch``.

* One item per sub-call by default (``pack=1``, see :data:`DEFAULT_PACK`). With
  ``pack=k``, up to k short items go into one sub-call as numbered lines and the answer
  is read back per number (``1: billing``); an item the packed answer lacks, or whose
  line cannot be read, is asked again alone. What still cannot be read is *unparsed*:
  counted, never silently a label.
* Bounds. A prompt is at most ``max_prompt_chars`` characters (default
  :data:`MAX_PROMPT_CHARS`, about 3,000 tokens, inside a 4,096-token window with room
  for the answer). A longer item is cut to fit, and the result counts it (``truncated``).

Bad arguments raise :class:`TypeError` or :class:`ValueError` with a message meant for
the model that wrote the call. Results are frozen dataclasses: ``values``, counts of
failed / unparsed / truncated items and of calls, and ``note``, one line saying what
went wrong ("" when nothing did), for the cell's output.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rlmagent.answers import (
    UNPARSED,
    Spec,
    check_hints,
    check_labels,
    classify_spec,
    filter_spec,
    flat,
    map_spec,
)
from rlmagent.answers import parse_label as parse_label
from rlmagent.answers import parse_numbered as parse_numbered
from rlmagent.answers import parse_yes_no as parse_yes_no
from rlmagent.sandbox.protocol import shown

Ask = Callable[[list[str]], Awaitable[list[str]]]
"""Like ``llm_batch``: prompts -> answers in order; a failed item starts with "Error: "."""

ERROR_PREFIX = "Error: "
"""How ``ask`` marks a failed item (the same prefix as ``llm_batch``)."""

MAX_PROMPT_CHARS = 10_000
"""Default bound on one sub-call's prompt, in characters (about 3,000 tokens)."""

MIN_PROMPT_CHARS = 1_000
"""The smallest ``max_prompt_chars`` accepted."""

MIN_ITEM_CHARS = 200
"""The room an item must have in a prompt after the instruction; less is a ValueError."""

DEFAULT_PACK = 1
"""Items per sub-call unless ``pack=`` says otherwise. One: on the default local model
packing lost accuracy at every size tried (benchmarks/bench_operators.py, 48 tickets:
classify 44/48 alone, 32-36/48 at pack 2, 4, 8; filter 92/96 alone, 67-72/96 packed,
where answering no to everything scores 72/96), and was not faster per item either.
A stronger sub-model may do well with ``pack=4`` or more: measure it first."""

MAX_PACK = 50
"""The largest ``pack`` accepted."""

MAX_ASK_BATCH = 10_000
"""The most prompts given to ``ask`` at once (``llm_batch``'s own limit)."""

TRUNCATION_MARK = " [...]"
"""Appended to an item cut to fit a prompt."""


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorResult:
    """What an operator returns: ``values`` and what happened on the way.

    ``total``: items given; ``failed``: items whose sub-call failed (an ``Error:``
    answer); ``unparsed``: items whose answer could not be read; ``truncated``: items cut
    to fit a prompt; ``calls``: sub-calls made (retries included); ``retried``: items asked
    again alone after a packed answer missed them; ``note``: one line on the problems, ""
    when there were none. It iterates, indexes and measures like ``values``.
    """

    values: list[Any]
    total: int
    failed: int
    unparsed: int
    truncated: int
    calls: int
    retried: int
    note: str

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: Any) -> Any:
        return self.values[index]

    @property
    def ok(self) -> bool:
        """True when every item got a readable answer."""
        return not (self.failed or self.unparsed)

    def counts(self) -> dict[str, Any]:
        """Everything but the values, JSON-ready (for events and logs)."""
        return {
            "total": self.total,
            "failed": self.failed,
            "unparsed": self.unparsed,
            "truncated": self.truncated,
            "calls": self.calls,
            "retried": self.retried,
            "note": self.note,
        }


@dataclass(frozen=True)
class FilterResult(OperatorResult):
    """``values``: the items kept, in order. ``mask``: per item, True (kept), False, or
    None (failed or unparsed: not kept, counted)."""

    mask: list[bool | None] = field(default_factory=list)


@dataclass(frozen=True)
class MapResult(OperatorResult):
    """``values``: one answer (str) per item, in order; a failed item's value is its
    ``Error: ...`` string, as in ``llm_batch``."""


@dataclass(frozen=True)
class ClassifyResult(OperatorResult):
    """``values``: one of ``labels`` per item, in order, or None (failed or unparsed)."""

    labels: list[str] = field(default_factory=list)


# -- input checks -------------------------------------------------------------------------


def _check_items(op: str, items: Any) -> list[Any]:
    if isinstance(items, str | bytes) or not isinstance(items, list | tuple):
        raise TypeError(
            f"{op}(items, ...): items must be a list (or tuple) of strings, "
            f"got {type(items).__name__}"
        )
    return list(items)


def _check_text(op: str, what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{op}: {what} must be a non-empty str, got {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{op}: {what} must be a non-empty str, got {shown(value)}")
    return value.strip()


def _check_int(op: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{op}: {name} must be {bound}, got {value}")
    return value


# -- the driver ---------------------------------------------------------------------------


class _Failure(str):
    """A failed item's outcome: the ``Error: ...`` answer of its sub-call."""


@dataclass
class _Tally:
    outcomes: list[Any]
    calls: int = 0
    retried: int = 0
    truncated: int = 0
    item_cap: int = 0
    first_error: str = ""


def _cut(text: str, cap: int) -> tuple[str, bool]:
    if len(text) <= cap:
        return text, False
    return text[: max(0, cap - len(TRUNCATION_MARK))].rstrip() + TRUNCATION_MARK, True


async def _ask_all(ask: Ask, prompts: list[str], run: _Tally) -> list[str]:
    answers: list[str] = []
    for start in range(0, len(prompts), MAX_ASK_BATCH):
        chunk = prompts[start : start + MAX_ASK_BATCH]
        got = await ask(chunk)
        if not isinstance(got, list | tuple) or len(got) != len(chunk):
            raise RuntimeError(
                f"ask returned {type(got).__name__} of length "
                f"{len(got) if isinstance(got, list | tuple) else '?'} for {len(chunk)} prompts"
            )
        answers += [a if isinstance(a, str) else str(a) for a in got]
    run.calls += len(prompts)
    return answers


def _failed(answer: str, run: _Tally) -> bool:
    if answer.startswith(ERROR_PREFIX):
        if not run.first_error:
            run.first_error = flat(answer)[:200]
        return True
    return False


def _counts(op: str, items: list[Any], run: _Tally, kind: str) -> dict[str, Any]:
    """The fields every result shares: counts of the run and its note (``kind``: what
    became of the unreadable items)."""
    failed = sum(isinstance(o, _Failure) for o in run.outcomes)
    unparsed = sum(o is UNPARSED for o in run.outcomes)
    return {
        "total": len(items),
        "failed": failed,
        "unparsed": unparsed,
        "truncated": run.truncated,
        "calls": run.calls,
        "retried": run.retried,
        "note": _note(op, len(items), failed, unparsed, run, kind),
    }


async def _run(ask: Ask, spec: Spec, items: list[Any], pack: int, max_prompt_chars: int) -> _Tally:
    frame = max(spec.frame_chars(False), spec.frame_chars(True) if pack > 1 else 0)
    cap = max_prompt_chars - frame - 12  # room for "NNNNN. " and a newline
    if cap < MIN_ITEM_CHARS:
        raise ValueError(
            f"{spec.op}: its prompt (with the instruction, condition or labels) leaves {cap} "
            f"characters for an item within max_prompt_chars={max_prompt_chars}; shorten "
            "them or raise max_prompt_chars"
        )
    run = _Tally(outcomes=[UNPARSED] * len(items), item_cap=cap)
    texts: list[str] = []
    for item in items:
        text, cut = _cut(item if isinstance(item, str) else str(item), cap)
        texts.append(text)
        run.truncated += cut

    # groups of consecutive items: at most `pack`, their prompt within max_prompt_chars
    groups: list[list[int]] = []
    size = 0
    for i, text in enumerate(texts):
        line = len(flat(text)) + 8
        if groups and len(groups[-1]) < pack and size + line <= cap:
            groups[-1].append(i)
            size += line
        else:
            groups.append([i])
            size = line

    prompts = [
        spec.prompt(texts[g[0]]) if len(g) == 1 else spec.packed_prompt([texts[i] for i in g])
        for g in groups
    ]
    answers = await _ask_all(ask, prompts, run)
    again: list[int] = []
    for group, answer in zip(groups, answers, strict=True):
        if _failed(answer, run):
            for i in group:
                run.outcomes[i] = _Failure(answer)
            continue
        if len(group) == 1:
            run.outcomes[group[0]] = spec.parse_single(answer)
            continue
        values = spec.read_packed(answer, [texts[i] for i in group])
        for i, value in zip(group, values, strict=True):
            if value is UNPARSED:
                again.append(i)
            else:
                run.outcomes[i] = value

    if again:  # items a packed answer missed, or answered unreadably: alone, once
        run.retried = len(again)
        answers = await _ask_all(ask, [spec.prompt(texts[i]) for i in again], run)
        for i, answer in zip(again, answers, strict=True):
            failed = _failed(answer, run)
            run.outcomes[i] = _Failure(answer) if failed else spec.parse_single(answer)
    return run


def _note(op: str, total: int, failed: int, unparsed: int, run: _Tally, kind: str) -> str:
    parts = []
    if failed:
        parts.append(f"{failed} of {total} items failed ({run.first_error})")
    if unparsed:
        parts.append(f"{unparsed} of {total} answers could not be parsed ({kind})")
    if run.truncated:
        parts.append(
            f"{run.truncated} of {total} items were cut to their first {run.item_cap:,} characters"
        )
    return f"{op}: " + "; ".join(parts) if parts else ""


def _common(op: str, pack: Any, max_prompt_chars: Any) -> tuple[int, int]:
    return (
        _check_int(op, "pack", pack, 1, MAX_PACK),
        _check_int(op, "max_prompt_chars", max_prompt_chars, MIN_PROMPT_CHARS),
    )


# -- the operators ------------------------------------------------------------------------


async def llm_classify(
    ask: Ask,
    items: Any,
    labels: Any,
    *,
    pack: int = DEFAULT_PACK,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> ClassifyResult:
    """One of ``labels`` per item (None where the answer failed or could not be read)."""
    op = "llm_classify"
    items = _check_items(op, items)
    labels, hints = check_hints(op, labels)
    labels = check_labels(op, labels)
    pack, max_prompt_chars = _common(op, pack, max_prompt_chars)
    spec = classify_spec(op, labels, hints)
    run = await _run(ask, spec, items, pack, max_prompt_chars)
    values = [None if isinstance(o, _Failure) or o is UNPARSED else o for o in run.outcomes]
    counts = _counts(op, items, run, "their value is None")
    return ClassifyResult(values=values, labels=labels, **counts)


async def llm_filter(
    ask: Ask,
    items: Any,
    condition: Any,
    *,
    pack: int = DEFAULT_PACK,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> FilterResult:
    """The items for which the sub-model says ``condition`` holds, in order.

    ``condition`` describes the items to keep ("is about a billing problem"). Failed or
    unreadable answers keep nothing and are counted.
    """
    op = "llm_filter"
    items = _check_items(op, items)
    condition = _check_text(op, "condition", condition)
    if "\n" in condition:
        raise ValueError(f"{op}: condition must be one line, got {shown(condition)}")
    pack, max_prompt_chars = _common(op, pack, max_prompt_chars)
    run = await _run(ask, filter_spec(condition), items, pack, max_prompt_chars)
    mask: list[bool | None] = [o if isinstance(o, bool) else None for o in run.outcomes]
    kept = [item for item, keep in zip(items, mask, strict=True) if keep is True]
    counts = _counts(op, items, run, "those items were left out")
    return FilterResult(values=kept, mask=mask, **counts)


async def llm_map(
    ask: Ask,
    items: Any,
    instruction: Any,
    *,
    pack: int = DEFAULT_PACK,
    max_prompt_chars: int = MAX_PROMPT_CHARS,
) -> MapResult:
    """One answer per item, in order: ``instruction`` applied to each item.

    With ``pack`` > 1, answers must fit one numbered line each; an item the packed answer
    missed is asked again alone. A failed item's value is its ``Error: ...`` string.
    """
    op = "llm_map"
    items = _check_items(op, items)
    instruction = _check_text(op, "instruction", instruction)
    pack, max_prompt_chars = _common(op, pack, max_prompt_chars)
    run = await _run(ask, map_spec(instruction), items, pack, max_prompt_chars)
    values = [str(o) for o in run.outcomes]  # a _Failure is its "Error: ..." text
    return MapResult(values=values, **_counts(op, items, run, ""))
