"""The Engine protocol every model backend implements, and small shared helpers.

An engine turns a list of chat messages into a :class:`~rlmagent.types.Completion`,
synchronously (``generate``) and asynchronously (``agenerate``). Engines must be safe to
call from several threads and tasks at once: ``llm_batch`` fans out concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from rlmagent.engines.pricing import Price
from rlmagent.errors import UsageError
from rlmagent.types import Completion, Message

T = TypeVar("T")


@runtime_checkable
class Engine(Protocol):
    """A chat model backend: what every caller of an engine may ask of it.

    ``provider`` names the backend (``"openai"``, ``"local"``, ``"function"``...) for
    error messages. ``identity`` names it in cache keys: the provider, plus the server's
    base URL when there is one. ``price(model)`` is what ``model`` costs (None: unknown),
    ``context_window(model)`` its window in tokens, prompt plus answer (None: unknown).
    ``wrapped`` is the engine a wrapper (the completion cache's, a router) sends its
    calls to, None for an engine that answers itself; a wrapper's identity, price and
    window are its wrapped engine's.

    :class:`EngineBase` gives the defaults of a base engine, :class:`EngineWrapper` those
    of a wrapper.
    """

    provider: str

    @property
    def identity(self) -> str: ...

    @property
    def wrapped(self) -> Engine | None: ...

    def price(self, model: str) -> Price | None: ...

    def context_window(self, model: str) -> int | None: ...

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion: ...

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion: ...


@runtime_checkable
class NamedEngine(Engine, Protocol):
    """An engine that knows the model it was built for (what ``get_engine`` returns)."""

    model: str


class EngineBase:
    """Defaults of the :class:`Engine` protocol for an engine that answers itself.

    Its identity is its provider, it wraps nothing, and the price and window of every
    model are unknown: subclasses override what they know. ``generate`` and
    ``agenerate`` are theirs to write.
    """

    provider: str = "engine"

    @property
    def identity(self) -> str:
        return self.provider

    @property
    def wrapped(self) -> Engine | None:
        return None

    def price(self, model: str) -> Price | None:
        return None

    def context_window(self, model: str) -> int | None:
        return None


class EngineWrapper(EngineBase):
    """Base of an engine that sends its calls on to another (a cache, a router).

    ``provider``, ``identity``, ``price`` and ``context_window`` are the wrapped
    engine's, and so is ``model`` when the wrapped engine has one (a
    :class:`NamedEngine`). ``generate`` and ``agenerate`` pass calls through; subclasses
    override them to add what they do.
    """

    def __init__(self, wrapped: Engine) -> None:
        if not isinstance(wrapped, Engine):
            raise UsageError(
                f"{type(self).__name__} needs an Engine (see rlmagent.engines.Engine), "
                f"got {wrapped!r}"
            )
        self._wrapped = wrapped
        self.provider = wrapped.provider
        if isinstance(wrapped, NamedEngine):
            self.model = wrapped.model

    @property
    def wrapped(self) -> Engine:
        return self._wrapped

    @property
    def identity(self) -> str:
        return self._wrapped.identity

    def price(self, model: str) -> Price | None:
        return self._wrapped.price(model)

    def context_window(self, model: str) -> int | None:
        return self._wrapped.context_window(model)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        return self._wrapped.generate(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, **kwargs
        )

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        return await self._wrapped.agenerate(
            messages, model=model, temperature=temperature, max_tokens=max_tokens, **kwargs
        )


class _DaemonPool:
    """Reusable daemon threads for blocking work, growing on demand, never capped.

    Unlike :func:`asyncio.to_thread` it is not capped by the default executor's size
    (``min(32, cores + 4)``, so 6 on a 2-core machine), which would silently throttle a
    batch of blocking sub-calls below ``max_concurrency``; unlike a fresh thread per call
    it does not pay a thread start per cell. Daemon threads never block interpreter exit.
    Idle threads exit after :data:`IDLE_SECONDS`.
    """

    IDLE_SECONDS = 60.0

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:  # put under the lock: an idle thread must not leave meanwhile
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._work, name="rlmagent-blocking", daemon=True).start()
            self._jobs.put(job)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job()
            with self._lock:
                self._idle += 1


_POOL = _DaemonPool()


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking callable on a pooled daemon thread and await its result."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def job() -> None:
        value: Any
        try:
            value, ok = fn(*args, **kwargs), True
        except BaseException as exc:  # handed to the awaiting task, not swallowed
            value, ok = exc, False
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            loop.call_soon_threadsafe(settle, ok, value)

    _POOL.submit(job)
    return await future


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for engines that report none."""
    return max(1, (len(text) + 3) // 4) if text else 0
