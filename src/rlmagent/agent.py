"""RLMAgent: the root loop of a Recursive Language Model.

The root model never sees the context; it sees a description and writes code that runs
in a sandboxed REPL holding it. Each turn: ask the root model, run its code blocks,
send back the (cut) output; until ``FINAL`` or the turn limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from rlmagent import prompts
from rlmagent.budget import Budget, BudgetLedger, UsageMeter, price_of
from rlmagent.cache import CompletionCache
from rlmagent.calls import HostFunctions
from rlmagent.engines.base import Engine
from rlmagent.errors import UsageError
from rlmagent.events import (
    EventBus,
)
from rlmagent.loop import Run
from rlmagent.sandbox.base import Sandbox, check_context
from rlmagent.sandbox.subprocess import SubprocessSandbox
from rlmagent.tools import Tool, check_tools, signature
from rlmagent.tree import Tree
from rlmagent.types import AgentResult

T = TypeVar("T")

DEFAULT_MAX_TURNS = 10
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_MAX_DEPTH = 1


class RLMAgent:
    """Answers a question over a context of any length with a Recursive Language Model.

    ``engine`` / ``model`` drive the root; sub-calls (``llm_query`` / ``llm_batch`` in
    the REPL) use ``sub_engine`` (default: ``engine``) and ``sub_model`` (default:
    ``model``) with their own temperature and token limit. ``sandbox`` is a
    :class:`~rlmagent.sandbox.Sandbox` (default: :class:`SubprocessSandbox`).
    ``trace`` writes a JSONL trajectory as the run goes. ``sub_calls=False`` gives a REPL
    without ``llm_query`` / ``llm_batch`` / ``rlm_query`` / ``rlm_batch``.

    Recursion: below ``max_depth``, ``rlm_query(prompt, context)`` / ``rlm_batch(items)``
    in the REPL start child RLMs (their own sandbox and ``context``), run by
    ``child_agent`` (default: this agent, so the same engines and settings); at the
    limit they are plain sub-calls. ``max_depth=1`` is the classic RLM (sub-calls are
    plain model calls); ``max_depth=3`` lets children start children of their own.

    ``budget`` (a :class:`~rlmagent.budget.Budget`) caps calls, tokens, cost and time over
    the whole tree. When a limit is reached the model sees it in the REPL, and the root
    is asked once for a final answer (a call kept back for it): :meth:`run` then
    returns that answer with ``metadata["stop_reason"] == "budget"`` and
    ``metadata["budget_limit"]`` naming the limit. When no answer can be had (time is up,
    or the reserve does not fit), :meth:`run` raises
    :class:`~rlmagent.errors.BudgetExceeded`, carrying ``limit_name``, ``spent``,
    ``limit``, ``partial_answer`` (the last FINAL value the model wrote, or None) and
    ``partial`` (the :class:`AgentResult` so far).

    ``cache`` (a path, or a :class:`~rlmagent.cache.CompletionCache`) answers repeated
    calls from a SQLite file: only temperature-0 calls unless the cache opted in. Cached
    answers cost nothing and use no budget; they count in ``usage.cached_calls``.

    Cancelling :meth:`arun` (or Ctrl-C in :meth:`run`) stops every call in flight and
    kills every sandbox of the tree before the ``CancelledError`` (``KeyboardInterrupt``)
    propagates; the root's ``RunEnded`` event carries the partial result, with the last
    FINAL value in ``metadata["partial_answer"]``.
    """

    def __init__(
        self,
        engine: Engine,
        model: str,
        *,
        tools: Sequence[Tool] | None = None,
        bus: EventBus | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        temperature: float = 0.7,
        max_tokens: int = 2048,
        sub_model: str | None = None,
        sub_temperature: float = 0.3,
        sub_max_tokens: int = 1024,
        max_output_chars: int = 10_000,
        system_prompt: str | None = None,
        sandbox: Sandbox | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        sub_engine: Engine | None = None,
        trace: str | Path | None = None,
        sub_calls: bool = True,
        max_depth: int = DEFAULT_MAX_DEPTH,
        budget: Budget | None = None,
        cache: str | Path | CompletionCache | None = None,
        child_agent: RLMAgent | None = None,
    ) -> None:
        for name, value in (("engine", engine), ("sub_engine", sub_engine or engine)):
            if not callable(getattr(value, "agenerate", None)):
                raise UsageError(
                    f"{name} must be an Engine (with generate/agenerate), got {value!r}"
                )
        if not isinstance(model, str) or not model:
            raise UsageError("model must be a non-empty string")
        for name, number in (
            ("max_turns", max_turns),
            ("max_tokens", max_tokens),
            ("sub_max_tokens", sub_max_tokens),
            ("max_output_chars", max_output_chars),
            ("max_concurrency", max_concurrency),
            ("max_depth", max_depth),
        ):
            if not isinstance(number, int) or number < 1:
                raise UsageError(f"{name} must be a positive int, got {number!r}")
        self.engine = engine
        self.model = model
        self.sub_engine = sub_engine or engine
        self.sub_model = sub_model or model
        self.tools = check_tools(tools)
        self.bus = bus
        self.max_turns = max_turns
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.sub_temperature = sub_temperature
        self.sub_max_tokens = sub_max_tokens
        self.max_output_chars = max_output_chars
        self.system_prompt = system_prompt
        self.sandbox: Sandbox = sandbox if sandbox is not None else SubprocessSandbox()
        self.max_concurrency = max_concurrency
        self.trace = Path(trace) if trace is not None else None
        self.sub_calls = sub_calls
        if budget is not None and not isinstance(budget, Budget):
            raise UsageError(f"budget must be a rlmagent.Budget, got {budget!r}")
        if cache is not None and not isinstance(cache, str | Path | CompletionCache):
            raise UsageError(f"cache must be a path or a CompletionCache, got {cache!r}")
        if child_agent is not None and not isinstance(child_agent, RLMAgent):
            raise UsageError(f"child_agent must be an RLMAgent, got {child_agent!r}")
        self.max_depth = max_depth
        self.budget = budget
        self.cache = cache
        self.child_agent = child_agent

    def run(self, input: str, context: Any = None) -> AgentResult:
        """Answer ``input`` (the question) about ``context``. Blocks until done."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(input, context=context))
        raise UsageError("run() was called inside an event loop: use `await agent.arun(...)`")

    async def arun(self, input: str, context: Any = None) -> AgentResult:
        """Async :meth:`run`. Cancelling it cancels the whole tree (see the class doc)."""
        if not isinstance(input, str) or not input.strip():
            raise UsageError("the question (input) must be a non-empty string")
        context = check_context(context)
        budget = self.budget if self.budget is not None and self.budget.limited else None
        if budget is not None and budget.max_cost_usd is not None:
            self._check_prices()
        ledger = BudgetLedger(budget) if budget is not None else None
        cache = self.cache
        owned = None
        if isinstance(cache, str | Path):
            cache = owned = CompletionCache(cache)
        try:
            bus, close_trace = self._bus()
        except BaseException:
            if owned is not None:
                owned.close()
            raise
        tree = Tree(
            loop=asyncio.get_running_loop(),
            meter=UsageMeter(),
            semaphore=asyncio.Semaphore(self.max_concurrency),
            bus=bus,
            ledger=ledger,
            cache=cache,
            max_depth=self.max_depth,
            max_concurrency=self.max_concurrency,
        )
        run = Run(self, tree, input, context)
        try:
            if ledger is None or ledger.budget.max_seconds is None:
                return await run.run()
            return await _with_deadline(run, ledger)
        finally:
            if owned is not None:
                owned.close()
            close_trace()

    def _chain(self) -> list[RLMAgent]:
        """This agent and the chain of ``child_agent`` below it, one per depth used."""
        chain: list[RLMAgent] = [self]
        child = self.child_agent
        while len(chain) < self.max_depth and child is not None:
            chain.append(child)
            child = child.child_agent
        return chain

    def _check_prices(self) -> None:
        for agent in self._chain():
            pairs = [(agent.engine, agent.model)]
            if agent.sub_calls:
                pairs.append((agent.sub_engine, agent.sub_model))
            for engine, model in pairs:
                if price_of(engine, model) is None:
                    provider = getattr(engine, "provider", type(engine).__name__)
                    raise UsageError(
                        f"a cost budget (max_cost_usd) needs the price of every model, but "
                        f"the {provider} engine has no price for model {model!r}: give the "
                        "engine prices={model: (input, output)} (USD per million tokens; "
                        "price=(input, output) for a test engine), or drop max_cost_usd"
                    )

    def _bus(self) -> tuple[EventBus | None, Callable[[], None]]:
        if self.trace is None:
            return self.bus, lambda: None
        from rlmagent.trace import TraceWriter

        bus = self.bus or EventBus()
        writer = TraceWriter(self.trace)
        unsubscribe = bus.subscribe(writer)

        def close() -> None:
            unsubscribe()
            writer.close()

        return bus, close

    def system_message(self, functions: HostFunctions) -> str:
        if self.system_prompt is not None:
            return self.system_prompt
        lines = [f"- {spec.doc}" for spec in functions.described()]
        lines.append("- `SHOW_VARS()`: the variables you have defined so far.")
        tool_text = ""
        if self.tools:
            tool_text = "\nTools (call them like functions in the REPL):\n" + "\n".join(
                signature(t) for t in self.tools.values()
            )
        return prompts.render(
            "system",
            functions="\n".join(lines),
            sub_example="\n" + prompts.render("sub_example") + "\n" if self.sub_calls else "",
            tools=tool_text,
        )


async def _with_deadline(run: Run, ledger: BudgetLedger) -> AgentResult:
    """``run`` cancelled at the budget's ``max_seconds``, which becomes BudgetExceeded."""
    assert ledger.budget.max_seconds is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ledger.budget.max_seconds - ledger.elapsed()
    try:
        async with asyncio.timeout_at(deadline) as timeout:
            return await run.run()
    except TimeoutError:
        if not timeout.expired():
            raise
        error = run.budget_error(
            ledger.refuse("seconds", f"max_seconds={ledger.budget.max_seconds:g} reached")
        )
        error.partial = run.partial
        raise error from None
