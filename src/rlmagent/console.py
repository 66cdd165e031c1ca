"""Live progress of a run in the terminal: a bus subscriber drawing with ``rich``.

:class:`ConsoleProgress` shows the turn number, each code cell (highlighted, shortened)
with how it went, a progress bar per ``llm_batch`` (done / total, failures), tokens, cost
and elapsed time, and the final answer. When its console is not a terminal it prints
plain lines instead (no escape codes, no redrawing); ``quiet=True`` prints only the answer.

Child runs (recursion) are not drawn turn by turn; their calls and tokens are counted.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.syntax import Syntax
from rich.text import Text

from rlmagent import events as ev
from rlmagent.printable import printable, printable_json
from rlmagent.types import add_costs

__all__ = ["ConsoleProgress", "printable", "printable_json", "shorten"]

DEFAULT_CODE_LINES = 12
"""Lines of a code cell shown before it is shortened."""
DEFAULT_OUTPUT_LINES = 4
"""Lines of a cell's output shown."""
DEFAULT_LINE_CHARS = 120
"""Characters of one shown line before it is cut."""


def shorten(text: str, max_lines: int, max_chars: int = DEFAULT_LINE_CHARS) -> str:
    """``text`` cut to ``max_lines`` lines of at most ``max_chars`` characters each."""
    lines = text.rstrip("\n").splitlines()
    shown = [line if len(line) <= max_chars else line[: max_chars - 1] + "…" for line in lines]
    if len(shown) > max_lines:
        more = len(shown) - max_lines
        shown = [*shown[:max_lines], f"… ({more} more line{'s' if more > 1 else ''})"]
    return "\n".join(shown)


def _money(cost: float | None) -> str:
    if cost is None:
        return "cost unknown"
    return f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}"


