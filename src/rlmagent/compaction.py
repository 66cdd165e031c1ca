"""Keeping a root's conversation inside its model's window.

A long run (or a long session question) grows the root's messages turn by turn. Before a
root call whose prompt would not fit the window (``engine.context_window(model)``,
estimated at 4 characters a token, with room kept for the answer and for the estimate's
error, and calibrated by the prompt tokens the engine reported for the last call),
:class:`Compactor` compacts the older turns, in two steps:

1. shrink: each older turn keeps its code (cut when long) and its short outputs; a long
   output keeps its first lines and a note of what was removed; a superseded turn (its
   code raised, or the same code runs again later) becomes one line;
2. fold, when shrinking was not enough: the older turns are summarised by one sub-call
   (or, when none can be made, dropped with a note listing their code) and the summary
   joins the first message.

The system message, the first message (the question) and the latest
:data:`KEEP_LATEST_TURNS` turns are always kept. Each compaction is a
:class:`Compaction` saying which turns were changed and how; the run publishes it as a
``Compacted`` event.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rlmagent import prompts
from rlmagent.budget import estimate_prompt
from rlmagent.types import Message

KEEP_LATEST_TURNS = 2
"""Turns (a reply and what followed it) never compacted."""
SHORT_OUTPUT_CHARS = 400
"""An observation this short is kept whole."""
HEAD_CHARS = 240
"""What a shrunk observation keeps of a long one."""
KEPT_CODE_CHARS = 1_500
"""What a shrunk turn keeps of its reply (its code)."""
WINDOW_SHARE = 0.8
"""The share of the window a prompt estimate may use: the estimate (4 characters a
token) undercounts code-heavy text, and chat templates add their own tokens."""
TARGET_SHARE = 0.6
"""A compaction aims at this share of the room, so that it is not needed every turn."""
SUMMARY_INPUT_CHARS = 24_000
"""The most of the older turns' text the summary sub-call reads."""

Summarise = Callable[[str], Awaitable[str | None]]
"""``summarise(prompt) -> summary`` (one sub-call), or None when none can be made."""

_ERROR_ONLY = re.compile(r"^\[(?:output|block \d+)\]\n\[error\]\n", re.MULTILINE)
_LABEL = re.compile(r"^\[(?:output|block \d+)\]\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Compaction:
    """One compaction of a root's messages (see the module docstring).

    ``shrunk``: the turns whose long outputs (or superseded code) were cut; ``folded``:
    the turns replaced by ``summary`` (None: they were dropped with a note).
    """

    shrunk: tuple[int, ...]
    folded: tuple[int, ...]
    summary: str | None
    tokens_before: int
    tokens_after: int
    room: int

    @property
    def note(self) -> str:
        parts = []
        if self.shrunk:
            parts.append(f"long outputs of turns {_span(self.shrunk)} shortened")
        if self.folded:
            how = "summarised" if self.summary is not None else "dropped (their code is listed)"
            parts.append(f"turns {_span(self.folded)} {how}")
        return (
            "; ".join(parts)
            + f": prompt ~{self.tokens_before:,} -> ~{self.tokens_after:,} tokens"
            + f" (room {self.room:,})"
        )


def _span(turns: tuple[int, ...]) -> str:
    if len(turns) > 2 and list(turns) == list(range(turns[0], turns[-1] + 1)):
        return f"{turns[0]}-{turns[-1]}"
    return ", ".join(map(str, turns))


def room_for(window: int, max_tokens: int) -> int:
    """Prompt tokens (estimated) a root call may send in ``window``."""
    return max(1, int(window * WINDOW_SHARE) - max_tokens)


def _groups(messages: list[Message]) -> list[list[Message]]:
    """The turns after the first message: an assistant reply and what follows it."""
    groups: list[list[Message]] = []
    for message in messages:
        if message.get("role") == "assistant" or not groups:
            groups.append([message])
        else:
            groups[-1].append(message)
    return groups


def _cut(text: str, limit: int, what: str) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit].rstrip()}\n[... {len(text) - limit:,} characters of {what} removed]"


def _superseded(group: list[Message], later: list[list[Message]]) -> bool:
    reply = group[0].get("content", "")
    if any(g[0].get("content") == reply for g in later):
        return True
    observation = "\n".join(m.get("content", "") for m in group[1:])
    labels = len(_LABEL.findall(observation))
    return labels > 0 and len(_ERROR_ONLY.findall(observation)) == labels


def _shrink(group: list[Message], number: int, superseded: bool) -> list[Message]:
    reply, rest = group[0], group[1:]
    if superseded:
        line = f"[turn {number}: superseded (its code raised, or ran again later); removed]"
        return [
            {**reply, "content": _cut(reply.get("content", ""), 300, "code")},
            *({**m, "content": line} for m in rest[:1]),
            *rest[1:],
        ]
    kept = [{**reply, "content": _cut(reply.get("content", ""), KEPT_CODE_CHARS, "code")}]
    for message in rest:
        text = message.get("content", "")
        if len(text) > SHORT_OUTPUT_CHARS:
            text = _cut(text, HEAD_CHARS, "output")
        kept.append({**message, "content": text})
    return kept


