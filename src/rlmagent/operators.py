"""Semantic operators over lists: ``llm_filter``, ``llm_map`` and ``llm_classify``.

The REPL exposes them so the root model can write ``llm_classify(lines, ["bug",
"question"])`` instead of building prompts and parsing answers itself. This module holds
their pure logic; it does not touch the engines or the run tree. Each operator takes
``ask``, an async function like ``llm_batch``: prompts in, answers out in the same order,
a failed item being a string that starts with ``"Error: "``. The host passes its own batch
function, so concurrency, budget, cache and events are those of ``llm_batch``.

What they do with the sub-model:

* One item per sub-call by default (``pack=1``). With ``pack=k``, up to k short items
  go into one sub-call as numbered lines and the answer is read back per number
  (``1: billing``); a packed answer that lacks an item's number, or whose line for it
  cannot be read, is asked again for that item alone. What still cannot be read is
  *unparsed*: counted, never silently a label. On the default local model packing
  lost accuracy at every size measured, hence the default; see
  benchmarks/bench_operators.py.
* Prompt order. Each operator's prompts start with the same text (the chat template,
  and for classify and map the instruction), so the local engine's prompt-prefix KV
  cache is reused from call to call. The filter question comes after the text: stated
  before it, the condition anchors a 1.5B model into answering yes to everything.
* Labels. ``llm_classify`` answers are matched to the labels whatever the case,
  punctuation and quotes, inside a sentence, as a number when the labels were shown
  numbered, and the most specific label wins when labels overlap ("bug report" over
  "bug"). An answer naming two different labels is unparsed.
* Filter. ``llm_filter`` asks "Text: ... Question: is it true that this text <condition>?
  Answer yes or no." and keeps the yes items. Measured on Qwen2.5-Coder-1.5B against a
  bare "does the text ...?" asked before the text, and against choosing between the
  condition and "something else": those answered yes (or chose the condition) for
  nearly every item; this form did not.
* Bounds. A prompt is at most ``max_prompt_chars`` characters (default
  :data:`MAX_PROMPT_CHARS`, about 3,000 tokens, inside a 4,096-token window with room
  for the answer). A longer item is cut to fit, and the result counts it (``truncated``).

Bad arguments raise :class:`TypeError` or :class:`ValueError` with a message meant for
the model that wrote the call. Results are frozen dataclasses: ``values`` plus counts of
failed / unparsed / truncated items and the calls made, and ``note``, one line saying
what went wrong ("" when nothing did), for the cell's output.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
        raise ValueError(f"{op}: {what} must be a non-empty str, got {value!r}")
    return value.strip()


def _check_hints(op: str, labels: Any) -> tuple[Any, dict[str, str]]:
    """``labels`` as given (a dict label -> meaning becomes its labels) and the meanings."""
    if not isinstance(labels, Mapping):
        return labels, {}
    hints: dict[str, str] = {}
    for label, hint in labels.items():
        if not isinstance(hint, str) or "\n" in hint:
            raise TypeError(f"{op}: the meaning of label {label!r} must be one line of text")
        hints[str(label).strip()] = hint.strip()
    return list(labels), hints


def _check_labels(op: str, labels: Any) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, list | tuple):
        raise TypeError(
            f"{op}(items, labels): labels must be a list of str (or a dict label -> "
            f"meaning), got {type(labels).__name__}"
        )
    if not labels:
        raise ValueError(f"{op}(items, labels): labels is empty; give at least one label")
    checked: list[str] = []
    seen: dict[str, str] = {}
    for i, label in enumerate(labels):
        if not isinstance(label, str):
            raise TypeError(f"{op}: label {i} must be a str, got {type(label).__name__}")
        key = _norm(label)
        if not key:
            raise ValueError(f"{op}: label {i} ({label!r}) has no letters or digits")
        if key in seen:
            raise ValueError(f"{op}: labels {seen[key]!r} and {label!r} are the same label")
        if "\n" in label:
            raise ValueError(f"{op}: label {i} ({label!r}) must be one line")
        seen[key] = label
        checked.append(label.strip())
    return checked


def _check_int(op: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{op}: {name} must be {bound}, got {value}")
    return value


# -- parsing ------------------------------------------------------------------------------


def _norm(text: str) -> str:
    """Casefolded words: punctuation, quotes and underscores become single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[\W_]+", " ", text)
    return text.strip()


