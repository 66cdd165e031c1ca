"""Progress of one run as short text lines, for SSE ``reasoning_content`` and MCP.

A :class:`ProgressFeed` subscribes to the run's own :class:`~rlmagent.events.EventBus`
(one bus per request, so concurrent runs never mix) and turns turn, cell and sub-call
events into lines on an :class:`asyncio.Queue`. Events are published on the loop's thread
or on worker threads; lines are handed to the loop thread-safely.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass

from rlmagent.events import (
    CodeExecuted,
    Event,
    EventBus,
    SubCallEnded,
    SubCallStarted,
    TurnStarted,
)


@dataclass(frozen=True)
class ProgressLine:
    """One line of progress; ``done`` / ``total`` count the sub-calls so far."""

    text: str
    done: int
    total: int


class ProgressFeed:
    """Lines about a run's turns, cells and sub-calls, on ``queue`` (see the module doc)."""

    def __init__(self, bus: EventBus, loop: asyncio.AbstractEventLoop) -> None:
        self.queue: asyncio.Queue[ProgressLine] = asyncio.Queue()
        self._loop = loop
        self._lock = threading.Lock()
        self._started = 0
        self._ended = 0
        self._unsubscribe = bus.subscribe(
            self._on_event, TurnStarted, CodeExecuted, SubCallStarted, SubCallEnded
        )

    def close(self) -> None:
        self._unsubscribe()

    def _on_event(self, event: Event) -> None:
        text = self._describe(event)
        if text is None:
            return
        with self._lock:
            line = ProgressLine(text, self._ended, self._started)
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
            self._loop.call_soon_threadsafe(self.queue.put_nowait, line)

    def _describe(self, event: Event) -> str | None:
        indent = "  " * event.depth
        if isinstance(event, TurnStarted):
            return f"{indent}turn {event.turn} started\n"
        if isinstance(event, CodeExecuted):
            result = event.result
            how = "failed" if result.error else "timed out" if result.timed_out else "ran"
            return (
                f"{indent}cell {event.turn}.{event.cell} {how} in {result.duration_s:.2f} s "
                f"({len(result.output):,} characters of output)\n"
            )
        with self._lock:
            if isinstance(event, SubCallStarted):
                self._started += 1
                return None
            if isinstance(event, SubCallEnded):
                self._ended += 1
                done, total = self._ended, self._started
            else:  # pragma: no cover - subscribed to the four types above only
                return None
        return f"{indent}sub-calls done {done} / {total}\n"
