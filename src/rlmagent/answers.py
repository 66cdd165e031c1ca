"""The semantic operators' prompts and the pure reading of their sub-model answers.

:mod:`rlmagent.operators` runs the operators (checks, packing, sub-calls, counting); this
module holds what is pure text work, with no ``ask`` and no state: each operator's
:class:`Spec` (how it asks, single and packed, and how it reads an answer), the checks of
``llm_classify``'s labels, and :func:`parse_label`, :func:`parse_numbered` and
:func:`parse_yes_no`. A value that cannot be read is :data:`UNPARSED`.

* Prompt order. Each operator's prompts start with the same text (the chat template,
  and for classify and map the instruction), so the local engine's prompt-prefix KV
  cache is reused from call to call. The filter question comes after the text: stated
  before it, the condition anchors a 1.5B model into answering yes to everything.
* Labels. ``llm_classify`` answers are matched to the labels whatever the case,
  punctuation and quotes, inside a sentence, as a number when the labels were shown
  numbered, and the most specific label wins when labels overlap ("bug report" over
  "bug"). An answer naming two different labels is unparsed. Two labels that normalise
  to the same words are one label, and a ValueError.
* Filter. ``llm_filter`` asks "Text: ... Question: is it true that this text <condition>?
  Answer yes or no." and keeps the yes items. Measured on Qwen2.5-Coder-1.5B against a
  bare "does the text ...?" asked before the text, and against choosing between the
  condition and "something else": those answered yes (or chose the condition) for
  nearly every item; this form did not.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

UNPARSED = object()
"""An answer (or a packed answer's line) that could not be read: counted, never a value."""


# -- reading answers ----------------------------------------------------------------------


def flat(text: str) -> str:
    """``text`` on one line: runs of whitespace become single spaces."""
    return " ".join(text.split())


def normalise(text: str) -> str:
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
    text = normalise(answer)
    if not text:
        return None
    keys = [normalise(label) for label in labels]
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


_YES_NO = re.compile(r"\W*(yes|no|true|false)\b", re.IGNORECASE)


def parse_yes_no(answer: str) -> bool | None:
    """True for yes, False for no (also true/false), None when unclear or both."""
    m = _YES_NO.match(answer)
    if m:
        return m.group(1).lower() in ("yes", "true")
    word = parse_label(answer, ["yes", "no"]) or parse_label(answer, ["true", "false"])
    return None if word is None else word in ("yes", "true")


# -- labels -------------------------------------------------------------------------------


def check_hints(op: str, labels: Any) -> tuple[Any, dict[str, str]]:
    """``labels`` as given (a dict label -> meaning becomes its labels) and the meanings."""
    if not isinstance(labels, Mapping):
        return labels, {}
    hints: dict[str, str] = {}
    for label, hint in labels.items():
        if not isinstance(hint, str) or "\n" in hint:
            raise TypeError(f"{op}: the meaning of label {label!r} must be one line of text")
        hints[str(label).strip()] = hint.strip()
    return list(labels), hints


def check_labels(op: str, labels: Any) -> list[str]:
    """The labels, stripped; two that :func:`normalise` alike are a ValueError."""
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
        key = normalise(label)
        if not key:
            raise ValueError(f"{op}: label {i} ({label!r}) has no letters or digits")
        if key in seen:
            raise ValueError(f"{op}: labels {seen[key]!r} and {label!r} are the same label")
        if "\n" in label:
            raise ValueError(f"{op}: label {i} ({label!r}) must be one line")
        seen[key] = label
        checked.append(label.strip())
    return checked


def _label_lines(labels: Sequence[str], numbered: bool, hints: Mapping[str, str]) -> str:
    shown = [f"{label}: {hints[label]}" if hints.get(label) else label for label in labels]
    if numbered:
        return "\n".join(f"{i}. {text}" for i, text in enumerate(shown, 1))
    return "\n".join(f"- {text}" for text in shown)


# -- prompts ------------------------------------------------------------------------------
#
# Measured on Qwen2.5-Coder-1.5B (benchmarks/bench_operators.py and the notes in the
# module docstring): classification reads the labels FIRST and the text last; a filter
# question comes AFTER the text, because a condition stated before the text anchors a
# small model into answering yes (or always choosing the condition's option).


@dataclass(frozen=True)
class Spec:
    """How one operator asks and reads.

    A single prompt (:meth:`prompt`) is ``single[0] + text + single[1]``; a packed one
    (:meth:`packed_prompt`) is ``packed[0]``, the numbered texts one per line, then
    ``packed[1]``. ``parse_single`` reads a single answer and ``parse_line`` one line of a
    packed answer (each gives a value or ``UNPARSED``; :meth:`read_packed` applies it per
    number); ``strip_echo`` removes a text the model repeated in its line.
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

    def prompt(self, text: str) -> str:
        """The prompt that asks about ``text`` alone."""
        return self.single[0] + text + self.single[1]

    def packed_prompt(self, texts: Sequence[str]) -> str:
        """One prompt for ``texts``: numbered from 1, one (flattened) per line."""
        lines = "\n".join(f"{n}. {flat(text)}" for n, text in enumerate(texts, 1))
        return self.packed[0] + lines + self.packed[1]

    def read_packed(self, answer: str, texts: Sequence[str]) -> list[Any]:
        """Per text of a packed prompt, its value read from ``answer``, or ``UNPARSED``."""
        by_number = parse_numbered(answer, len(texts))
        values: list[Any] = []
        for n, text in enumerate(texts, 1):
            got = by_number.get(n)
            if got is not None and self.strip_echo:
                echoed = flat(text)
                if echoed and echoed in got:  # "3. <the text> - billing"
                    got = got.replace(echoed, " ").strip()
            values.append(UNPARSED if not got else self.parse_line(got))
        return values


def classify_spec(op: str, labels: list[str], hints: Mapping[str, str]) -> Spec:
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
            return UNPARSED if label is None else label

        return parse

    return Spec(op, single, packed, reader(True), reader(False))


def _predicate(condition: str) -> str:
    """``condition`` as a predicate after "this text": "about x" -> "is about x"."""
    text = condition.strip().rstrip("?.!").strip()
    text = re.sub(r"^(?:it|the text|this text|the item|this item)\s+", "", text, flags=re.I)
    if re.match(r"about\b", text, re.IGNORECASE):
        text = "is " + text
    return text


def filter_spec(condition: str) -> Spec:
    predicate = _predicate(condition)
    single = ("Text: ", f"\n\nQuestion: is it true that this text {predicate}? Answer yes or no.")
    packed = (
        "Answer a yes/no question about each of the numbered texts below.\n\nTexts:\n",
        f"\n\nQuestion: is it true that the text {predicate}? Answer with one line per "
        'text, "<number>: yes" or "<number>: no", and nothing else.',
    )

    def parse(answer: str) -> Any:
        verdict = parse_yes_no(answer)
        return UNPARSED if verdict is None else verdict

    return Spec("llm_filter", single, packed, parse, parse)


def map_spec(instruction: str) -> Spec:
    single = (f"{instruction}\n\nText:\n", "")
    packed = (
        f"{instruction}\n\nDo this for each numbered text below. Answer with one line per "
        'text, in the form "<number>: <answer>", for every text, and nothing else.\n\n'
        "Texts:\n",
        "",
    )

    def parse_line(answer: str) -> Any:
        return answer.strip() or UNPARSED

    return Spec(
        "llm_map", single, packed, lambda answer: answer.strip(), parse_line, strip_echo=False
    )