_NUMBER_ANSWER = re.compile(r"(?:label|option|category|choice|number|no)?\s*(\d{1,4})")


def parse_label(answer: str, labels: Sequence[str], *, numbered: bool = False) -> str | None:
    """The label ``answer`` names, or None when it names none or several.

    Case, punctuation, quotes and markdown are ignored; a label may sit inside a sentence
    ("The category is Billing."), with a plural ``s``. When labels overlap, the most
    specific one wins: "bug report" names "bug report", not "bug". With ``numbered`` (the
    prompt showed the labels as ``1. ...``), an answer that is just a number in range
    ("2", "(2)", "Option 2") names that label.
    """
    text = _norm(answer)
    if not text:
        return None
    keys = [_norm(label) for label in labels]
    for label, key in zip(labels, keys, strict=True):
        if text == key:
            return label
    if numbered:
        m = _NUMBER_ANSWER.fullmatch(text)
        if m:
            n = int(m.group(1))
            return labels[n - 1] if 1 <= n <= len(labels) else None
    spans: list[tuple[int, int, int]] = []
    for index, key in enumerate(keys):
        pattern = r"(?<!\w)" + re.escape(key) + r"(?:s|es)?(?!\w)"
        spans += [(m.start(), m.end(), index) for m in re.finditer(pattern, text)]
    # a match inside a longer match of another label ("bug" in "bug report") does not count
    kept = {
        index
        for start, end, index in spans
        if not any(
            o != index and s <= start and end <= e and (e - s) > (end - start) for s, e, o in spans
        )
    }
    if len(kept) == 1:
        return labels[kept.pop()]
    return None


_ITEM_LINE = re.compile(
    r"""^\s*(?:[-*•>]\s*)?(?:\*\*)?          # bullet, bold
        [\[(#]?\s*(?:item|text|line|no\.?)?\s*\#?
        (\d{1,5})\s*[\])]?(?:\*\*)?           # the number
        \s*(?:[:.)=\-–—]|\s|$)\s*(.*)$        # separator, then the answer""",
    re.IGNORECASE | re.VERBOSE,
)


def parse_numbered(answer: str, count: int) -> dict[int, str]:
    """Answers by number (1..count) from a packed answer such as ``"1: a\\n2: b"``.

    Lines before the first number (chatter) are ignored; a line without a new number in
    range continues the answer before it; a number seen again keeps its first answer
    (the repeat continues that answer). Numbers may come in any order; missing ones are
    simply absent.
    """
    found: dict[int, list[str]] = {}
    current: int | None = None
    for line in answer.splitlines():
        m = _ITEM_LINE.match(line)
        if m and 1 <= int(m.group(1)) <= count and int(m.group(1)) not in found:
            current = int(m.group(1))
            found[current] = [m.group(2).strip()]
        elif current is not None and line.strip():
            found[current].append(line.strip())
    out = {}
    for n, parts in found.items():
        text = "\n".join(p for p in parts if p).strip().strip("*").strip()
        if text:
            out[n] = text
    return out


# -- prompts ------------------------------------------------------------------------------
#
# Measured on Qwen2.5-Coder-1.5B (benchmarks/bench_operators.py and the notes in the
# module docstring): classification reads the labels FIRST and the text last; a filter
# question comes AFTER the text, because a condition stated before the text anchors a
# small model into answering yes (or always choosing the condition's option).


def _label_lines(labels: Sequence[str], numbered: bool, hints: Mapping[str, str]) -> str:
    shown = [f"{label}: {hints[label]}" if hints.get(label) else label for label in labels]
    if numbered:
        return "\n".join(f"{i}. {text}" for i, text in enumerate(shown, 1))
    return "\n".join(f"- {text}" for text in shown)


_UNPARSED = object()


class _Failure(str):
    """A failed item's outcome: the ``Error: ...`` answer of its sub-call."""


