"""How a run opens: what its context is said to be, its REPL started (or, in a session,
the kept REPL attached and prepared), and the messages it starts from: the system
message and the first user message (a session's question: :mod:`rlmagent.briefing`).

:class:`~rlmagent.run.Run` calls these in order before its first turn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rlmagent import prompts
from rlmagent.briefing import Briefing, first_message
from rlmagent.context import describe_context, summary
from rlmagent.host import HostFunctions
from rlmagent.repl import Repl
from rlmagent.sandbox.base import Session
from rlmagent.settings import RunSettings


def context_info(context: Any, briefing: Briefing | None) -> dict[str, Any]:
    """The description of the run's context (a session's first, described when added)."""
    if briefing is not None and briefing.contexts:
        return dict(next(iter(briefing.contexts.values())))
    return describe_context(context)


async def open_repl(
    repl: Repl, functions: HostFunctions, context: Any, max_output_chars: int
) -> Session:
    """The REPL started on ``context``, or a session's kept one attached to ``functions``."""
    if repl.session is None:
        return await repl.start(context, functions.handler, functions.specs(), max_output_chars)
    repl.attach(functions.handler)
    return repl.session


async def opening_message(
    question: str,
    info: dict[str, Any],
    repl: Repl,
    briefing: Briefing | None,
    notice: Callable[[str], None],
) -> tuple[str, Briefing | None]:
    """The first user message, and the briefing filled in from the prepared REPL."""
    if briefing is None:
        first = prompts.render(
            "first_user",
            question=question,
            description=summary(info),
            preview="\n".join(info["preview"]) or "(empty)",
        )
        return first, None
    variables, lost, replaced = await repl.prepare()
    briefing = dataclasses.replace(briefing, variables=variables, lost=lost, replaced=replaced)
    if replaced:
        names = ", ".join(lost) or "none"
        notice(f"session: the REPL's worker was replaced; variables lost: {names}")
    return first_message(question, briefing), briefing


def system_message(settings: RunSettings, functions: HostFunctions) -> str:
    """The run's system message: the settings' own, or the profile's with the functions."""
    if settings.system_prompt is not None:
        return settings.system_prompt
    return prompts.system_message(
        functions.described(),
        list(settings.tools.values()),
        profile=settings.prompt_profile,
        sub_calls=settings.sub_calls,
    )
