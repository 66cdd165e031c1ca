"""``run_batch`` / ``iter_batch``: many RLM runs, one budget, results as they finish.

The driver (this module) reads the jobs lazily, skips those a previous run with the same
``out`` finished, reports bad job lines (by line number) without stopping, keeps jobs
out once the batch budget is spent, hands the rest to an executor (local asyncio or Ray)
at most ``concurrency`` at a time, writes each result to ``out`` as it arrives and
publishes events for the progress display. See docs/SCALE.md for how it scales.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmagent.batch.jobs import Job, JobError, as_jobs, read_jobs
from rlmagent.batch.progress import BatchEnded, BatchSummary, JobEnded, JobStarted, Tally
from rlmagent.batch.results import ResultsWriter, done_ids
from rlmagent.batch.settings import BatchSettings
from rlmagent.batch.worker import error_record, not_started
from rlmagent.errors import UsageError
from rlmagent.limits import Budget, LedgerPool

EXECUTORS = ("local", "ray")
DEFAULT_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What :func:`run_batch` returns: every result record of this run, and the counts."""

    results: tuple[dict[str, Any], ...]
    summary: BatchSummary


class _Driver:
    """The state of one batch between the jobs source and the executor."""

    def __init__(
        self,
        source: Iterator[Job | JobError],
        done: set[str],
        bus: Any,
        tally: Tally,
        budget: Budget | None,
    ) -> None:
        self.source = source
        self.budget = budget
        self.done = done
        self.bus = bus
        self.tally = tally
        self.pool: LedgerPool | None = None
        self.side: deque[dict[str, Any]] = deque()  # records made without running a job

    def publish(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.publish(event)

    def _spent(self) -> str | None:
        """The limit that keeps new jobs out: one that refused a call, or the deadline."""
        if self.pool is None:
            return None
        limit = self.pool.exhausted()
        seconds = self.budget.max_seconds if self.budget is not None else None
        if limit is None and seconds is not None and self.pool.elapsed() >= seconds:
            self.pool.mark_exhausted("seconds")
            limit = "seconds"
        return limit

    def feed(self) -> Iterator[Job]:
        """The jobs to run, in order; the others become side records."""
        for item in self.source:
            if isinstance(item, JobError):
                self.side.append(error_record(item))
                continue
            if item.id in self.done:
                self.tally.skipped += 1
                continue
            limit = self._spent()
            if limit is not None:
                self.side.append(not_started(item, limit))
                continue
            self.tally.start()
            self.publish(JobStarted(run_id=item.id, job_id=item.id))
            yield item


def _source(jobs: str | Path | Iterable[Any]) -> Iterator[Job | JobError]:
    if isinstance(jobs, str | Path):
        if not Path(jobs).is_file():  # said before anything starts, not at the first job
            raise UsageError(f"jobs file {str(jobs)!r} is not a readable file")
        return read_jobs(jobs)
    return as_jobs(jobs)


def _executor(
    executor: str,
    settings: BatchSettings,
    budget: Budget | None,
    concurrency: int,
    address: str | None,
    max_retries: int | None,
    job_cpus: float | None,
) -> Any:
    if executor == "local":
        if address is not None:
            raise UsageError("address= is for executor='ray'")
        from rlmagent.batch.local import LocalExecutor

        return LocalExecutor(settings, budget=budget, concurrency=concurrency)
    from rlmagent.batch.ray_executor import DEFAULT_MAX_RETRIES, RayExecutor

    return RayExecutor(
        settings,
        budget=budget,
        concurrency=concurrency,
        address=address,
        max_retries=DEFAULT_MAX_RETRIES if max_retries is None else max_retries,
        job_cpus=1.0 if job_cpus is None else job_cpus,
    )


def iter_batch(
    jobs: str | Path | Iterable[Any],
    *,
    settings: BatchSettings,
    executor: str = "local",
    address: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: Budget | None = None,
    out: str | Path | None = None,
    max_retries: int | None = None,
    job_cpus: float | None = None,
    bus: Any = None,
) -> Iterator[dict[str, Any]]:
    """Run a batch; yield each result record as it arrives (see :func:`run_batch`)."""
    if executor not in EXECUTORS:
        raise UsageError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if not isinstance(settings, BatchSettings):
        raise UsageError(f"settings must be a BatchSettings, got {type(settings).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a positive int, got {concurrency!r}")
    if budget is not None and not isinstance(budget, Budget):
        raise UsageError(f"budget must be a rlmagent.Budget, got {budget!r}")
    runner = _executor(executor, settings, budget, concurrency, address, max_retries, job_cpus)
    tally = Tally()
    source = _source(jobs)
    driver = _Driver(source, done_ids(out) if out is not None else set(), bus, tally, budget)
    writer = ResultsWriter(out) if out is not None else None
    interrupted = True
    running: Any = None

    def emit(result: dict[str, Any], *, ran: bool) -> dict[str, Any]:
        tally.end(result, ran=ran)
        if writer is not None:
            writer.write(result)
        driver.publish(
            JobEnded(run_id=str(result.get("id")), job_id=result.get("id"), result=result, ran=ran)
        )
        return result

    try:
        driver.pool = runner.start()
        running = runner.run(driver.feed())
        for result in running:
            while driver.side:
                yield emit(driver.side.popleft(), ran=False)
            yield emit(result, ran=True)
        while driver.side:
            yield emit(driver.side.popleft(), ran=False)
        interrupted = False
    finally:
        if running is not None:
            running.close()  # cancels the jobs in flight, before the executor stops
        spent = None
        if driver.pool is not None:
            with contextlib.suppress(Exception):
                spent = driver.pool.spent()
        with contextlib.suppress(Exception):
            runner.close()
        if writer is not None:
            writer.close()
        driver.publish(
            BatchEnded(run_id="batch", summary=tally.summary(interrupted=interrupted, spent=spent))
        )


def run_batch(
    jobs: str | Path | Iterable[Any],
    *,
    settings: BatchSettings,
    executor: str = "local",
    address: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    budget: Budget | None = None,
    out: str | Path | None = None,
    max_retries: int | None = None,
    job_cpus: float | None = None,
    bus: Any = None,
) -> BatchReport:
    """Answer many questions, each an RLM run, under one budget.

    ``jobs``: a JSONL jobs file (see :mod:`rlmagent.batch.jobs`) or an iterable of
    :class:`~rlmagent.batch.Job` values, job dicts or ``(id, question, context)``
    tuples. ``settings``: the frozen :class:`BatchSettings` every job runs with.
    ``executor``: ``"local"`` (asyncio in this process) or ``"ray"`` (one Ray task per
    job; ``address`` an existing cluster, else a local Ray for the call; a task lost
    with its worker or node is retried up to ``max_retries`` times). At most
    ``concurrency`` jobs run at once. ``budget`` caps calls, tokens, cost and seconds
    over all jobs together (one ledger; jobs that find it spent do not start and are
    reported with status ``budget``). ``out``: a JSONL results file written as results
    arrive; a rerun with the same ``out`` skips the jobs already ``ok``. ``bus``: an
    :class:`~rlmagent.events.EventBus` for the job events (and the progress display).
    """
    results = []
    bus_summary: list[BatchSummary] = []
    if bus is None:
        from rlmagent.events import EventBus

        bus = EventBus()
    unsubscribe = bus.subscribe(lambda e: bus_summary.append(e.summary), BatchEnded)
    try:
        for result in iter_batch(
            jobs,
            settings=settings,
            executor=executor,
            address=address,
            concurrency=concurrency,
            budget=budget,
            out=out,
            max_retries=max_retries,
            job_cpus=job_cpus,
            bus=bus,
        ):
            results.append(result)
    finally:
        unsubscribe()
    return BatchReport(tuple(results), bus_summary[-1])
