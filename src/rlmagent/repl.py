"""One run's REPL on the host side: the sandbox session, the threads its cells run on,
and a shutdown that leaves nothing behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rlmagent.engines.base import run_blocking
from rlmagent.sandbox.base import FunctionSpec, Sandbox, Session
from rlmagent.types import ExecResult

T = TypeVar("T")

SESSION_CLOSE_WAIT_S = 10.0
"""How long a cancelled run waits for a cell's thread to end after killing its sandbox."""


class Repl:
    """A sandbox session whose blocking calls run on threads that :meth:`shutdown` waits
    for, even when the run was cancelled meanwhile."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session: Session | None = None
        self._threads: list[threading.Event] = []

    async def start(
        self,
        context: Any,
        handler: Callable[[str, dict[str, Any]], Any],
        functions: list[FunctionSpec],
        max_output_chars: int,
    ) -> Session:
        def start() -> None:  # kept on self even if the run was cancelled meanwhile
            self.session = self.sandbox.start(
                context, handler, functions=functions, max_output_chars=max_output_chars
            )

        await self._blocking(start)
        assert self.session is not None
        return self.session

    async def execute(self, code: str) -> ExecResult:
        assert self.session is not None
        return await self._blocking(self.session.execute, code)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        done = threading.Event()
        self._threads.append(done)

        def target() -> T:
            try:
                return fn(*args)
            finally:
                done.set()

        return await run_blocking(target)

    async def shutdown(self, cancel_calls: Callable[[], Awaitable[None]]) -> None:
        """Cancel host calls in flight (``cancel_calls``: child runs close their own
        sandboxes), kill the sandbox, wait for a cell's thread to notice, and close
        again (a sandbox may have restarted its worker while it died)."""
        try:
            await cancel_calls()
        finally:
            self._close()
            pending = [d for d in self._threads if not d.is_set()]
            if pending:
                await run_blocking(_wait_all, pending, SESSION_CLOSE_WAIT_S)
                self._close()

    def _close(self) -> None:
        if self.session is not None:
            self.session.close()


def _wait_all(events: list[threading.Event], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))