@dataclass(frozen=True)
class _Spec:
    """How one operator asks and reads.

    A single prompt is ``single[0] + text + single[1]``; a packed one is ``packed[0]``,
    the numbered texts one per line, then ``packed[1]``. ``parse_single`` reads a single
    answer and ``parse_line`` one line of a packed answer (each gives a value or
    ``_UNPARSED``); ``strip_echo`` removes a text the model repeated in its line.
    """

    op: str
    single: tuple[str, str]
    packed: tuple[str, str]
    parse_single: Callable[[str], Any]
    parse_line: Callable[[str], Any]
    strip_echo: bool = True

    def frame_chars(self, packed: bool) -> int:
        frame = self.packed if packed else self.single
        return len(frame[0]) + len(frame[1])


def _classify_spec(op: str, labels: list[str], hints: Mapping[str, str]) -> _Spec:
    single = (
        "Classify the text below into exactly one of these categories:\n"
        f"{_label_lines(labels, True, hints)}\n"
        "Answer with the category name only.\n\nText:\n",
        "",
    )
    packed = (
        "Classify each numbered text into exactly one of these categories:\n"
        f"{_label_lines(labels, False, hints)}\n\nTexts:\n",
        '\n\nAnswer with one line per text, in the form "<number>: <category>", where the '
        f"category is one of: {', '.join(labels)}. Nothing else.",
    )

    def reader(numbered: bool) -> Callable[[str], Any]:
        def parse(answer: str) -> Any:
            label = parse_label(answer, labels, numbered=numbered)
            return _UNPARSED if label is None else label

        return parse

    return _Spec(op, single, packed, reader(True), reader(False))


_YES_NO = re.compile(r"\W*(yes|no|true|false)\b", re.IGNORECASE)


def parse_yes_no(answer: str) -> bool | None:
    """True for yes, False for no (also true/false), None when unclear or both."""
    m = _YES_NO.match(answer)
    if m:
        return m.group(1).lower() in ("yes", "true")
    word = parse_label(answer, ["yes", "no"]) or parse_label(answer, ["true", "false"])
    return None if word is None else word in ("yes", "true")


def _predicate(condition: str) -> str:
    """``condition`` as a predicate after "this text": "about x" -> "is about x"."""
    text = condition.strip().rstrip("?.!").strip()
    text = re.sub(r"^(?:it|the text|this text|the item|this item)\s+", "", text, flags=re.I)
    if re.match(r"about\b", text, re.IGNORECASE):
        text = "is " + text
    return text


def _filter_spec(condition: str) -> _Spec:
    predicate = _predicate(condition)
    single = ("Text: ", f"\n\nQuestion: is it true that this text {predicate}? Answer yes or no.")
    packed = (
        "Answer a yes/no question about each of the numbered texts below.\n\nTexts:\n",
        f"\n\nQuestion: is it true that the text {predicate}? Answer with one line per "
        'text, "<number>: yes" or "<number>: no", and nothing else.',
    )

    def parse(answer: str) -> Any:
        verdict = parse_yes_no(answer)
        return _UNPARSED if verdict is None else verdict

    return _Spec("llm_filter", single, packed, parse, parse)


def _map_spec(instruction: str) -> _Spec:
    single = (f"{instruction}\n\nText:\n", "")
    packed = (
        f"{instruction}\n\nDo this for each numbered text below. Answer with one line per "
        'text, in the form "<number>: <answer>", for every text, and nothing else.\n\n'
        "Texts:\n",
        "",
    )

    def parse_line(answer: str) -> Any:
        return answer.strip() or _UNPARSED

    return _Spec(
        "llm_map", single, packed, lambda answer: answer.strip(), parse_line, strip_echo=False
    )


# -- the driver ---------------------------------------------------------------------------


@dataclass
class _Tally:
    outcomes: list[Any]
    calls: int = 0
    retried: int = 0
    truncated: int = 0
    item_cap: int = 0
    first_error: str = ""


def _flat(text: str) -> str:
    return " ".join(text.split())


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
            run.first_error = _flat(answer)[:200]
        return True
    return False


def _count(run: _Tally) -> tuple[int, int]:
    """(failed, unparsed) items of a run."""
    failed = sum(isinstance(o, _Failure) for o in run.outcomes)
    return failed, sum(o is _UNPARSED for o in run.outcomes)


