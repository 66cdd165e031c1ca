"""Live sessions of ``rlm serve``: a REPL and its contexts kept between requests.

A session is an :class:`~rlmagent.RLMAgent` session (its sandbox stays up, its variables
and contexts persist) plus the agent's own event bus, so each request's progress can be
followed. Ids are random and unguessable (``secrets.token_urlsafe``), issued by the
server. A session idle longer than ``ttl_s`` is closed (its sandbox killed); at most
``max_sessions`` live at once, and opening one more is refused with 429 (``Retry-After``:
when the oldest idle one expires). One request at a time per session: a second one
while the first runs gets 409.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlmagent.agent import RLMAgent
from rlmagent.events import EventBus
from rlmagent.serve.errors import ApiError


@dataclass
class LiveSession:
    """One session: the agent's session object, its bus, and when it was last used."""

    id: str
    agent: RLMAgent
    session: Any
    bus: EventBus
    last_used: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def busy(self) -> bool:
        return self.lock.locked()


class SessionStore:
    """The server's live sessions (see the module doc)."""

    def __init__(
        self, *, max_sessions: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._clock = clock
        self._live: dict[str, LiveSession] = {}

    def __len__(self) -> int:
        return len(self._live)

    def ids(self) -> list[str]:
        return list(self._live)

    async def open(
        self, agent: RLMAgent, bus: EventBus, context: Any, contexts: Any
    ) -> LiveSession:
        """Start a session on ``agent`` holding ``context`` / ``contexts``; 429 when full."""
        await self.sweep()
        if len(self._live) >= self.max_sessions:
            raise ApiError(
                429,
                f"this server keeps at most {self.max_sessions} live sessions; close one "
                "(DELETE /v1/rlm/sessions/ID) or retry when an idle one expires",
                code="too_many_sessions",
                headers={"Retry-After": str(self._next_expiry())},
            )
        session = agent.session(context, contexts=contexts)
        live = LiveSession(secrets.token_urlsafe(18), agent, session, bus, self._clock())
        self._live[live.id] = live
        return live

    def get(self, session_id: str) -> LiveSession:
        live = self._live.get(session_id)
        if live is None or self._expired(live):
            raise ApiError(
                404,
                "no live session has this id (it expired, was closed, or never existed); "
                "open one with rlm.session = 'new'",
                code="session_not_found",
                param="rlm.session",
            )
        return live

    def touch(self, live: LiveSession) -> None:
        live.last_used = self._clock()

    async def close(self, session_id: str) -> bool:
        live = self._live.pop(session_id, None)
        if live is None:
            return False
        await asyncio.to_thread(live.session.close)
        return True

    async def sweep(self) -> int:
        """Close every idle session past its TTL; return how many."""
        expired = [sid for sid, live in self._live.items() if self._expired(live)]
        for sid in expired:
            await self.close(sid)
        return len(expired)

    async def close_all(self) -> None:
        for sid in list(self._live):
            await self.close(sid)

    def _expired(self, live: LiveSession) -> bool:
        return not live.busy and self._clock() - live.last_used > self.ttl_s

    def _next_expiry(self) -> int:
        idle = [live.last_used for live in self._live.values() if not live.busy]
        if not idle:
            return max(1, math.ceil(self.ttl_s))
        return max(1, math.ceil(min(idle) + self.ttl_s - self._clock()))
