"""Does an answer rest on evidence? Two checks of a FINAL before a run accepts it.

- :func:`grounded`: a value the model wrote as a literal must appear in what it has
  seen (the question, the context preview and the REPL's outputs). An invented number,
  or a name nowhere in the outputs, is not grounded. Pure and cheap.
- The support check: one sub-call is shown the question, the proposed answer and the
  outputs the model saw, and asked what answer the outputs show (:func:`support_prompt`).
  The same answer supports it, another one does not, NOT FOUND gives no verdict
  (:func:`parse_support`). Small models judge "is this supported?" badly (the embedded
  1.5B said UNSUPPORTED to 2 of 3 right answers) but read an answer out of text well,
  so the check asks them to read.

Neither check is applied to a computed value (``FINAL_VAR``, ``FINAL(expr)``) by the
grounding rule; the support check sees every answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rlmagent import prompts

MAX_EVIDENCE_CHARS = 6_000
"""Outputs shown to the support check: the most recent ones, cut to fit a small model."""

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[^\W\d_]{3,}")
_STOPWORDS = frozenset(
    {
        "the",
        "and",
        "for",
        "are",
        "was",
        "were",
        "with",
        "that",
        "this",
        "from",
        "has",
        "have",
        "had",
        "not",
        "but",
        "its",
        "his",
        "her",
        "their",
        "they",
        "them",
        "there",
        "than",
        "then",
        "into",
        "onto",
        "about",
        "which",
        "what",
        "when",
        "where",
        "who",
        "whom",
        "how",
        "why",
        "does",
        "did",
        "done",
        "one",
        "two",
        "all",
        "any",
        "each",
        "per",
        "our",
        "out",
        "yes",
        "answer",
    }
)
WORDS_NEEDED = 2 / 3
"""The share of an answer's content words that must appear in what the model saw."""


def grounded(value: str, seen: str) -> bool:
    """Whether ``value`` rests on ``seen``: every number in it appears there, and most
    of its content words do (the whole value appearing is always enough)."""
    answer = value.strip().strip("\"'`").strip().lower()
    text = seen.lower()
    if not answer or answer in text:
        return True
    numbers = _NUMBER.findall(answer)
    seen_numbers = set(_NUMBER.findall(text))
    if any(n not in seen_numbers and n.replace(",", "") not in seen_numbers for n in numbers):
        return False
    words = [w for w in _WORD.findall(answer) if w not in _STOPWORDS]
    if not words:
        return True
    seen_words = set(_WORD.findall(text))
    found = sum(w in seen_words for w in words)
    return found >= len(words) * WORDS_NEEDED


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the support check said: ``supported`` (None: no verdict could be read)."""

    supported: bool | None
    reason: str = ""


EXCERPT_CHARS = 700
"""Characters kept on each side of a place where the answer appears in the outputs."""


def support_prompt(question: str, answer: str, outputs: str) -> str:
    """The sub-call prompt asking whether ``outputs`` support ``answer`` to ``question``."""
    return prompts.render(
        "support_check",
        question=question,
        answer=answer,
        outputs=evidence_excerpt(outputs, answer) or "(no output)",
    )


def evidence_excerpt(outputs: str, answer: str, limit: int = MAX_EVIDENCE_CHARS) -> str:
    """At most ``limit`` characters of ``outputs`` for the check: the places where the
    answer appears (a few, with their surroundings) and the latest output."""
    if len(outputs) <= limit:
        return outputs
    spans: list[tuple[int, int]] = []
    needle = answer.strip().strip("\"'`").lower()
    if needle:
        text, start = outputs.lower(), 0
        while len(spans) < 4 and (at := text.find(needle, start)) >= 0:
            spans.append((max(0, at - EXCERPT_CHARS), at + len(needle) + EXCERPT_CHARS))
            start = at + len(needle)
    tail = limit - sum(b - a for a, b in spans)
    if tail > 0:
        spans.append((max(0, len(outputs) - tail), len(outputs)))
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    pieces = [outputs[a:b] for a, b in merged]
    gap = "\n[...]\n"
    text = gap.join(pieces)
    return ("[...]\n" if merged[0][0] > 0 else "") + text[: limit + len(gap) * len(pieces)]


_TOKEN = re.compile(r"\w+")
NOT_FOUND = "not found"


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def same_answer(a: str, b: str) -> bool:
    """Whether two answers say the same: the words of the shorter all appear in the
    longer ("Oslo" and "Oslo, Norway"; not "12" and "120")."""
    short, long = sorted((_tokens(a), _tokens(b)), key=len)
    return bool(short) and set(short) <= set(long)


def parse_support(reply: str, answer: str) -> Verdict:
    """The verdict of a support-check reply (the answer the checker read from the
    outputs): the same answer supports it, another one does not, and NOT FOUND (or an
    empty reply) gives no verdict."""
    read = reply.strip().strip("\"'`").strip()
    if not read or NOT_FOUND in read.lower():
        return Verdict(None, "the check found no answer in the outputs")
    if same_answer(read, answer):
        return Verdict(True, f"the outputs show {read[:200]!r}")
    return Verdict(False, f"the outputs point to {read[:200]!r}, not {answer[:200]!r}")
