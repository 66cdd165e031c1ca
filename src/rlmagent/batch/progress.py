"""What a batch reports as it goes: events for each job, a live bar, a summary.

The batch publishes :class:`JobStarted` (handed to the executor), :class:`JobEnded`
(its result record) and :class:`BatchEnded` (the :class:`BatchSummary`) on the
:class:`~rlmagent.events.EventBus` it is given. :class:`BatchProgress` is a subscriber
that draws one ``rich`` bar on stderr (done / failed / running, calls and cost so far),
or prints a plain line every few jobs when stderr is not a terminal, and the summary.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rlmagent.events import Event
from rlmagent.limits import Spent

PLAIN_EVERY = 10
"""Jobs between two progress lines when the console is not a terminal."""


@dataclass(frozen=True, kw_only=True)
class JobStarted(Event):
    job_id: str


@dataclass(frozen=True, kw_only=True)
class JobEnded(Event):
    job_id: str | None
    result: dict[str, Any]
    ran: bool = True
    """False for a record made without running (a bad line, a job the budget kept out)."""


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """Counts of a finished (or interrupted) batch."""

    total: int = 0
    ok: int = 0
    error: int = 0
    budget: int = 0
    skipped: int = 0
    calls: int = 0
    tokens: int = 0
    cost_usd: float | None = 0.0
    elapsed_s: float = 0.0
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        cost = "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        rate = self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0
        skipped = f" · {self.skipped} skipped (done before)" if self.skipped else ""
        stop = " · interrupted" if self.interrupted else ""
        return (
            f"{self.total} jobs: {self.ok} ok · {self.error} failed · {self.budget} budget"
            f"{skipped} · calls {self.calls} · tokens {self.tokens:,} · {cost} · "
            f"{self.elapsed_s:.1f} s ({rate:.1f} jobs/s){stop}"
        )


@dataclass(frozen=True, kw_only=True)
class BatchEnded(Event):
    summary: BatchSummary


@dataclass
class Tally:
    """Running counts of a batch, from its result records."""

    started: float = field(default_factory=time.monotonic)
    running: int = 0
    ok: int = 0
    error: int = 0
    budget: int = 0
    skipped: int = 0
    calls: int = 0
    tokens: int = 0
    cost: float | None = 0.0

    def start(self) -> None:
        self.running += 1

    def end(self, result: dict[str, Any], *, ran: bool = True) -> None:
        if ran:
            self.running -= 1
        status = result.get("status")
        if status == "ok":
            self.ok += 1
        elif status == "budget":
            self.budget += 1
        else:
            self.error += 1
        usage = result.get("usage")
        if isinstance(usage, dict):
            self.calls += int(usage.get("calls") or 0)
            self.tokens += int(usage.get("prompt_tokens") or 0) + int(
                usage.get("completion_tokens") or 0
            )
            cost = usage.get("cost_usd")
            self.cost = None if self.cost is None or cost is None else self.cost + float(cost)

    @property
    def done(self) -> int:
        return self.ok + self.error + self.budget

    def summary(self, *, interrupted: bool = False, spent: Spent | None = None) -> BatchSummary:
        """The summary; ``spent`` (a budget pool's) counts calls that ended in no record."""
        calls, tokens = self.calls, self.tokens
        if spent is not None:
            calls, tokens = max(calls, spent.calls), max(tokens, spent.tokens)
        return BatchSummary(
            total=self.done,
            ok=self.ok,
            error=self.error,
            budget=self.budget,
            skipped=self.skipped,
            calls=calls,
            tokens=tokens,
            cost_usd=self.cost,
            elapsed_s=time.monotonic() - self.started,
            interrupted=interrupted,
        )


class BatchProgress:
    """A bus subscriber drawing a batch's progress (see the module docstring)."""

    def __init__(self, console: Any = None, *, total: int | None = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.plain = not self.console.is_terminal
        self.tally = Tally()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None
        self._total = total
        if not self.plain:
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._task = self._progress.add_task("batch", total=self._total, status="")
        self._progress.start()

    def __call__(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, JobStarted):
                self.tally.start()
            elif isinstance(event, JobEnded):
                self.tally.end(event.result, ran=event.ran)
                self._note_failure(event.result)
            elif isinstance(event, BatchEnded):
                self._finish(event.summary)
                return
            self._draw()

    def _note_failure(self, result: dict[str, Any]) -> None:
        if result.get("status") == "error" and result.get("error"):
            message = str(result["error"]).splitlines()[0][:160]
            name = result.get("id") if result.get("id") is not None else "?"
            self._print(f"[red]✗[/red] job {name}: {message}", f"job {name} failed: {message}")

    def _status(self) -> str:
        t = self.tally
        cost = "cost ?" if t.cost is None else f"${t.cost:.4f}"
        return (
            f"[green]{t.ok} ok[/green] · [red]{t.error} failed[/red] · {t.budget} budget · "
            f"{t.running} running · {t.calls} calls · {cost}"
        )

    def _draw(self) -> None:
        t = self.tally
        if self._progress is not None:
            self._progress.update(self._task, completed=t.done, status=self._status())
        elif t.done and t.done % PLAIN_EVERY == 0:
            cost = "cost ?" if t.cost is None else f"${t.cost:.4f}"
            self.console.print(
                f"batch: {t.done} done ({t.ok} ok, {t.error} failed, {t.budget} budget), "
                f"{t.running} running, {t.calls} calls, {cost}",
                markup=False,
                highlight=False,
            )

    def _print(self, rich_text: str, plain_text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(rich_text, highlight=False)
        else:
            self.console.print(plain_text, markup=False, highlight=False)

    def _finish(self, summary: BatchSummary) -> None:
        self.close()
        self._print(f"[bold]batch[/bold] {summary.line()}", f"batch: {summary.line()}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
