"""Sessions: many questions over the same contexts, in one REPL.

``with agent.session(context=...) as s: s.ask(question)``. One sandbox serves the whole
session: what the model defined (variables, imports, helper functions) stays from one
question to the next, the contexts are staged once, and the REPL holds ``contexts`` (a
dict by name; ``context`` is the first) and ``history`` (the earlier questions and
answers). Each question is one root run (:class:`~rlmagent.run.Run` over the session's
:class:`~rlmagent.repl.Repl`) whose first message describes every context, the
variables that exist and the earlier answers (:mod:`rlmagent.briefing`).

Budgets: each question runs under its own limits (``ask(budget=)``, else the agent's
budget) and under what is left of the session's (``agent.session(budget=)``): every
limit of the question's ledger is the smaller of the two. The session's seconds are the
time spent answering, not the time the session was open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rlmagent.briefing import Briefing, Exchange, Variable, describe_all
from rlmagent.budget import Budget, BudgetLedger, UsageMeter
from rlmagent.cache import CompletionCache
from rlmagent.errors import BudgetExceeded, UsageError
from rlmagent.events import EventBus
from rlmagent.repl import Repl
from rlmagent.run import Run, run_with_deadline
from rlmagent.sandbox.base import check_context
from rlmagent.settings import RunSettings
from rlmagent.tree import Tree
from rlmagent.typed import output_spec
from rlmagent.types import AgentResult, ModelUsage, Usage

DEFAULT_CONTEXT_NAME = "context"
"""The name of ``agent.session(context=...)``'s context in ``contexts``."""


