"""The host side of the REPL's functions.

Model code calls ``llm_query`` / ``llm_batch`` / the semantic operators / ``rlm_query``
/ ``rlm_batch`` / tools as stubs inside the sandbox; the sandbox thread hands each call
to :meth:`HostFunctions.handler`, which runs it on the run's event loop. Every engine
call goes through :meth:`rlmagent.tree.Tree.complete`; what the model sees of these
functions, and the checks of their arguments (the window guard included), live in
:mod:`rlmagent.functions`; a user tool's call is :mod:`rlmagent.toolcalls`.

Concurrency and depth: see :mod:`rlmagent.tree`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rlmagent import sourcing
from rlmagent.budget import UsageMeter
from rlmagent.events import (
    BatchEnded,
    BatchStarted,
    Notice,
    SubCallEnded,
    SubCallStarted,
)
from rlmagent.functions import (
    ERROR_PREFIX,
    LLM_BATCH_DOC,
    LLM_QUERY_DOC,
    OPERATORS,
    RECURSIVE_FUNCTIONS,
    RLM_BATCH_DOC,
    RLM_BATCH_LEAF_DOC,
    RLM_QUERY_DOC,
    RLM_QUERY_LEAF_DOC,
    arguments,
    check_fits,
    check_prompt,
    check_size,
    prompt_room,
    rlm_item,
    with_context,
)
from rlmagent.sandbox.base import FunctionSpec, check_context
from rlmagent.sandbox.protocol import shown
from rlmagent.settings import RunSettings
from rlmagent.toolcalls import call_tool
from rlmagent.tools import Tool
from rlmagent.tree import Tree
from rlmagent.types import (
    RECORD_CHARS,
    RUN_RECORD_CHARS,
    SHORT_RECORD_CHARS,
    AgentResult,
    Step,
    SubCall,
    TokenUsage,
    record_text,
)


class ChildRun(Protocol):
    """A child run as the host sees it (a :class:`rlmagent.run.Run`)."""

    run_id: str
    meter: UsageMeter
    steps: list[Step]

    async def run(self) -> AgentResult: ...


SpawnChild = Callable[[str, Any, str, UsageMeter], ChildRun]
"""``spawn_child(prompt, context, parent_id, meter)``: a child run one depth down, not
yet started. Handed down by the run, so this module never imports the loop."""


class HostFunctions:
    """Everything the REPL of one run can call on the host."""

    def __init__(
        self,
        settings: RunSettings,
        tree: Tree,
        *,
        run_id: str,
        depth: int,
        parent_id: str | None,
        meter: UsageMeter,
        spawn_child: SpawnChild,
        context: Any = None,
    ) -> None:
        """``context``: the run's context, to tell a ``llm_query`` / ``llm_batch``
        prompt that holds none of it (:mod:`rlmagent.sourcing`)."""
        self.settings = settings
        self.context = context
        self._context_text: str | bool | None = False  # False: not read yet
        self.tree = tree
        self.run_id = run_id
        self.depth = depth
        self.parent_id = parent_id
        self.tools: Mapping[str, Tool] = settings.tools
        self.meter = meter
        self.spawn_child = spawn_child
        self._calls: list[SubCall] = []
        self._notes: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._kept = 0  # characters of prompts and answers kept in this run's records

    def _ev(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "depth": self.depth, "parent_id": self.parent_id}

    def take_calls(self) -> tuple[SubCall, ...]:
        """The sub-calls finished since the last call (those of one cell)."""
        calls, self._calls = tuple(self._calls), []
        return calls

    def take_notes(self) -> list[str]:
        """The operators' notes since the last call (what went wrong, for the output)."""
        notes, self._notes = self._notes, []
        return notes

    def specs(self) -> list[FunctionSpec]:
        specs = []
        if self.settings.sub_calls:
            recurse = self.tree.can_recurse(self.depth)
            specs += [
                FunctionSpec("llm_query", LLM_QUERY_DOC),
                FunctionSpec("llm_batch", LLM_BATCH_DOC),
                *(FunctionSpec(name, doc) for name, (_, _, doc) in OPERATORS.items()),
                FunctionSpec("rlm_query", RLM_QUERY_DOC if recurse else RLM_QUERY_LEAF_DOC),
                FunctionSpec("rlm_batch", RLM_BATCH_DOC if recurse else RLM_BATCH_LEAF_DOC),
            ]
        specs += [FunctionSpec(t.name, t.description) for t in self.tools.values()]
        return specs

    def described(self) -> list[FunctionSpec]:
        """The specs the system prompt lists: rlm_* only when the tree can recurse."""
        shown: tuple[str, ...] = ("llm_query", "llm_batch", *OPERATORS)
        if self.tree.max_depth > 1:
            shown += RECURSIVE_FUNCTIONS
        return [s for s in self.specs() if s.name in shown]

    # -- called from the sandbox's thread -----------------------------------------------

    def handler(self, name: str, params: dict[str, Any]) -> Any:
        args = params.get("args", [])
        kwargs = params.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise TypeError("malformed arguments")
        future = asyncio.run_coroutine_threadsafe(self._tracked(name, args, kwargs), self.tree.loop)
        return future.result()

    async def _tracked(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self._closed:
            raise RuntimeError("the run has ended")
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            return await self.dispatch(name, args, kwargs)
        finally:
            self._tasks.discard(task)

    async def cancel(self) -> None:
        """Refuse new calls; cancel those in flight (child runs close their sandboxes)."""
        self._closed = True
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def dispatch(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.settings.sub_calls and name == "llm_query":
            prompt = check_prompt("llm_query", arguments("llm_query", ("prompt",), args, kwargs)[0])
            answer = await self.query(prompt)
            self._note_blind("llm_query", [prompt])
            return answer
        if self.settings.sub_calls and name == "llm_batch":
            prompts = arguments("llm_batch", ("prompts",), args, kwargs)[0]
            answers = await self.batch(prompts)
            self._note_blind("llm_batch", prompts)
            return answers
        if self.settings.sub_calls and name in OPERATORS:
            return await self.operator(name, args, kwargs)
        if self.settings.sub_calls and name == "rlm_query":
            prompt, context = arguments("rlm_query", ("prompt", "context"), args, kwargs)
            return await self.rlm_query(check_prompt("rlm_query", prompt), context)
        if self.settings.sub_calls and name == "rlm_batch":
            items = arguments("rlm_batch", ("items",), args, kwargs)[0]
            return await self.rlm_batch(items)
        if name in self.tools:
            return await self.call_tool(self.tools[name], args, kwargs)
        raise NameError(f"no host function named {shown(name)}")

    # -- sub-calls ----------------------------------------------------------------------

    def _note_blind(self, fn: str, prompts: Sequence[str]) -> None:
        """Say in the cell's output when sub-call prompts hold none of the context."""
        if self._context_text is False:
            self._context_text = sourcing.context_text(self.context)
        blind = sourcing.blind_prompts(prompts, self._context_text or None)
        if blind:
            looked_at = min(len(prompts), sourcing.MAX_PROMPTS)
            self._notes.append(sourcing.blind_note(fn, blind, looked_at))

    def _window(self) -> int | None:
        sub = self.settings.sub
        return sub.engine.context_window(sub.model)

    async def query(self, prompt: str, *, batch_id: str | None = None) -> str:
        sub = self.settings.sub
        check_fits("llm_query", prompt, self._window(), sub.model, sub.max_tokens)
        _, record = self._start(prompt, sub.model, batch_id)
        try:
            completion = await self.tree.complete(
                sub.engine,
                [{"role": "user", "content": prompt}],
                model=sub.model,
                temperature=sub.temperature,
                max_tokens=sub.max_tokens,
                meter=self.meter,
                memo=True,
            )
        except BaseException as exc:
            record(answer=None, error=_describe(exc))
            raise
        record(
            answer=completion.content,
            usage=completion.usage,
            cost_usd=completion.cost_usd,
            cached=completion.cached,
        )
        return completion.content

    def _keep(self, text: str) -> str:
        """``text`` as this run's records keep it: to ``RECORD_CHARS``, and to
        ``SHORT_RECORD_CHARS`` once the run has kept ``RUN_RECORD_CHARS`` in all."""
        limit = RECORD_CHARS if self._kept < RUN_RECORD_CHARS else SHORT_RECORD_CHARS
        kept = record_text(text, limit)
        self._kept += len(kept)
        return kept

    def _start(
        self, prompt: str, model: str, batch_id: str | None
    ) -> tuple[str, Callable[..., None]]:
        """Publish a sub-call's start; its id, and ``record(**outcome)`` for its end.
        Events and records hold the prompt cut (``_keep``) and its full length."""
        call_id = self.tree.new_id("call-")
        kept = self._keep(prompt)
        self.tree.publish(
            SubCallStarted(
                **self._ev(),
                call_id=call_id,
                prompt=kept,
                prompt_chars=len(prompt),
                model=model,
                batch_id=batch_id,
            )
        )
        record = functools.partial(
            self._record, call_id, kept, len(prompt), model, batch_id, time.time(),
            time.monotonic(),
        )  # fmt: skip
        return call_id, record

    def _record(
        self,
        call_id: str,
        prompt: str,
        prompt_chars: int,
        model: str,
        batch_id: str | None,
        started: float,
        t0: float,
        *,
        answer: str | None,
        error: str | None = None,
        **outcome: Any,
    ) -> None:
        """Keep one finished sub-call (``outcome``: usage, cost...) and publish it."""
        call = SubCall(
            call_id=call_id,
            prompt=prompt,
            prompt_chars=prompt_chars,
            answer=None if answer is None else self._keep(answer),
            answer_chars=0 if answer is None else len(answer),
            error=None if error is None else record_text(error),
            model=model,
            depth=self.depth + 1,
            started_at=started,
            latency_s=time.monotonic() - t0,
            batch_id=batch_id,
            **outcome,
        )
        self._calls.append(call)
        self.tree.publish(SubCallEnded(**self._ev(), call=call))

    async def _gather(self, calls: list[Any]) -> list[str]:
        """Run coroutines concurrently as one batch; a failed item becomes an error string."""
        batch_id = self.tree.new_id("batch-")
        self.tree.publish(BatchStarted(**self._ev(), batch_id=batch_id, size=len(calls)))

        async def one(make: Any) -> str:
            try:
                return str(await make(batch_id))
            except Exception as exc:
                return f"{ERROR_PREFIX}{type(exc).__name__}: {exc}"

        answers = await asyncio.gather(*(one(c) for c in calls))
        failures = sum(a.startswith(ERROR_PREFIX) for a in answers)
        self.tree.publish(
            BatchEnded(**self._ev(), batch_id=batch_id, size=len(answers), failures=failures)
        )
        return list(answers)

    async def batch(self, prompts: Any) -> list[str]:
        if not isinstance(prompts, list | tuple):
            raise TypeError(f"llm_batch(prompts) needs a list of str, got {type(prompts).__name__}")
        check_size("llm_batch", prompts)
        checked = [check_prompt(f"llm_batch item {i}", p) for i, p in enumerate(prompts)]
        return await self._gather([lambda b, p=p: self.query(p, batch_id=b) for p in checked])

    async def operator(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        """``llm_filter`` / ``llm_map`` / ``llm_classify``: their sub-calls go through
        :meth:`batch` (concurrency, budget, cache, events); problems become a note in
        the cell's output."""
        function, names, _ = OPERATORS[name]
        items, second = arguments(name, names, args, kwargs)
        room = prompt_room(self._window(), self.settings.sub.max_tokens)
        result = await function(self.batch, items, second, max_prompt_chars=room)
        if result.note:
            self._notes.append(f"[{result.note}]")
            self.tree.publish(Notice(**self._ev(), message=result.note))
        return list(result.values)

    # -- recursion ----------------------------------------------------------------------

    async def rlm_query(
        self, prompt: str, context: Any = None, *, batch_id: str | None = None
    ) -> str:
        """A child RLM on ``context`` answering ``prompt``; a plain sub-call at the limit."""
        if not self.tree.can_recurse(self.depth):
            return await self.query(with_context(prompt, context), batch_id=batch_id)
        context = check_context(context)
        call_id, record = self._start(prompt, self.settings.children.root.model, batch_id)
        run = None
        try:
            async with self.tree.child_slot(self.depth + 1):
                run = self.spawn_child(prompt, context, call_id, UsageMeter(parent=self.meter))
                result = await run.run()
        except BaseException as exc:
            usage = run.meter.snapshot() if run is not None else None
            record(
                answer=None,
                error=_describe(exc),
                usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens)
                if usage
                else TokenUsage(),
                cost_usd=usage.cost_usd if usage else None,
                child_run_id=run.run_id if run is not None else None,
                turns=len(run.steps) if run is not None else 0,
            )
            raise
        usage = result.usage
        record(
            answer=result.content,
            usage=TokenUsage(usage.prompt_tokens, usage.completion_tokens),
            cost_usd=usage.cost_usd,
            cached=usage.calls > 0 and usage.cached_calls == usage.calls,
            child_run_id=run.run_id,
            turns=result.turns,
        )
        return result.content

    async def rlm_batch(self, items: Any) -> list[str]:
        if not isinstance(items, list | tuple):
            raise TypeError(
                "rlm_batch(items) needs a list of prompts or (prompt, context) pairs, "
                f"got {type(items).__name__}"
            )
        check_size("rlm_batch", items)
        pairs = [rlm_item(i, item) for i, item in enumerate(items)]
        return await self._gather(
            [lambda b, p=p, c=c: self.rlm_query(p, c, batch_id=b) for p, c in pairs]
        )

    async def call_tool(self, tool: Tool, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        return await call_tool(tool, args, kwargs, self.tree.publish, self._ev())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return f"{type(exc).__name__}: {exc}"
