"""RLMAgent: the root loop of a Recursive Language Model.

The root model never sees the context; it sees a description and writes code that runs
in a sandboxed REPL holding it. Each turn: ask the root model, run its code blocks,
send back the (cut) output; until ``FINAL`` or the turn limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from rlmagent.budget import Budget, BudgetLedger, UsageMeter, price_of
from rlmagent.cache import CompletionCache
from rlmagent.engines.base import Engine
from rlmagent.errors import UsageError
from rlmagent.events import EventBus
from rlmagent.run import Run, run_with_deadline
from rlmagent.sandbox.base import Sandbox, check_context
from rlmagent.sandbox.subprocess import SubprocessSandbox
from rlmagent.session import DEFAULT_CONTEXT_NAME, Session
from rlmagent.settings import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TURNS,
    DEFAULT_SUB_MAX_TOKENS,
    DEFAULT_SUB_TEMPERATURE,
    DEFAULT_TEMPERATURE,
    ModelSettings,
    RunSettings,
    profile_for,
)
from rlmagent.tools import Tool, check_tools
from rlmagent.tree import Tree
from rlmagent.typed import output_spec
from rlmagent.types import AgentResult


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
    returns that answer with ``stop_reason == "budget"`` and ``budget_limit`` naming
    the limit. When no answer can be had (time is up,
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
    FINAL value in ``partial_answer``.

    ``prompt_profile`` picks the system prompt: ``"small"`` (worked examples and one-line
    patterns, for small local roots) or ``"capable"`` (the paper's strategies, for
    frontier models); default by engine (the embedded model gets ``small``).
    ``check_answers`` questions a FINAL that rests on no output the model saw and has a
    sub-call check that the outputs support it (default: on with ``small``).
    All settings end up in :attr:`settings`, a frozen
    :class:`~rlmagent.settings.RunSettings`.
    """

    def __init__(
        self,
        engine: Engine,
        model: str,
        *,
        tools: Sequence[Tool] | None = None,
        bus: EventBus | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
        temperature: float = DEFAULT_TEMPERATURE,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        sub_model: str | None = None,
        sub_temperature: float = DEFAULT_SUB_TEMPERATURE,
        sub_max_tokens: int = DEFAULT_SUB_MAX_TOKENS,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
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
        prompt_profile: str | None = None,
        check_answers: bool | None = None,
    ) -> None:
        for name, value in (("engine", engine), ("sub_engine", sub_engine or engine)):
            if not isinstance(value, Engine):
                raise UsageError(
                    f"{name} must be an Engine (generate, agenerate, price, context_window, "
                    f"identity, wrapped; see rlmagent.engines.EngineBase), got {value!r}"
                )
        if not isinstance(model, str) or not model:
            raise UsageError("model must be a non-empty string")
        if not isinstance(sub_max_tokens, int) or sub_max_tokens < 1:
            raise UsageError(f"sub_max_tokens must be a positive int, got {sub_max_tokens!r}")
        if budget is not None and not isinstance(budget, Budget):
            raise UsageError(f"budget must be a rlmagent.Budget, got {budget!r}")
        if cache is not None and not isinstance(cache, str | Path | CompletionCache):
            raise UsageError(f"cache must be a path or a CompletionCache, got {cache!r}")
        if child_agent is not None and not isinstance(child_agent, RLMAgent):
            raise UsageError(f"child_agent must be an RLMAgent, got {child_agent!r}")
        profile = prompt_profile if prompt_profile is not None else profile_for(engine)
        settings = RunSettings(
            root=ModelSettings(engine, model, temperature, max_tokens),
            sub=ModelSettings(
                sub_engine or engine, sub_model or model, sub_temperature, sub_max_tokens
            ),
            sandbox=sandbox if sandbox is not None else SubprocessSandbox(),
            tools=MappingProxyType(check_tools(tools)),
            max_turns=max_turns,
            max_output_chars=max_output_chars,
            max_concurrency=max_concurrency,
            max_depth=max_depth,
            sub_calls=sub_calls,
            system_prompt=system_prompt,
            prompt_profile=profile,
            check_answers=profile == "small" if check_answers is None else check_answers,
            child=child_agent.settings if child_agent is not None else None,
        )
        self.settings: RunSettings = settings
        self.bus = bus
        self.trace = Path(trace) if trace is not None else None
        self.budget = budget
        self.cache = cache

    @property
    def engine(self) -> Engine:
        """The root's engine."""
        return self.settings.root.engine

    @property
    def model(self) -> str:
        """The root's model."""
        return self.settings.root.model

    def run(self, input: str, context: Any = None, *, output_type: Any = None) -> AgentResult:
        """Answer ``input`` (the question) about ``context``. Blocks until done.

        ``output_type`` (a Python type such as ``int``, ``list[str]``, a dataclass or a
        TypedDict, or a JSON Schema dict; needs the ``typed`` extra) asks for a typed
        answer: the model is told the type, the final answer is validated in the host
        and sent back to correct at most twice, and ``result.value`` holds the value;
        else :class:`~rlmagent.errors.OutputTypeError` (``raw``, ``validation``).
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.arun(input, context=context, output_type=output_type))
        raise UsageError("run() was called inside an event loop: use `await agent.arun(...)`")

    async def arun(
        self, input: str, context: Any = None, *, output_type: Any = None
    ) -> AgentResult:
        """Async :meth:`run`. Cancelling it cancels the whole tree (see the class doc)."""
        if not isinstance(input, str) or not input.strip():
            raise UsageError("the question (input) must be a non-empty string")
        context = check_context(context)
        spec = output_spec(output_type) if output_type is not None else None
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
        settings = self.settings
        tree = Tree(
            loop=asyncio.get_running_loop(),
            meter=UsageMeter(),
            semaphore=asyncio.Semaphore(settings.max_concurrency),
            bus=bus,
            ledger=ledger,
            cache=cache,
            max_depth=settings.max_depth,
            max_concurrency=settings.max_concurrency,
        )
        run = Run(settings, tree, input, context, output_type=spec)
        try:
            if ledger is None or ledger.budget.max_seconds is None:
                return await run.run()
            return await run_with_deadline(run, ledger)
        finally:
            if owned is not None:
                owned.close()
            close_trace()

    def session(
        self,
        context: Any = None,
        *,
        contexts: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
    ) -> Session:
        """A :class:`~rlmagent.session.Session`: many questions in one REPL.

        ``context`` (named ``"context"``) and/or ``contexts`` (by name; str, list, dict
        or Path each) are staged once; the first is ``context`` in the REPL, all are in
        ``contexts``. ``budget`` caps the whole session; each question also runs under
        ``ask(budget=)`` or, without one, this agent's budget. Use it with ``with``, or
        call ``close()``.
        """
        if budget is not None and not isinstance(budget, Budget):
            raise UsageError(f"budget must be a rlmagent.Budget, got {budget!r}")
        if contexts is not None and not isinstance(contexts, Mapping):
            raise UsageError(f"contexts must be a dict name -> context, got {contexts!r}")
        named: dict[str, Any] = {}
        if context is not None:
            named[DEFAULT_CONTEXT_NAME] = context
        for name, value in (contexts or {}).items():
            if name in named:
                raise UsageError(
                    f"contexts has a {name!r} and context= is given too: "
                    "name every context in contexts instead"
                )
            named[name] = value
        return Session(
            self.settings,
            contexts=named,
            bus=self.bus,
            trace=self.trace,
            cache=self.cache,
            question_budget=self.budget,
            budget=budget,
            check_prices=self._check_prices,
        )

    def _check_prices(self) -> None:
        for settings in self.settings.chain():
            roles = [settings.root, settings.sub] if settings.sub_calls else [settings.root]
            for role in roles:
                if price_of(role.engine, role.model) is None:
                    raise UsageError(
                        f"a cost budget (max_cost_usd) needs the price of every model, but "
                        f"the {role.engine.provider} engine has no price for model "
                        f"{role.model!r}: give the engine prices={{model: (input, output)}} "
                        "(USD per million tokens; price=(input, output) for a test engine), "
                        "or drop max_cost_usd"
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