class _BatchBar(ProgressColumn):
    """A bar for batch tasks; nothing for the status line (a task without a total)."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn(bar_width=30)

    def render(self, task: Task) -> RenderableType:
        return Text("") if task.total is None else self._bar.render(task)


class _BatchCount(MofNCompleteColumn):
    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


@dataclass
class _Totals:
    calls: int = 0
    failures: int = 0
    tokens: int = 0
    cost: float | None = 0.0

    def add(self, tokens: int, cost: float | None) -> None:
        self.calls += 1
        self.tokens += tokens
        self.cost = add_costs(self.cost, cost)


class ConsoleProgress:
    """Show a run's progress on ``console`` (default: a new ``rich.console.Console``).

    Subscribe it to the bus the agent publishes on; call :meth:`close` when the run is
    over (it stops any live display that is still up). Thread-safe. ``show_answer`` and
    ``show_summary`` turn off the final answer and the closing usage line, for callers
    that print those themselves.
    """

    def __init__(
        self,
        console: Console | None = None,
        quiet: bool = False,
        *,
        show_answer: bool = True,
        show_summary: bool = True,
        code_lines: int = DEFAULT_CODE_LINES,
    ) -> None:
        self.console = console if console is not None else Console()
        self.quiet = quiet
        self.show_answer = show_answer
        self.show_summary = show_summary
        self.code_lines = code_lines
        self.plain = not self.console.is_terminal
        self._lock = threading.RLock()
        self._root: str | None = None
        self._started = time.monotonic()
        self._turn = 0
        self._totals = _Totals()
        self._parents: set[str] = set()  # sub-calls that started a child run
        self._cell_calls = 0
        self._cell_failures = 0
        self._progress: Progress | None = None
        self._status: TaskID | None = None
        self._batches: dict[str, TaskID] = {}
        self._batch_failed: dict[TaskID, int] = {}

    # ------------------------------------------------------------------ output helpers

    def _print(self, renderable: str | RenderableType, style: str | None = None) -> None:
        """Print one line or renderable; a str is data: printed through ``printable``."""
        if self.plain:  # never a style, markup or wrap: plain lines for pipes and files
            text = renderable.plain if isinstance(renderable, Text) else str(renderable)
            self.console.print(
                printable(text), markup=False, highlight=False, emoji=False, soft_wrap=True
            )
            return
        target = self._progress.console if self._progress is not None else self.console
        if isinstance(renderable, str):
            renderable = Text(printable(renderable), style=style or "")
        target.print(renderable)

    def _status_text(self) -> str:
        t = self._totals
        failed = f" ({t.failures} failed)" if t.failures else ""
        return (
            f"turn {self._turn} · {t.calls} calls{failed} · {t.tokens:,} tokens · {_money(t.cost)}"
        )

    def _refresh(self, now: bool = False) -> None:
        if self._progress is not None and self._status is not None:
            self._progress.update(self._status, description=self._status_text(), refresh=now)

    def _start_live(self) -> None:
        if self.plain or self.quiet or self._progress is not None:
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            _BatchBar(),
            _BatchCount(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            refresh_per_second=4,
            redirect_stdout=False,  # never take over the process's streams
            redirect_stderr=False,
        )
        self._progress.start()
        self._status = self._progress.add_task(self._status_text(), total=None, note="")

    def _stop_live(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._status = None
            self._batches.clear()
            self._batch_failed.clear()

    # ------------------------------------------------------------------ the subscriber

    def __call__(self, event: ev.Event) -> None:
        with self._lock:
            self._handle(event)

    def _handle(self, e: ev.Event) -> None:
        if isinstance(e, ev.RunStarted) and e.parent_id is not None:
            self._parents.add(e.parent_id)
        if isinstance(e, ev.RootCompletion):
            usage = e.completion.usage
            self._totals.add(usage.prompt_tokens + usage.completion_tokens, e.completion.cost_usd)
        elif isinstance(e, ev.SubCallEnded) and e.call.call_id not in self._parents:
            self._totals.add(e.call.usage.prompt_tokens + e.call.usage.completion_tokens,
                             e.call.cost_usd)  # fmt: skip
        if isinstance(e, ev.SubCallEnded) and e.call.error is not None:
            self._totals.failures += 1
        is_root = self._root is None or e.run_id == self._root
        if isinstance(e, ev.RunStarted) and self._root is None and e.parent_id is None:
            self._root = e.run_id
            self._started = time.monotonic()
            self._on_run_started(e)
        elif not is_root or self.quiet:
            if isinstance(e, ev.RunEnded) and e.run_id == self._root:
                self._on_run_ended(e)
        elif isinstance(e, ev.TurnStarted):
            self._turn = e.turn
            self._print(f"── turn {e.turn} " + "─" * 30, style="bold cyan")
        elif isinstance(e, ev.CodeStarted):
            self._on_code_started(e)
        elif isinstance(e, ev.CodeExecuted):
            self._on_code_executed(e)
        elif isinstance(e, ev.BatchStarted):
            self._on_batch_started(e)
        elif isinstance(e, ev.SubCallEnded):
            self._on_sub_call(e)
        elif isinstance(e, ev.BatchEnded):
            self._on_batch_ended(e)
        elif isinstance(e, ev.Notice):
            self._print(f"note: {e.message}", style="yellow")
        elif isinstance(e, ev.RunEnded):
            self._on_run_ended(e)
        # redraw at once on structural changes; the 4 Hz auto-refresh covers the rest
        self._refresh(now=not isinstance(e, ev.SubCallStarted | ev.SubCallEnded))

    def _on_run_started(self, e: ev.RunStarted) -> None:
        if self.quiet:
            return
        self._start_live()
        question = shorten(printable(e.question), 1, 100)
        self._print(f"RLM run: {question}", style="bold")
        models = e.model if e.sub_model in ("", e.model) else f"{e.model}, sub-calls {e.sub_model}"
        self._print(f"model {models}", style="dim")

    def _on_code_started(self, e: ev.CodeStarted) -> None:
        self._cell_calls = self._cell_failures = 0
        code = shorten(printable(e.code), self.code_lines)
        if self.plain:
            self._print(f"cell {e.cell}:\n" + "\n".join("    " + ln for ln in code.splitlines()))
        else:
            self._print(Text(f"cell {e.cell}", style="bold"))
            self._print(Syntax(code, "python", theme="ansi_dark", line_numbers=False))

    def _on_code_executed(self, e: ev.CodeExecuted) -> None:
        r = e.result
        parts = [f"{r.duration_s:.2f}s"]
        if self._cell_calls:
            failed = f", {self._cell_failures} failed" if self._cell_failures else ""
            plural = "s" if self._cell_calls > 1 else ""
            parts.append(f"{self._cell_calls} sub-call{plural}{failed}")
        if r.timed_out:
            parts.append("timed out")
        if r.state_lost:
            parts.append("REPL state lost")
        if r.final is not None:
            parts.append("FINAL")
        self._print(f"  → cell {e.cell} ran in " + ", ".join(parts), style="dim")
        if r.output.strip():
            shown = shorten(printable(r.output), DEFAULT_OUTPUT_LINES)
            self._print("\n".join("  │ " + ln for ln in shown.splitlines()))
        if r.error:
            error = printable(r.error).strip()
            last = error.splitlines()[-1] if error else ""
            self._print(f"  ✗ error: {shorten(last, 1)}", style="bold red")

    def _on_batch_started(self, e: ev.BatchStarted) -> None:
        if self._progress is not None:
            self._batches[e.batch_id] = self._progress.add_task(
                f"llm_batch {e.batch_id}", total=e.size, note=""
            )
        else:
            self._print(f"  llm_batch {e.batch_id}: {e.size} prompts")

    def _on_sub_call(self, e: ev.SubCallEnded) -> None:
        self._cell_calls += 1
        self._cell_failures += e.call.error is not None
        task = self._batches.get(e.call.batch_id or "")
        if task is not None and self._progress is not None:
            failed = self._batch_failed.get(task, 0) + (e.call.error is not None)
            self._batch_failed[task] = failed
            note = f"[red]{failed} failed[/]" if failed else ""
            self._progress.update(task, advance=1, note=note)

    def _on_batch_ended(self, e: ev.BatchEnded) -> None:
        task = self._batches.pop(e.batch_id, None)
        if task is not None and self._progress is not None:
            self._progress.remove_task(task)
        failed = f", {e.failures} failed" if e.failures else ""
        self._print(
            f"  llm_batch {e.batch_id}: {e.size - e.failures}/{e.size} done{failed}",
            style="red" if e.failures else "green",
        )

    def _on_run_ended(self, e: ev.RunEnded) -> None:
        self._stop_live()
        elapsed = time.monotonic() - self._started
        if not self.quiet and self.show_summary:
            t = self._totals
            usage = e.result.usage if e.result is not None else None
            calls = usage.calls if usage is not None else t.calls
            tokens = usage.total_tokens if usage is not None else t.tokens
            cost = usage.cost_usd if usage is not None else t.cost
            turns = e.result.turns if e.result is not None else self._turn
            self._print(
                f"done: {turns} turns · {calls} calls · {tokens:,} tokens · "
                f"{_money(cost)} · {elapsed:.1f}s",
                style="dim",
            )
        if not self.quiet and e.error:
            self._print(f"run failed: {e.error}", style="bold red")
        if e.result is None or e.error is not None or not self.show_answer:
            return
        answer = printable(e.result.content)
        if self.quiet or self.plain:
            prefix = "" if self.quiet else "answer: "
            self.console.print(
                prefix + answer, markup=False, highlight=False, emoji=False, soft_wrap=True
            )
        else:
            self.console.print(Panel(Text(answer), title="answer", expand=False))

    def close(self) -> None:
        """Stop the live display if it is still up (a run that raised). Safe twice."""
        with self._lock:
            self._stop_live()
