"""One call of a user tool from the REPL: its arguments bound to the tool's parameters,
the tool run off the event loop, its result made a JSON value, and its
:class:`~rlmagent.events.ToolCalled` event published with the arguments kept cut.

:meth:`rlmagent.host.HostFunctions.dispatch` routes a tool's name here; the tools
themselves (and the binding of their arguments) are in :mod:`rlmagent.tools`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rlmagent.engines.base import run_blocking
from rlmagent.events import Event, ToolCalled
from rlmagent.tools import Tool, bind_arguments, to_json_value
from rlmagent.types import RECORD_CHARS, record_text


async def call_tool(
    tool: Tool,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    publish: Callable[[Event], None],
    ev: dict[str, Any],
) -> Any:
    """``tool`` called with model code's ``args`` / ``kwargs``; ``ev``: the run's
    ``run_id`` / ``depth`` / ``parent_id`` for the event ``publish`` is given."""
    bound = bind_arguments(tool, args, kwargs)
    t0 = time.monotonic()
    try:
        result = to_json_value(await run_blocking(tool.execute, **bound))
    except Exception as exc:
        publish(
            ToolCalled(
                **ev,
                name=tool.name,
                arguments=_kept_arguments(bound),
                result=None,
                error=record_text(f"{type(exc).__name__}: {exc}"),
                latency_s=time.monotonic() - t0,
            )
        )
        raise
    publish(
        ToolCalled(
            **ev,
            name=tool.name,
            arguments=_kept_arguments(bound),
            result=str(result)[:2000],
            latency_s=time.monotonic() - t0,
        )
    )
    return result


def _kept_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call's arguments as its event keeps them: a string, or a value whose JSON,
    longer than ``RECORD_CHARS``, is kept as that JSON cut (``record_text``)."""
    kept: dict[str, Any] = {}
    for key, value in arguments.items():
        if isinstance(value, str):
            kept[key] = record_text(value)
        elif value is None or isinstance(value, bool | int | float):
            kept[key] = value
        else:
            text = json.dumps(value, ensure_ascii=False, default=repr)
            kept[key] = value if len(text) <= RECORD_CHARS else record_text(text)
    return kept
