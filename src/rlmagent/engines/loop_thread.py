"""An event loop on a daemon thread, owned by one engine.

An async HTTP client's connection pool belongs to the event loop that opened its
connections: reused from another loop (every ``asyncio.run`` makes a new one) it fails
with "Event loop is closed". The network engines therefore run every async request on a
loop of their own, started on first use, so one async client per engine serves every
caller's loop and keeps its connections warm. Awaiting a request from any loop costs one
thread hop; cancelling the awaiting task cancels the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from rlmagent.errors import UsageError

T = TypeVar("T")

CLOSE_TIMEOUT_S = 5.0
"""How long :meth:`LoopThread.close` waits for the cleanup coroutine and the thread."""


def _settle(task: asyncio.Task[T], done: asyncio.Future[T]) -> None:
    """Copy a finished task's outcome onto the caller's future (on the caller's loop)."""
    if done.cancelled():
        return
    if task.cancelled():
        done.cancel()
    elif (error := task.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(task.result())


class LoopThread:
    """Runs coroutines on a private event loop in a daemon thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise UsageError(f"{self.name}: the engine is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._serve, args=(loop,), name=self.name, daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` run on this thread's loop, from any loop.

        One callback each way (no concurrent.futures.Future in between: that took half
        the cost of a hop). Cancelling the caller cancels the task on this loop.
        """
        loop = self._ensure_loop()
        caller = asyncio.get_running_loop()
        if caller is loop:
            return await fn(*args, **kwargs)
        done: asyncio.Future[T] = caller.create_future()
        started: list[asyncio.Task[T]] = []

        def start() -> None:
            if done.cancelled():
                return
            task = loop.create_task(fn(*args, **kwargs))
            started.append(task)
            task.add_done_callback(report)

        def report(task: asyncio.Task[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone: nobody waits
                caller.call_soon_threadsafe(_settle, task, done)

        loop.call_soon_threadsafe(start)
        try:
            return await done
        except asyncio.CancelledError:
            if not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # closed meanwhile: nothing runs
                    loop.call_soon_threadsafe(lambda: started and started[0].cancel())
            raise

    def close(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Cancel what still runs, run ``cleanup()`` on the loop, then stop it.

        Safe to call twice. Calls still in flight end with ``CancelledError``.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            self._closed = True
            self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def finish() -> None:
            current = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not current]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if cleanup is not None:
                await cleanup()

        if threading.current_thread() is thread:  # closing from inside: cannot wait here
            loop.create_task(finish()).add_done_callback(lambda _: loop.stop())
            return
        done = asyncio.run_coroutine_threadsafe(finish(), loop)
        with contextlib.suppress(Exception):  # a failing cleanup must not stop shutdown
            done.result(timeout=CLOSE_TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=CLOSE_TIMEOUT_S)
