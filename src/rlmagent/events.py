"""Typed events and the :class:`EventBus` they travel on.

The agent loop never prints: it publishes events, and consoles, progress bars and
trajectory writers subscribe. A bus is injected (``RLMAgent(bus=...)``), never global.
Every event carries the ``run_id`` of the (sub-)run that emitted it, its recursion
``depth``, the ``parent_id`` of the sub-call that started it (None at the root) and a
wall-clock ``time``.
"""

from __future__ import annotations

import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rlmagent.types import AgentResult, Completion, ExecResult, SubCall


@dataclass(frozen=True, kw_only=True)
class Event:
    run_id: str
    depth: int = 0
    parent_id: str | None = None
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    question: str
    context_info: Mapping[str, Any]
    model: str
    sub_model: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class RunEnded(Event):
    result: AgentResult | None
    error: str | None = None


@dataclass(frozen=True, kw_only=True)
class TurnStarted(Event):
    turn: int


@dataclass(frozen=True, kw_only=True)
class RootCompletion(Event):
    turn: int
    completion: Completion
    latency_s: float


@dataclass(frozen=True, kw_only=True)
class CodeStarted(Event):
    turn: int
    cell: int
    code: str


@dataclass(frozen=True, kw_only=True)
class CodeExecuted(Event):
    turn: int
    cell: int
    code: str
    result: ExecResult


@dataclass(frozen=True, kw_only=True)
class TurnEnded(Event):
    turn: int
    observation: str


@dataclass(frozen=True, kw_only=True)
class BatchStarted(Event):
    batch_id: str
    size: int


@dataclass(frozen=True, kw_only=True)
class BatchEnded(Event):
    batch_id: str
    size: int
    failures: int


@dataclass(frozen=True, kw_only=True)
class SubCallStarted(Event):
    """A sub-call began. ``prompt`` is kept to :data:`rlmagent.types.RECORD_CHARS`;
    ``prompt_chars`` is its full length (None given: the length of ``prompt``)."""

    call_id: str
    prompt: str
    model: str
    batch_id: str | None = None
    prompt_chars: int | None = None

    def __post_init__(self) -> None:
        if self.prompt_chars is None:
            object.__setattr__(self, "prompt_chars", len(self.prompt))


@dataclass(frozen=True, kw_only=True)
class SubCallEnded(Event):
    call: SubCall


@dataclass(frozen=True, kw_only=True)
class ToolCalled(Event):
    name: str
    arguments: Mapping[str, Any]
    result: str | None
    error: str | None = None
    latency_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """Something a user should know that is not an error (fallback isolation, retries)."""

    message: str


@dataclass(frozen=True, kw_only=True)
class Compacted(Event):
    """The root's older turns were compacted to fit its window (see compaction.py):
    ``shrunk`` turns lost long outputs, ``folded`` ones were summarised (``summary``) or,
    with ``summary`` None, dropped with a note; prompt estimates before and after."""

    turn: int
    shrunk: tuple[int, ...]
    folded: tuple[int, ...]
    summary: str | None
    tokens_before: int
    tokens_after: int
    window: int
    note: str


Subscriber = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe of :class:`Event` objects.

    Subscribers are called synchronously, in subscription order, on the publishing
    thread. A subscriber that raises does not break the run, and the other subscribers
    still get the event. Its first failure is reported once, loudly: a ``RuntimeWarning``
    with the traceback and a :class:`Notice` event (which the console and the trace
    show) naming the subscriber and the event it lost. Later failures of the same
    subscriber are counted in :attr:`lost` (subscriber -> event type -> count), and when
    a root run ends the events it missed since are reported once more, as a count.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, tuple[type[Event], ...]]] = []
        self._lock = threading.RLock()
        self.lost: dict[str, dict[str, int]] = {}
        """Events each failing subscriber did not get, by event type (its ``repr`` keys)."""
        self._unreported: dict[str, int] = {}

    def subscribe(self, fn: Subscriber, *types: type[Event]) -> Callable[[], None]:
        """Call ``fn`` for every event (or only for ``types``). Returns an unsubscribe."""
        entry = (fn, types or (Event,))
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for fn, types in subscribers:
            if not isinstance(event, types):
                continue
            try:
                fn(event)
            except Exception:
                self._failed(fn, event)
        if isinstance(event, RunEnded) and event.parent_id is None:
            self._report_lost()

    def _failed(self, fn: Subscriber, event: Event) -> None:
        name = _name(fn)
        kind = type(event).__name__
        with self._lock:
            first = name not in self.lost
            counts = self.lost.setdefault(name, {})
            counts[kind] = counts.get(kind, 0) + 1
            if not first:
                self._unreported[name] = self._unreported.get(name, 0) + 1
        if not first:
            return
        message = (
            f"event subscriber {name} failed on a {kind} event and did not get it; its "
            "later failures are counted in EventBus.lost and reported when the run ends"
        )
        details = traceback.format_exc(limit=-8)
        self.publish(Notice(run_id=event.run_id, depth=event.depth, message=message))
        warnings.warn(f"{message}:\n{details}", RuntimeWarning, stacklevel=3)

    def _report_lost(self) -> None:
        with self._lock:
            unreported, self._unreported = self._unreported, {}
        for name, count in unreported.items():
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(self.lost[name].items()))
            warnings.warn(
                f"event subscriber {name} missed {count} more event(s) after its first "
                f"failure; everything it missed: {kinds}",
                RuntimeWarning,
                stacklevel=3,
            )


def _name(fn: Subscriber) -> str:
    try:
        text = repr(fn)
    except Exception:
        text = f"<{type(fn).__name__}>"
    return text if len(text) <= 200 else text[:200] + "...>"