class Session:
    """Questions over contexts in one persistent REPL (see the module docstring).

    Made by :meth:`rlmagent.RLMAgent.session`; a context manager (``close()`` on exit)
    that also works without ``with``. One question at a time: :meth:`ask` (blocking) or
    :meth:`aask`; :meth:`cancel` stops the one in flight from another thread and keeps
    the session. After :meth:`close` every call raises :class:`UsageError`.
    """

    def __init__(
        self,
        settings: RunSettings,
        *,
        contexts: Mapping[str, Any],
        bus: EventBus | None,
        trace: Path | None,
        cache: str | Path | CompletionCache | None,
        question_budget: Budget | None,
        budget: Budget | None,
        check_prices: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.id: str = uuid.uuid4().hex[:12]
        self.budget = budget if budget is not None and budget.limited else None
        """The session's limits over all its questions (None: none)."""
        self._question_budget = question_budget
        self._check_prices = check_prices
        self._contexts: dict[str, Any] = {}
        self._descriptions: dict[str, dict[str, Any]] = {}
        for name, value in contexts.items():
            self._add(name, value)
        self._history: list[Exchange] = []
        self._usage = Usage()
        self._spent = [0, 0, 0.0, 0.0]  # calls, tokens, cost, seconds of the session
        self._lock = threading.Lock()
        self._current: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = None
        self._closed = False
        self._finished = False
        self._repl = Repl(settings.sandbox)
        self._owned_cache: CompletionCache | None = None
        self._cache: CompletionCache | None = None
        if isinstance(cache, str | Path):
            self._cache = self._owned_cache = CompletionCache(cache)
        else:
            self._cache = cache
        self.bus = bus
        self._close_trace: Callable[[], None] = lambda: None
        if trace is not None:
            self._open_trace(trace)
        if self.budget is not None and self.budget.max_cost_usd is not None:
            check_prices()

    def _open_trace(self, path: Path) -> None:
        from rlmagent.trace import TraceWriter

        self.bus = self.bus or EventBus()
        writer = TraceWriter(path)
        unsubscribe = self.bus.subscribe(writer)

        def close() -> None:
            unsubscribe()
            writer.close()

        self._close_trace = close

    # -- what the session holds -------------------------------------------------------

    @property
    def contexts(self) -> tuple[str, ...]:
        """The contexts' names, in order (the first is ``context`` in the REPL)."""
        return tuple(self._contexts)

    @property
    def history(self) -> tuple[Exchange, ...]:
        """The questions answered so far, with their answers."""
        return tuple(self._history)

    @property
    def usage(self) -> Usage:
        """Calls, tokens and cost of every question so far (failed ones included)."""
        return self._usage

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def variables(self) -> tuple[Variable, ...]:
        """The user variables in the REPL after the last question's last cell."""
        return self._repl.variables

    @property
    def busy(self) -> bool:
        """Whether a question is being answered."""
        return self._current is not None

    @property
    def worker_pid(self) -> int | None:
        """Host pid of the REPL's worker process (None before the first question, or
        for a sandbox without one)."""
        pid = getattr(self._repl.session, "pid", None)
        return pid if isinstance(pid, int) else None

    def spent(self) -> dict[str, float]:
        """What the session's questions have spent: calls, tokens, cost_usd, seconds."""
        calls, tokens, cost, seconds = self._spent
        return {"calls": calls, "tokens": tokens, "cost_usd": cost, "seconds": seconds}

    @property
    def context_info(self) -> dict[str, dict[str, Any]]:
        """Each context's description (type, size, preview), by name."""
        return {name: dict(info) for name, info in self._descriptions.items()}

    def reset(self) -> None:
        """A fresh REPL and an empty history over the same contexts (the variables go);
        usage, the session's budget and its trajectory carry on."""
        self._check_open()
        if self.busy:
            raise UsageError("reset() while a question is running: wait for it first")
        self._repl.close()
        self._repl = Repl(self.settings.sandbox)
        self._history = []

    def add_context(self, name: str, value: Any) -> None:
        """Add a context (str, list, dict or Path, as ``context``) under ``name``; the
        REPL has it in ``contexts[name]`` from the next question on."""
        self._check_open()
        if self.busy:
            raise UsageError("add_context() while a question is running: wait for it first")
        self._add(name, value)

    def _add(self, name: str, value: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UsageError(f"a context's name must be a non-empty string, got {name!r}")
        if name in self._contexts:
            raise UsageError(f"the session already has a context named {name!r}")
        value = check_context(value)
        self._descriptions.update(describe_all({name: value}))
        self._contexts[name] = value

    # -- questions --------------------------------------------------------------------

    def ask(
        self, question: str, *, budget: Budget | None = None, output_type: Any = None
    ) -> AgentResult:
        """Answer ``question`` in this session. Blocks until done (Ctrl-C cancels the
        question, keeps the session and raises ``KeyboardInterrupt``)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.aask(question, budget=budget, output_type=output_type))
        raise UsageError("ask() was called inside an event loop: use `await session.aask(...)`")

    async def aask(
        self, question: str, *, budget: Budget | None = None, output_type: Any = None
    ) -> AgentResult:
        """Async :meth:`ask`. Cancelling it cancels the question, not the session."""
        self._check_open()
        if not isinstance(question, str) or not question.strip():
            raise UsageError("the question must be a non-empty string")
        if budget is not None and not isinstance(budget, Budget):
            raise UsageError(f"budget must be a rlmagent.Budget, got {budget!r}")
        spec = output_spec(output_type) if output_type is not None else None
        task = asyncio.current_task()
        assert task is not None
        with self._lock:
            if self._current is not None:
                raise UsageError("a question is already running in this session")
            self._current = (asyncio.get_running_loop(), task)
        try:
            return await self._answer(question, budget, spec)
        finally:
            self._current = None
            if self._closed:
                self._finish()

    async def _answer(self, question: str, budget: Budget | None, spec: Any) -> AgentResult:
        limits = self._limits(budget if budget is not None else self._question_budget)
        if limits is not None and limits.max_cost_usd is not None:
            self._check_prices()
        ledger = BudgetLedger(limits) if limits is not None else None
        settings = self.settings
        tree = Tree(
            loop=asyncio.get_running_loop(),
            meter=UsageMeter(),
            semaphore=asyncio.Semaphore(settings.max_concurrency),
            bus=self.bus,
            ledger=ledger,
            cache=self._cache,
            max_depth=settings.max_depth,
            max_concurrency=settings.max_concurrency,
        )
        self._repl.keep(self._contexts, [e.to_json() for e in self._history])
        briefing = Briefing(contexts=dict(self._descriptions), history=tuple(self._history))
        first = next(iter(self._contexts.values()), None)
        run = Run(
            settings, tree, question, first, output_type=spec, repl=self._repl, briefing=briefing
        )
        try:
            if ledger is None or ledger.budget.max_seconds is None:
                result = await run.run()
            else:
                result = await run_with_deadline(run, ledger)
        finally:
            self._account(tree.meter.snapshot(), ledger, run)
        self._history.append(
            Exchange(question, result.content, result.stop_reason, result.run_id, result.turns)
        )
        metadata = {**result.metadata, "session_id": self.id, "question": len(self._history)}
        return dataclasses.replace(result, metadata=metadata)

    def _account(self, usage: Usage, ledger: BudgetLedger | None, run: Run) -> None:
        self._usage = add_usage(self._usage, usage)
        if ledger is not None:
            spent = ledger.spent()
            calls, tokens, cost, seconds = spent.calls, spent.tokens, spent.cost, spent.seconds
        else:
            calls, tokens = usage.calls - usage.cached_calls, usage.total_tokens
            cost, seconds = usage.cost_usd or 0.0, _elapsed(run)
        self._spent[0] += calls
        self._spent[1] += tokens
        self._spent[2] += cost
        self._spent[3] += seconds

    def _limits(self, question: Budget | None) -> Budget | None:
        """The question's limits: its own, and what is left of the session's."""
        session = self.budget
        question = question if question is not None and question.limited else None
        if session is None:
            return question
        calls, tokens, cost, seconds = self._spent
        left: dict[str, Any] = {}
        for field, limit, used, name in (
            ("max_calls", session.max_calls, calls, "calls"),
            ("max_tokens", session.max_tokens, tokens, "tokens"),
            ("max_cost_usd", session.max_cost_usd, cost, "cost"),
            ("max_seconds", session.max_seconds, seconds, "seconds"),
        ):
            own = getattr(question, field) if question is not None else None
            if limit is None:
                left[field] = own
                continue
            room = limit - used
            if room <= 0 or (isinstance(limit, int) and room < 1):
                raise BudgetExceeded(
                    f"the session's budget is spent: {field}={limit:g} reached "
                    f"({used:g} used by {len(self._history)} questions); no question "
                    "can be asked (open a new session, or give it a larger budget)",
                    limit_name=name,
                    spent=used,
                    limit=limit,
                )
            left[field] = room if own is None else min(own, room)
        return Budget(**left)

    def cancel(self) -> bool:
        """Cancel the question in flight (from any thread); False when none runs. The
        session stays usable; a cell that does not end soon has its worker replaced."""
        current = self._current
        if current is None:
            return False
        loop, task = current
        try:
            loop.call_soon_threadsafe(task.cancel)
        except RuntimeError:  # its loop has closed: the question is over
            return False
        return True

    # -- the end ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError(
                f"session {self.id} is closed (its sandbox was shut down): "
                "open a new one with agent.session(...)"
            )

    def close(self) -> None:
        """Kill the sandbox and close the trajectory; idempotent. A question in flight
        is cancelled (its sandbox goes when it ends)."""
        if self._closed:
            return
        self._closed = True
        if not self.cancel():
            self._finish()

    def _finish(self) -> None:
        with self._lock:  # close() and a cancelled question's end may both get here
            if self._finished:
                return
            self._finished = True
        self._repl.close()
        self._close_trace()
        if self._owned_cache is not None:
            self._owned_cache.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._history)} questions"
        return f"<Session {self.id} {list(self._contexts)} {state}>"


def _elapsed(run: Run) -> float:
    return time.monotonic() - run.started


def add_usage(a: Usage, b: Usage) -> Usage:
    """The sum of two usages, model by model."""
    models: dict[str, ModelUsage] = dict(a.by_model)
    for name, usage in b.by_model.items():
        models[name] = models[name].merge(usage) if name in models else usage
    return Usage.from_models(models)
