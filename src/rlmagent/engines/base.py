"""The Engine protocol every model backend implements, and small shared helpers.

An engine turns a list of chat messages into a :class:`~rlmagent.types.Completion`,
synchronously (``generate``) and asynchronously (``agenerate``). Engines must be safe to
call from several threads and tasks at once: ``llm_batch`` fans out concurrently.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from rlmagent.types import Completion, Message

T = TypeVar("T")


@runtime_checkable
class Engine(Protocol):
    """A chat model backend.

    ``provider`` names the backend (``"openai"``, ``"local"``, ``"function"``...); it is
    part of cache keys and error messages.
    """

    provider: str

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


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking callable on its own daemon thread and await its result.

    Unlike :func:`asyncio.to_thread` this is not capped by the default executor's size
    (``min(32, cores + 4)``, so 6 on a 2-core machine), which would silently throttle a
    batch of blocking sub-calls below ``max_concurrency``.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the awaiting task, not swallowed
            ok, value = False, exc
        else:
            ok, value = True, result
        try:
            loop.call_soon_threadsafe(settle, ok, value)
        except RuntimeError:  # the loop closed while we ran: nobody is waiting
            pass

    threading.Thread(target=target, name="rlmagent-blocking", daemon=True).start()
    return await future


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for engines that report none."""
    return max(1, (len(text) + 3) // 4) if text else 0
