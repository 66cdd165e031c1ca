"""The Ray executor: each job a Ray task, one ledger actor for the batch's budget.

``address`` names an existing cluster (``"auto"``, ``"HOST:PORT"`` or ``"ray://..."``);
without one, a local Ray is started for the batch and stopped after it (already
connected: that connection is used and left open). Each task builds its agent where it
runs (engines from the settings' specs, once per worker process) and starts the
job's sandbox on that node. A task is retried up to ``max_retries`` times when its
worker process or node is lost; never for what the job did (the task returns a record
for every model, engine or sandbox error). ``job_cpus`` is the CPU share Ray reserves
per job: jobs mostly wait for model servers, so a fraction (0.25) runs more per node.

Interrupting the iteration (Ctrl-C) cancels every task: first gently (the task's run
is cancelled and kills its sandbox), then, after :data:`CANCEL_GRACE_S`, by force (the
worker process is killed; the sandbox dies with its parent). Ray is imported only here
and in :mod:`rlmagent.batch.ledger`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator
from typing import Any

from rlmagent.batch.jobs import Job
from rlmagent.batch.ledger import RayPool, start_ledger
from rlmagent.batch.settings import BatchSettings
from rlmagent.batch.worker import record, run_job
from rlmagent.errors import EngineNotAvailable, UsageError
from rlmagent.limits import Budget, LedgerPool

CANCEL_GRACE_S = 3.0
"""Seconds cancelled tasks get to stop their own sandboxes before they are killed."""

DEFAULT_MAX_RETRIES = 3


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        from rlmagent.extras import install_hint

        raise EngineNotAvailable(
            f"the Ray executor needs Ray: {install_hint('ray')}", provider="ray", model=""
        ) from exc
    return ray


def ray_job(
    job: dict[str, Any], settings: BatchSettings, budget: Budget | None, ledger: Any
) -> Any:
    """The body of one Ray task: run the job here, return its record."""
    pool = RayPool(ledger) if ledger is not None else None
    return asyncio.run(_awake(run_job(Job.from_dict(job), settings, budget=budget, pool=pool)))


WAKE_EVERY_S = 0.2
"""How often a task's event loop wakes up by itself (see :func:`_awake`)."""


async def _awake(job: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """``job``, with the event loop woken every :data:`WAKE_EVERY_S`: Ray's gentle cancel
    raises KeyboardInterrupt in the task's thread, which Python delivers only when that
    thread runs bytecode, never while the loop sleeps in ``select`` waiting for a model.
    Woken, the interrupt ends ``asyncio.run``, which cancels the run: it kills its
    sandbox."""

    async def tick() -> None:
        while True:
            await asyncio.sleep(WAKE_EVERY_S)

    ticker = asyncio.ensure_future(tick())
    try:
        return await job
    finally:
        ticker.cancel()


class RayExecutor:
    """Runs jobs as Ray tasks (see the module docstring)."""

    name = "ray"

    def __init__(
        self,
        settings: BatchSettings,
        *,
        budget: Budget | None = None,
        concurrency: int = 8,
        address: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        job_cpus: float = 1.0,
    ) -> None:
        if max_retries < 0:
            raise UsageError(f"max_retries must be >= 0, got {max_retries!r}")
        if job_cpus < 0:
            raise UsageError(f"job_cpus must be >= 0, got {job_cpus!r}")
        self.settings = settings
        self.budget = budget if budget is not None and budget.limited else None
        self.concurrency = concurrency
        self.address = address
        self.max_retries = max_retries
        self.job_cpus = job_cpus
        self.pool: LedgerPool | None = None
        self._ray: Any = None
        self._owned = False
        self._ledger: Any = None

    def start(self) -> LedgerPool | None:
        ray = self._ray = _import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
            if self.address is not None:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(**options)
                self._owned = True
        if self.budget is not None:
            self._ledger = start_ledger(self.budget)
            self.pool = RayPool(self._ledger)
        return self.pool

    def run(self, jobs: Iterator[Job]) -> Iterator[dict[str, Any]]:
        ray = self._ray
        task = ray.remote(ray_job).options(
            max_retries=self.max_retries, retry_exceptions=False, num_cpus=self.job_cpus
        )
        settings_ref = ray.put(self.settings)
        in_flight: dict[Any, Job] = {}
        more = True
        try:
            while True:
                while more and len(in_flight) < self.concurrency:
                    job = next(jobs, None)
                    if job is None:
                        more = False
                        break
                    ref = task.remote(job.to_dict(), settings_ref, self.budget, self._ledger)
                    in_flight[ref] = job
                if not in_flight:
                    break
                refs = list(in_flight)
                ready, rest = ray.wait(refs, num_returns=1)
                if rest:  # and every other one that is ready now: one scan, many results
                    more_ready, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                    ready += more_ready
                for ref in ready:
                    job = in_flight.pop(ref)
                    yield self._outcome(ref, job)
        finally:
            if in_flight:
                self._cancel(list(in_flight))

    def _outcome(self, ref: Any, job: Job) -> dict[str, Any]:
        ray = self._ray
        try:
            result: dict[str, Any] = ray.get(ref)
        except ray.exceptions.RayError as exc:  # the worker or node was lost every time
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return record(
                job.id,
                "error",
                error=f"the job's Ray task failed after {self.max_retries} retries: "
                f"{type(exc).__name__}: {first}",
                line=job.line,
            )
        finally:
            if self.pool is not None:
                self.pool.release(job.id)  # a lost task cannot release its own room
        return result

    def _cancel(self, refs: list[Any]) -> None:
        ray = self._ray
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        deadline = time.monotonic() + CANCEL_GRACE_S
        left = refs
        while left and time.monotonic() < deadline:
            _, left = ray.wait(left, num_returns=len(left), timeout=0.2)
        for ref in left:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        if left:
            with contextlib.suppress(Exception):
                ray.wait(left, num_returns=len(left), timeout=CANCEL_GRACE_S)

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                ray.kill(self._ledger)
            self._ledger = None
        if self._owned:
            ray.shutdown()
            self._owned = False