async def _run(ask: Ask, spec: _Spec, items: list[Any], pack: int, max_prompt_chars: int) -> _Tally:
    frame = max(spec.frame_chars(False), spec.frame_chars(True) if pack > 1 else 0)
    cap = max_prompt_chars - frame - 12  # room for "NNNNN. " and a newline
    if cap < MIN_ITEM_CHARS:
        raise ValueError(
            f"{spec.op}: its prompt (with the instruction, condition or labels) leaves {cap} "
            f"characters for an item within max_prompt_chars={max_prompt_chars}; shorten "
            "them or raise max_prompt_chars"
        )
    run = _Tally(outcomes=[_UNPARSED] * len(items), item_cap=cap)
    texts: list[str] = []
    for item in items:
        text, cut = _cut(item if isinstance(item, str) else str(item), cap)
        texts.append(text)
        run.truncated += cut

    # groups of consecutive items: at most `pack`, their prompt within max_prompt_chars
    groups: list[list[int]] = []
    size = 0
    for i, text in enumerate(texts):
        line = len(_flat(text)) + 8
        if groups and len(groups[-1]) < pack and size + line <= cap:
            groups[-1].append(i)
            size += line
        else:
            groups.append([i])
            size = line

    def single_prompt(i: int) -> str:
        return spec.single[0] + texts[i] + spec.single[1]

    def packed_prompt(group: list[int]) -> str:
        lines = "\n".join(f"{n}. {_flat(texts[i])}" for n, i in enumerate(group, 1))
        return spec.packed[0] + lines + spec.packed[1]

    prompts = [single_prompt(g[0]) if len(g) == 1 else packed_prompt(g) for g in groups]
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
        by_number = parse_numbered(answer, len(group))
        for n, i in enumerate(group, 1):
            got = by_number.get(n)
            if got is not None and spec.strip_echo:
                echoed = _flat(texts[i])
                if echoed and echoed in got:  # "3. <the text> - billing"
                    got = got.replace(echoed, " ").strip()
            value = _UNPARSED if not got else spec.parse_line(got)
            if value is _UNPARSED:
                again.append(i)
            else:
                run.outcomes[i] = value

    if again:  # items a packed answer missed, or answered unreadably: alone, once
        run.retried = len(again)
        answers = await _ask_all(ask, [single_prompt(i) for i in again], run)
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
    labels, hints = _check_hints(op, labels)
    labels = _check_labels(op, labels)
    pack, max_prompt_chars = _common(op, pack, max_prompt_chars)
    spec = _classify_spec(op, labels, hints)
    run = await _run(ask, spec, items, pack, max_prompt_chars)
    values = [None if isinstance(o, _Failure) or o is _UNPARSED else o for o in run.outcomes]
    failed, unparsed = _count(run)
    return ClassifyResult(
        values=values,
        total=len(items),
        failed=failed,
        unparsed=unparsed,
        truncated=run.truncated,
        calls=run.calls,
        retried=run.retried,
        note=_note(op, len(items), failed, unparsed, run, "their value is None"),
        labels=labels,
    )


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
        raise ValueError(f"{op}: condition must be one line, got {condition!r}")
    pack, max_prompt_chars = _common(op, pack, max_prompt_chars)
    run = await _run(ask, _filter_spec(condition), items, pack, max_prompt_chars)
    mask: list[bool | None] = [o if isinstance(o, bool) else None for o in run.outcomes]
    failed, unparsed = _count(run)
    return FilterResult(
        values=[item for item, keep in zip(items, mask, strict=True) if keep is True],
        total=len(items),
        failed=failed,
        unparsed=unparsed,
        truncated=run.truncated,
        calls=run.calls,
        retried=run.retried,
        note=_note(op, len(items), failed, unparsed, run, "those items were left out"),
        mask=mask,
    )


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
    run = await _run(ask, _map_spec(instruction), items, pack, max_prompt_chars)
    failed, _ = _count(run)
    values = [str(o) for o in run.outcomes]  # a _Failure is its "Error: ..." text
    return MapResult(
        values=values,
        total=len(items),
        failed=failed,
        unparsed=0,
        truncated=run.truncated,
        calls=run.calls,
        retried=run.retried,
        note=_note(op, len(items), failed, 0, run, ""),
    )
