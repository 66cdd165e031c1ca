"""Does a sub-call's prompt carry any of the context? A cheap test for blind sub-calls.

Small roots often call ``llm_query("Who founded the company that built X?")``: the
sub-model sees no line of ``context``, invents an answer, and the root takes it as
found. :func:`blind_prompts` says which prompts hold no piece of the context, so the
cell's output can say so where the model reads it. Only a text context is looked at (a
``str``, or a file given by path, read once by :func:`context_text`), and only up to
:data:`MAX_CONTEXT_CHARS` (a bigger one is not checked: the test must stay cheap next
to a model call).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

PIECE_CHARS = 32
"""A prompt "holds the context" when one of its pieces this long is in the context."""
PIECES = 12
"""Pieces tried per prompt, spread over it."""
MAX_PROMPTS = 8
"""Prompts of one batch looked at (the first ones)."""
MAX_CONTEXT_CHARS = 8_000_000
"""A bigger context is not checked."""
MIN_CONTEXT_CHARS = 2_000
"""Nor a smaller one: the model may well have put it in its prompt by other means."""


def context_text(context: object) -> str | None:
    """The text the check compares prompts with: ``context`` itself (a str), a text file
    it names (a :class:`~pathlib.Path`, read once); None for other contexts and for
    sizes outside :data:`MIN_CONTEXT_CHARS`..:data:`MAX_CONTEXT_CHARS`."""
    if isinstance(context, os.PathLike):
        try:
            if Path(context).stat().st_size > MAX_CONTEXT_CHARS * 4:
                return None
            context = Path(context).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    if not isinstance(context, str):
        return None
    return context if MIN_CONTEXT_CHARS <= len(context) <= MAX_CONTEXT_CHARS else None


def holds_context(prompt: str, context: str) -> bool:
    """Whether ``prompt`` holds a :data:`PIECE_CHARS`-character piece of ``context``
    (tried at :data:`PIECES` places; a prompt shorter than a piece is compared whole)."""
    if len(prompt) <= PIECE_CHARS:
        return bool(prompt.strip()) and prompt in context
    last = len(prompt) - PIECE_CHARS
    step = max(1, last // (PIECES - 1))
    return any(prompt[i : i + PIECE_CHARS] in context for i in range(0, last + 1, step)[:PIECES])


def blind_prompts(prompts: Sequence[str], context: str | None) -> int:
    """How many of the first :data:`MAX_PROMPTS` prompts hold no piece of ``context``
    (:func:`context_text`; 0 when it is None)."""
    if context is None:
        return 0
    return sum(not holds_context(p, context) for p in prompts[:MAX_PROMPTS])


def blind_note(fn: str, blind: int, looked_at: int) -> str:
    """The cell's note for ``blind`` of ``looked_at`` prompts that hold no context."""
    which = "prompt holds" if looked_at == 1 else f"of {looked_at} prompts looked at hold"
    count = "" if looked_at == 1 else f"{blind} "
    return (
        f"[note: {fn}: {count}{which} no text of `context`, so the sub-model answered "
        "from its own guesses, not from the context; put the lines it needs into the "
        "prompt (e.g. hits from search(...))]"
    )