class Compactor:
    """Compacts one run's root messages when they would not fit (module docstring)."""

    def __init__(
        self, window: int, max_tokens: int, question: str, summarise: Summarise | None
    ) -> None:
        self.window = window
        self.room = room_for(window, max_tokens)
        self.question = question
        self.summarise = summarise
        self.summary: str | None = None
        """What the folded turns found (None: none folded yet, or no summary made)."""
        self.folded = 0
        """Turns folded into the first message so far."""
        self._first: str | None = None
        self._codes: list[str] = []
        self.scale = 1.0
        """Tokens the engine counted per estimated token in the last root call (at least
        1): code and odd text take more tokens than 4 characters each."""

    def observe(self, messages: list[Message], prompt_tokens: int) -> None:
        """Calibrate the estimate with the prompt tokens an engine reported for
        ``messages``."""
        estimated = estimate_prompt(messages)
        if estimated > 0 and prompt_tokens > 0:
            self.scale = max(1.0, prompt_tokens / estimated)

    def size(self, messages: list[Message]) -> int:
        """The prompt tokens ``messages`` are expected to take (the calibrated estimate)."""
        return int(estimate_prompt(messages) * self.scale)

    def needed(self, messages: list[Message]) -> bool:
        return self.size(messages) > self.room

    async def fit(self, messages: list[Message]) -> Compaction | None:
        """Compact ``messages`` in place when they would not fit; what was done."""
        before = self.size(messages)
        if before <= self.room or len(messages) < 3:
            return None
        if self._first is None:
            self._first = messages[1].get("content", "")
        head, groups = messages[:2], _groups(messages[2:])
        older, latest = groups[:-KEEP_LATEST_TURNS], groups[-KEEP_LATEST_TURNS:]
        base = self.folded + 1
        latest_base = base + len(older)
        shrunk: tuple[int, ...] = ()
        folded: tuple[int, ...] = ()
        summary = None
        candidate = messages
        if older:
            shrunk_groups = [
                _shrink(g, base + i, _superseded(g, groups[i + 1 :])) for i, g in enumerate(older)
            ]
            shrunk = tuple(
                base + i
                for i, (a, b) in enumerate(zip(older, shrunk_groups, strict=True))
                if a != b
            )
            candidate = head + _flat(shrunk_groups) + _flat(latest)
            if self.size(candidate) > int(self.room * TARGET_SHARE):
                shrunk, folded = (), tuple(range(base, latest_base))
                summary = await self._summary(older, folded)
                self.folded += len(older)
                if summary is not None:
                    self.summary, self._codes = summary, []
                else:
                    self._codes.extend(_code_line(base + i, g) for i, g in enumerate(older))
                first = {**head[1], "content": self._first_with()}
                candidate = [head[0], first, *_flat(latest)]
        if self.size(candidate) > self.room:  # the latest turns alone do not fit
            candidate, cut = self._cut_latest(candidate, latest_base)
            shrunk += cut
        messages[:] = candidate
        return Compaction(shrunk, folded, summary, before, self.size(candidate), self.room)

    def _cut_latest(
        self, messages: list[Message], first_number: int
    ) -> tuple[list[Message], tuple[int, ...]]:
        """Shorten the latest turns' long outputs, the last one only as far as needed."""
        head, groups = messages[:2], _groups(messages[2:])
        cut = tuple(first_number + i for i in range(len(groups)))
        kept = [_shrink(g, first_number + i, False) for i, g in enumerate(groups[:-1])]
        last = groups[-1]
        rest = head + _flat(kept) + [last[0]]
        room_chars = int((self.room - self.size(rest)) / self.scale * 4 * 0.9)
        tail = []
        for message in last[1:]:
            limit = max(HEAD_CHARS, room_chars // max(1, len(last) - 1))
            tail.append({**message, "content": _cut(message.get("content", ""), limit, "output")})
        return rest + tail, cut

    async def _summary(self, older: list[list[Message]], turns: tuple[int, ...]) -> str | None:
        if self.summarise is None:
            return None
        parts = []
        if self.summary:
            parts.append(f"Summary of the turns before:\n{self.summary}")
        for number, group in zip(turns, older, strict=True):
            text = "\n".join(m.get("content", "") for m in group)
            parts.append(f"--- turn {number} ---\n{text}")
        text = "\n\n".join(parts)
        if len(text) > SUMMARY_INPUT_CHARS:  # the latest of them matter most
            half = SUMMARY_INPUT_CHARS // 2
            text = f"{text[:half]}\n[...]\n{text[-half:]}"
        prompt = prompts.render("compact_summary", question=self.question, turns=text)
        summary = await self.summarise(prompt)
        return summary.strip() if summary and summary.strip() else None

    def _first_with(self) -> str:
        assert self._first is not None
        span = f"1-{self.folded}" if self.folded > 1 else "1"
        notes = []
        if self.summary is not None:
            notes.append(prompts.render("compacted", turns=span, summary=self.summary))
        if self._codes:
            codes = "\n".join(self._codes)
            while len(codes) > self.room / self.scale and "\n" in codes:  # oldest first
                codes = codes.split("\n", 1)[1]
            notes.append(prompts.render("compacted_dropped", codes=codes))
        return "\n\n".join([self._first, *notes])


def _flat(groups: list[list[Message]]) -> list[Message]:
    return [m for g in groups for m in g]


def _code_line(number: int, group: list[Message]) -> str:
    reply = " ".join(group[0].get("content", "").split())
    return f"- turn {number}: {_cut(reply, 160, 'code')}".replace("\n", " ")
