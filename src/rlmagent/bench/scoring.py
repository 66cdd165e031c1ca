"""Scorers: compare a method's answer with an item's gold answer, giving 0.0 to 1.0.

=========  ============================================================================
value      ``sniah``: the gold number appears in the answer and no distractor's does
number     ``oolong`` counts: ``0.75 ** |answer - gold|`` (the RLM paper's rule), on the
           answer's number (the whole answer if it is one number, else its last number)
option     a closed set of options (labels, comparisons): exactly one option is named,
           and it is the gold one
pairs      ``oolong-pairs``: F1 between the unordered pairs in the answer and the gold
exact      ``multihop``: normalised exact match (case, punctuation, articles, spaces)
choice     ``codeqa``: the chosen letter (or the one option quoted) is the gold letter
=========  ============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rlmagent.bench.items import BenchItem
from rlmagent.errors import UsageError

_PUNCT = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PREFIX = re.compile(r"^\s*(?:the\s+)?(?:final\s+)?answer\s*(?:is|:)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_PAIR = re.compile(r"(\d+)\s*(?:,|;|/|&|-|\band\b)\s*(\d+)")


def strip_answer(answer: str) -> str:
    """Drop code fences, backticks, quotes and a leading ``Answer:`` / ``The answer is``."""
    text = answer.strip()
    text = re.sub(r"^```\w*\s*|\s*```$", "", text).strip()
    text = _PREFIX.sub("", text).strip()
    return text.strip("`'\" \n").rstrip(".").strip()


def normalize(text: str) -> str:
    """Lower case, no punctuation, no articles, single spaces."""
    text = _PUNCT.sub(" ", strip_answer(text).lower())
    text = _ARTICLES.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def score_value(answer: str, gold: str, distractors: Iterable[str] = ()) -> float:
    """1.0 when the gold number is in the answer and none of the distractor numbers is."""
    numbers = set(re.findall(r"\d+", answer.replace(",", "")))
    if str(gold) not in numbers:
        return 0.0
    return 0.0 if numbers & {str(d) for d in distractors} else 1.0


def parse_number(answer: str) -> float | None:
    """The answer's number: the whole answer if it is one, else the last number in it."""
    text = strip_answer(answer).replace(",", "")
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    return float(numbers[-1])


def score_number(answer: str, gold: float) -> float:
    """``0.75 ** |answer - gold|``; 0.0 when the answer holds no number."""
    value = parse_number(answer)
    if value is None:
        return 0.0
    return float(0.75 ** abs(value - float(gold)))


def _option_forms(option: str) -> list[str]:
    form = normalize(option)
    shorter = re.sub(r"\s+(than|as)$", "", form)
    return [form] if shorter == form else [form, shorter]


def _mentions(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None


def score_option(answer: str, gold: str, options: Sequence[str]) -> float:
    """1.0 when the answer names exactly one of ``options`` and it is ``gold``."""
    text = normalize(answer)
    named = [o for o in options if any(_mentions(text, f) for f in _option_forms(o))]
    return 1.0 if named == [gold] or (not named and text == normalize(gold)) else 0.0


def parse_pairs(answer: str) -> set[tuple[int, int]]:
    """Unordered pairs of numbers written as ``(a, b)``, ``a, b``, ``a - b``, ``a and b``."""
    pairs = set()
    for a, b in _PAIR.findall(answer):
        x, y = int(a), int(b)
        if x != y:
            pairs.add((min(x, y), max(x, y)))
    return pairs


def score_pairs(answer: str, gold: Iterable[Sequence[int]]) -> float:
    """F1 between the answer's pairs and the gold pairs (1.0 when both are empty)."""
    truth = {(min(int(a), int(b)), max(int(a), int(b))) for a, b in gold}
    found = parse_pairs(answer)
    if not truth:
        return 1.0 if not found else 0.0
    hits = len(truth & found)
    if hits == 0:
        return 0.0
    precision, recall = hits / len(found), hits / len(truth)
    return 2 * precision * recall / (precision + recall)


def score_exact(answer: str, gold: str) -> float:
    """Normalised exact match."""
    return 1.0 if normalize(answer) == normalize(str(gold)) else 0.0


_LETTER_ONLY = re.compile(r"^\(?([A-D])\)?[.):]?$")
_LETTER_CUE = re.compile(r"(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-D])\b", re.IGNORECASE)


def choose_letter(answer: str, options: Sequence[str]) -> str | None:
    """The letter an answer picks, or None when it picks none or several."""
    text = strip_answer(answer)
    letters = "ABCD"[: len(options)]
    if match := _LETTER_ONLY.match(text):
        return match.group(1)
    cued = {m.upper() for m in _LETTER_CUE.findall(text)}
    if len(cued) == 1:
        return cued.pop()
    standalone = set(re.findall(rf"(?<![\w/.])\(?([{letters}])\)(?!\w)", text))
    standalone |= set(re.findall(rf"(?<![\w/.])([{letters}])(?![\w/.)])", text))
    if len(standalone) == 1:
        return standalone.pop()
    quoted = [letters[i] for i, option in enumerate(options) if option and option in text]
    return quoted[0] if len(quoted) == 1 else None


def score_choice(answer: str, gold: str, options: Sequence[str]) -> float:
    """1.0 when the answer picks the gold letter."""
    return 1.0 if choose_letter(answer, options) == gold else 0.0


def score(item: BenchItem, answer: str | None) -> float:
    """Score ``answer`` against ``item`` with the rule the item names."""
    if answer is None:
        return 0.0
    meta: dict[str, Any] = dict(item.meta)
    rule = item.scoring
    if rule == "value":
        return score_value(answer, item.gold, meta.get("distractor_values", ()))
    if rule == "number":
        return score_number(answer, item.gold)
    if rule == "option":
        return score_option(answer, item.gold, meta["options"])
    if rule == "pairs":
        return score_pairs(answer, item.gold)
    if rule == "exact":
        return score_exact(answer, item.gold)
    if rule == "choice":
        return score_choice(answer, item.gold, meta["options"])
    raise UsageError(f"unknown scoring rule {rule!r} in item {item.item_id}")
