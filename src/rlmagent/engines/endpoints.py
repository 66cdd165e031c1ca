"""One engine over several servers of the same model: least in flight, failing ones out.

:class:`MultiEndpointEngine` holds one engine per endpoint (for OpenAI-compatible
servers, one :class:`~rlmagent.engines.openai_compat.OpenAICompatEngine` per base URL:
``get_engine("vllm:qwen3", base_url=[url1, url2, url3])``, or ``--base-url`` repeated on
the CLI). Each request goes to the endpoint with the fewest requests in flight among
those that are up (ties: the one that got fewest requests so far). An endpoint whose
request fails for a reason of the server's (no connection, a timeout, a 5xx or 429
after its engine's own retries, a malformed body) is taken out for a back-off time
(:data:`DEFAULT_BACKOFF_S`, doubled after each failure in a row, at most
:data:`DEFAULT_MAX_BACKOFF_S`) and the request is sent to another; after the back-off
it gets requests again, and one success puts it back for good. When every endpoint is
out, the one that is due back first is tried anyway. A fatal answer (400, 401...) is the
request's fault and is raised at once.

Usage and cost are per model, as with one server (every endpoint serves the same
model names and has the same prices); :meth:`MultiEndpointEngine.stats` tells how the
requests were shared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rlmagent.engines.base import Engine, EngineBase
from rlmagent.engines.pricing import Price
from rlmagent.engines.retry import is_retryable_status
from rlmagent.errors import EngineError, UsageError
from rlmagent.types import Completion, Message

DEFAULT_BACKOFF_S = 2.0
"""Seconds a failing endpoint is out after its first failure."""
DEFAULT_MAX_BACKOFF_S = 60.0
"""The longest time out (failures in a row double it up to this)."""


@dataclass(frozen=True, slots=True)
class EndpointStats:
    """How one endpoint has been used."""

    identity: str
    requests: int
    failures: int
    in_flight: int
    up: bool


class _Endpoint:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.in_flight = 0
        self.requests = 0
        self.failures = 0
        self.failed_in_a_row = 0
        self.down_until = 0.0


def endpoint_fault(exc: BaseException) -> bool:
    """Whether a failed request is the server's fault (try another endpoint)."""
    if not isinstance(exc, EngineError) or isinstance(exc, UsageError):
        return False
    return exc.status is None or is_retryable_status(exc.status)


class MultiEndpointEngine(EngineBase):
    """Sends each request to one of several equivalent engines (see the module doc)."""

    def __init__(
        self,
        endpoints: Sequence[Engine],
        *,
        backoff_s: float = DEFAULT_BACKOFF_S,
        max_backoff_s: float = DEFAULT_MAX_BACKOFF_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(endpoints, Engine) or not endpoints:
            raise UsageError("MultiEndpointEngine needs a non-empty list of engines")
        for engine in endpoints:
            if not isinstance(engine, Engine):
                raise UsageError(f"an endpoint must be an Engine, got {engine!r}")
        if backoff_s <= 0 or max_backoff_s < backoff_s:
            raise UsageError("backoff_s must be > 0 and max_backoff_s >= backoff_s")
        self._endpoints = [_Endpoint(e) for e in endpoints]
        first = endpoints[0]
        self.provider = first.provider
        self.model = getattr(first, "model", "")
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._lock = threading.Lock()

    # -- what the engine knows ---------------------------------------------------------
    @property
    def identity(self) -> str:
        return " | ".join(ep.engine.identity for ep in self._endpoints)

    def price(self, model: str) -> Price | None:
        return self._endpoints[0].engine.price(model)

    def context_window(self, model: str) -> int | None:
        return self._endpoints[0].engine.context_window(model)

    @property
    def endpoints(self) -> list[Engine]:
        return [ep.engine for ep in self._endpoints]

    def stats(self) -> list[EndpointStats]:
        now = self._clock()
        with self._lock:
            return [
                EndpointStats(
                    ep.engine.identity,
                    ep.requests,
                    ep.failures,
                    ep.in_flight,
                    up=ep.down_until <= now,
                )
                for ep in self._endpoints
            ]

    # -- choosing ----------------------------------------------------------------------
    def _take(self, tried: set[int]) -> _Endpoint | None:
        """The endpoint for the next attempt (counted in flight), or None: all tried."""
        now = self._clock()
        with self._lock:
            left = [(i, ep) for i, ep in enumerate(self._endpoints) if i not in tried]
            if not left:
                return None
            up = [(i, ep) for i, ep in left if ep.down_until <= now]
            if up:
                _, ep = min(up, key=lambda item: (item[1].in_flight, item[1].requests, item[0]))
            else:  # all out: the one due back first
                _, ep = min(left, key=lambda item: item[1].down_until)
            ep.in_flight += 1
            ep.requests += 1
            return ep

    def _index(self, ep: _Endpoint) -> int:
        return self._endpoints.index(ep)

    def _done(self, ep: _Endpoint, *, failed: bool) -> None:
        with self._lock:
            ep.in_flight -= 1
            if not failed:
                ep.failed_in_a_row = 0
                ep.down_until = 0.0
                return
            ep.failures += 1
            ep.failed_in_a_row += 1
            wait = min(self.max_backoff_s, self.backoff_s * 2 ** (ep.failed_in_a_row - 1))
            ep.down_until = self._clock() + wait

    def _released(self, ep: _Endpoint) -> None:
        with self._lock:
            ep.in_flight -= 1

    # -- the Engine protocol -----------------------------------------------------------
    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        tried: set[int] = set()
        last: BaseException | None = None
        while (ep := self._take(tried)) is not None:
            try:
                completion = ep.engine.generate(
                    messages,
                    model=model or self.model,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    **kwargs,
                )
            except BaseException as exc:
                if not endpoint_fault(exc):
                    self._released(ep)
                    raise
                self._done(ep, failed=True)
                tried.add(self._index(ep))
                last = exc
                continue
            self._done(ep, failed=False)
            return completion
        raise self._all_failed(last)

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        tried: set[int] = set()
        last: BaseException | None = None
        while (ep := self._take(tried)) is not None:
            try:
                completion = await ep.engine.agenerate(
                    messages,
                    model=model or self.model,
                    temperature=temperature,
                    max_tokens=max_tokens,
                    **kwargs,
                )
            except BaseException as exc:  # CancelledError too: the slot is given back
                if not endpoint_fault(exc):
                    self._released(ep)
                    raise
                self._done(ep, failed=True)
                tried.add(self._index(ep))
                last = exc
                continue
            self._done(ep, failed=False)
            return completion
        raise self._all_failed(last)

    def _all_failed(self, last: BaseException | None) -> EngineError:
        status = last.status if isinstance(last, EngineError) else None
        return EngineError(
            f"every endpoint failed ({len(self._endpoints)}: {self.identity}); last: {last}",
            provider=self.provider,
            model=self.model,
            status=status,
        )

    def close(self) -> None:
        for ep in self._endpoints:
            close = getattr(ep.engine, "close", None)
            if callable(close):
                close()

    def __repr__(self) -> str:
        return f"MultiEndpointEngine({self.provider!r}, {len(self._endpoints)} endpoints)"
