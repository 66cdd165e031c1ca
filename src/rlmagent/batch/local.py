"""The local executor: jobs as asyncio tasks of one event loop in this process.

At most ``concurrency`` jobs run at once (each with its own sandbox and agent; engines
shared). Results are yielded as jobs finish. Interrupting the iteration (Ctrl-C, or
closing the generator) cancels every job in flight and waits until each has killed its
sandbox before the interruption goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from rlmagent.batch.jobs import Job
from rlmagent.batch.settings import BatchSettings
from rlmagent.batch.worker import run_job
from rlmagent.limits import Budget, LedgerPool, LocalPool

CANCEL_WAIT_S = 30.0
"""How long cancelled jobs get to stop their sandboxes."""


class LocalExecutor:
    """Runs jobs on an event loop of its own (see the module docstring)."""

    name = "local"

    def __init__(
        self,
        settings: BatchSettings,
        *,
        budget: Budget | None = None,
        concurrency: int = 8,
    ) -> None:
        self.settings = settings
        self.budget = budget if budget is not None and budget.limited else None
        self.concurrency = concurrency
        self.pool: LedgerPool | None = None

    def start(self) -> LedgerPool | None:
        if self.budget is not None:
            self.pool = LocalPool(self.budget)
        return self.pool

    def run(self, jobs: Iterator[Job]) -> Iterator[dict[str, Any]]:
        loop = asyncio.new_event_loop()
        pending: set[asyncio.Task[dict[str, Any]]] = set()
        try:
            more = True
            while True:
                while more and len(pending) < self.concurrency:
                    job = next(jobs, None)
                    if job is None:
                        more = False
                        break
                    coro = run_job(job, self.settings, budget=self.budget, pool=self.pool)
                    pending.add(loop.create_task(coro))
                if not pending:
                    break
                done, pending = loop.run_until_complete(
                    asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                )
                for task in done:
                    yield task.result()
        finally:  # also on Ctrl-C and on close(): stop every job and its sandbox
            for task in pending:
                task.cancel()
            if pending:
                gathered = asyncio.gather(*pending, return_exceptions=True)
                with contextlib.suppress(TimeoutError):
                    loop.run_until_complete(asyncio.wait_for(gathered, CANCEL_WAIT_S))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def close(self) -> None:
        return None
