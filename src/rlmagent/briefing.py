"""What a session tells the root about its REPL at each question: the contexts, the
variables earlier questions left, what was lost, and the earlier questions' answers.

Values only (frozen) and the first message built from them; the session
(:mod:`rlmagent.session`) and the REPL (:mod:`rlmagent.repl`) fill them in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlmagent import prompts
from rlmagent.context import describe_context, summary

HISTORY_SHOWN = 5
"""Earlier questions summarised in a first message (all of them are in ``history``)."""
HISTORY_CHARS = 300
"""Characters of each earlier question and answer in that summary."""
CONTEXTS_SHOWN = 12
"""Contexts described with a preview in a first message; the rest are named only."""
NAMES_SHOWN = 50
"""Contexts past those that a first message names at all."""
VARIABLES_SHOWN = 40
"""User variables listed in a first message (``SHOW_VARS()`` lists them all)."""


@dataclass(frozen=True, slots=True)
class Variable:
    """A user variable in the REPL: its name, type and size (``len``, None if unsized)."""

    name: str
    type: str
    size: int | None = None

    def describe(self) -> str:
        if self.size is None:
            return f"{self.name} ({self.type})"
        unit = "characters" if self.type == "str" else "items"
        return f"{self.name} ({self.type}, {self.size:,} {unit})"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One question of a session and its answer (an entry of the REPL's ``history``)."""

    question: str
    answer: str
    stop_reason: str | None = None
    run_id: str = ""
    turns: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "stop_reason": self.stop_reason,
            "run_id": self.run_id,
            "turns": self.turns,
        }


@dataclass(frozen=True, slots=True)
class Briefing:
    """What a session's question starts from (see the module docstring).

    ``contexts``: name -> description (:func:`rlmagent.context.describe_context`), in
    order, the first being ``context``. ``lost``: the variables a replaced worker lost
    since the last question (``replaced`` says whether it was replaced at all).
    """

    contexts: Mapping[str, Mapping[str, Any]]
    variables: tuple[Variable, ...] = ()
    history: tuple[Exchange, ...] = ()
    lost: tuple[str, ...] = ()
    replaced: bool = False
    notes: tuple[str, ...] = field(default=())


def describe_all(contexts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each context's description, by name."""
    return {name: describe_context(value) for name, value in contexts.items()}


def _clip(text: str, limit: int = HISTORY_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _contexts_text(contexts: Mapping[str, Mapping[str, Any]]) -> str:
    names = list(contexts)
    if not names:
        return prompts.render("session_no_context")
    parts = []
    for index, name in enumerate(names[:CONTEXTS_SHOWN]):
        info = contexts[name]
        where = f"`contexts[{name!r}]`" + (" (also `context`)" if index == 0 else "")
        preview = "\n".join(f"    {line}" for line in info.get("preview", [])) or "    (empty)"
        parts.append(f"- {where}: {summary(dict(info))}. It begins:\n{preview}")
    rest = names[CONTEXTS_SHOWN:]
    if rest:
        shown = ", ".join(repr(n) for n in rest[:NAMES_SHOWN])
        more = f", and {len(rest) - NAMES_SHOWN:,} more" if len(rest) > NAMES_SHOWN else ""
        parts.append(f"- also {len(rest):,} more: {shown}{more} (see `contexts`)")
    return prompts.render(
        "session_contexts",
        count=len(names),
        plural="" if len(names) == 1 else "s",
        contexts="\n".join(parts),
    )


def _variables_text(briefing: Briefing) -> str:
    lines = []
    if briefing.replaced:
        lost = ", ".join(briefing.lost) if briefing.lost else "none were defined"
        lines.append(prompts.render("session_lost", lost=lost))
    if briefing.variables:
        shown = briefing.variables[:VARIABLES_SHOWN]
        more = len(briefing.variables) - len(shown)
        text = ", ".join(v.describe() for v in shown) + (f", and {more} more" if more else "")
        lines.append(prompts.render("session_variables", variables=text))
    return "\n".join(lines)


def _history_text(history: tuple[Exchange, ...]) -> str:
    if not history:
        return ""
    start = max(0, len(history) - HISTORY_SHOWN)
    lines = [
        f"{i + 1}. Q: {_clip(e.question)}\n   A: {_clip(e.answer) or '(no answer)'}"
        for i, e in enumerate(history[start:], start)
    ]
    older = f" ({start} older ones only in `history`)" if start else ""
    return prompts.render(
        "session_history", count=len(history), older=older, exchanges="\n".join(lines)
    )


def first_message(question: str, briefing: Briefing) -> str:
    """The first user message of a session's question."""
    sections = [
        _history_text(briefing.history),
        _contexts_text(briefing.contexts),
        _variables_text(briefing),
        *briefing.notes,
    ]
    body = "\n\n".join(s for s in sections if s)
    return prompts.render("session_first", question=question, body=body)
