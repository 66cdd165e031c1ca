"""Engine calls of a run tree, and the host side of the REPL's functions.

Every engine call goes through :meth:`rlmagent.tree.Tree.complete`.

Model code calls ``llm_query`` / ``llm_batch`` / ``rlm_query`` / ``rlm_batch`` / tools as
stubs inside the sandbox; the sandbox thread hands each call to
:meth:`HostFunctions.handler`, which runs it on the agent's event loop.

Concurrency and depth: see :mod:`rlmagent.tree`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from rlmagent.budget import UsageMeter
from rlmagent.engines.base import run_blocking
from rlmagent.events import (
    BatchEnded,
    BatchStarted,
    SubCallEnded,
    SubCallStarted,
    ToolCalled,
)
from rlmagent.sandbox.base import FunctionSpec, check_context
from rlmagent.settings import RunSettings
from rlmagent.tools import Tool, bind_arguments, to_json_value
from rlmagent.tree import Tree
from rlmagent.types import AgentResult, Step, SubCall, TokenUsage

MAX_BATCH_SIZE = 10_000
ERROR_PREFIX = "Error: "

LLM_QUERY_DOC = (
    "`llm_query(prompt: str) -> str`: ask a sub-model. It sees only `prompt`, so put the "
    "text it needs (e.g. a slice of `context`) inside it."
)
LLM_BATCH_DOC = (
    "`llm_batch(prompts: list[str]) -> list[str]`: ask many prompts at once, concurrently; "
    "answers come back in order (a failed item is a string starting with 'Error:')."
)
RLM_QUERY_DOC = (
    "`rlm_query(prompt: str, context=None) -> str`: start a child RLM, a model like you "
    "with its own REPL whose `context` is the `context` you pass (str, list or dict); it "
    "answers `prompt` by writing code. Slower and costlier than llm_query: use it for a "
    "piece too big or too hard for one sub-model call."
)
RLM_BATCH_DOC = (
    "`rlm_batch(items: list) -> list[str]`: many rlm_query calls at once, concurrently; "
    "each item is a prompt or a (prompt, context) pair; answers come back in order (a "
    "failed item is a string starting with 'Error:')."
)
RLM_QUERY_LEAF_DOC = (
    "`rlm_query(prompt: str, context=None) -> str`: at this depth, one plain sub-model "
    "call, like llm_query, on `prompt` followed by the text of `context`."
)
RLM_BATCH_LEAF_DOC = (
    "`rlm_batch(items: list) -> list[str]`: at this depth, like llm_batch; each item is a "
    "prompt or a (prompt, context) pair."
)
RECURSIVE_FUNCTIONS = ("rlm_query", "rlm_batch")


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
    ) -> None:
        self.settings = settings
        self.tree = tree
        self.run_id = run_id
        self.depth = depth
        self.parent_id = parent_id
        self.tools: Mapping[str, Tool] = settings.tools
        self.meter = meter
        self.spawn_child = spawn_child
        self._calls: list[SubCall] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def _ev(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "depth": self.depth, "parent_id": self.parent_id}

    def take_calls(self) -> tuple[SubCall, ...]:
        """The sub-calls finished since the last call (those of one cell)."""
        calls, self._calls = tuple(self._calls), []
        return calls

    def specs(self) -> list[FunctionSpec]:
        specs = []
        if self.settings.sub_calls:
            recurse = self.tree.can_recurse(self.depth)
            specs += [
                FunctionSpec("llm_query", LLM_QUERY_DOC),
                FunctionSpec("llm_batch", LLM_BATCH_DOC),
                FunctionSpec("rlm_query", RLM_QUERY_DOC if recurse else RLM_QUERY_LEAF_DOC),
                FunctionSpec("rlm_batch", RLM_BATCH_DOC if recurse else RLM_BATCH_LEAF_DOC),
            ]
        specs += [FunctionSpec(t.name, t.description) for t in self.tools.values()]
        return specs

    def described(self) -> list[FunctionSpec]:
        """The specs the system prompt lists: rlm_* only when the tree can recurse."""
        shown: tuple[str, ...] = ("llm_query", "llm_batch")
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
            prompt = _arguments("llm_query", ("prompt",), args, kwargs)[0]
            return await self.query(_check_prompt("llm_query", prompt))
        if self.settings.sub_calls and name == "llm_batch":
            prompts = _arguments("llm_batch", ("prompts",), args, kwargs)[0]
            return await self.batch(prompts)
        if self.settings.sub_calls and name == "rlm_query":
            prompt, context = _arguments("rlm_query", ("prompt", "context"), args, kwargs)
            return await self.rlm_query(_check_prompt("rlm_query", prompt), context)
        if self.settings.sub_calls and name == "rlm_batch":
            items = _arguments("rlm_batch", ("items",), args, kwargs)[0]
            return await self.rlm_batch(items)
        if name in self.tools:
            return await self.call_tool(self.tools[name], args, kwargs)
        raise NameError(f"no host function named {name!r}")

    # -- sub-calls ----------------------------------------------------------------------

    async def query(self, prompt: str, *, batch_id: str | None = None) -> str:
        sub = self.settings.sub
        _, record = self._start(prompt, sub.model, batch_id)
        try:
            completion = await self.tree.complete(
                sub.engine,
                [{"role": "user", "content": prompt}],
                model=sub.model,
                temperature=sub.temperature,
                max_tokens=sub.max_tokens,
                meter=self.meter,
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

    def _start(
        self, prompt: str, model: str, batch_id: str | None
    ) -> tuple[str, Callable[..., None]]:
        """Publish a sub-call's start; its id, and ``record(**outcome)`` for its end."""
        call_id = self.tree.new_id("call-")
        self.tree.publish(
            SubCallStarted(
                **self._ev(), call_id=call_id, prompt=prompt, model=model, batch_id=batch_id
            )
        )
        record = functools.partial(
            self._record, call_id, prompt, model, batch_id, time.time(), time.monotonic()
        )
        return call_id, record

    def _record(
        self,
        call_id: str,
        prompt: str,
        model: str,
        batch_id: str | None,
        started: float,
        t0: float,
        **outcome: Any,
    ) -> None:
        """Keep one finished sub-call (``outcome``: answer, error, usage...) and publish it."""
        call = SubCall(
            call_id=call_id,
            prompt=prompt,
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
        _check_size("llm_batch", prompts)
        checked = [_check_prompt(f"llm_batch item {i}", p) for i, p in enumerate(prompts)]
        return await self._gather([lambda b, p=p: self.query(p, batch_id=b) for p in checked])

    # -- recursion ----------------------------------------------------------------------

    async def rlm_query(
        self, prompt: str, context: Any = None, *, batch_id: str | None = None
    ) -> str:
        """A child RLM on ``context`` answering ``prompt``; a plain sub-call at the limit."""
        if not self.tree.can_recurse(self.depth):
            return await self.query(_with_context(prompt, context), batch_id=batch_id)
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
        _check_size("rlm_batch", items)
        pairs = [_rlm_item(i, item) for i, item in enumerate(items)]
        return await self._gather(
            [lambda b, p=p, c=c: self.rlm_query(p, c, batch_id=b) for p, c in pairs]
        )

    # -- tools --------------------------------------------------------------------------

    async def call_tool(self, tool: Tool, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        bound = bind_arguments(tool, args, kwargs)
        t0 = time.monotonic()
        try:
            result = to_json_value(await run_blocking(tool.execute, **bound))
        except Exception as exc:
            self.tree.publish(
                ToolCalled(
                    **self._ev(),
                    name=tool.name,
                    arguments=bound,
                    result=None,
                    error=f"{type(exc).__name__}: {exc}",
                    latency_s=time.monotonic() - t0,
                )
            )
            raise
        self.tree.publish(
            ToolCalled(
                **self._ev(),
                name=tool.name,
                arguments=bound,
                result=str(result)[:2000],
                latency_s=time.monotonic() - t0,
            )
        )
        return result


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return f"{type(exc).__name__}: {exc}"


def _arguments(
    fn: str, names: tuple[str, ...], args: list[Any], kwargs: dict[str, Any]
) -> list[Any]:
    """Bind ``args`` / ``kwargs`` to ``names`` (the first required, the rest default None)."""
    unknown = sorted(set(kwargs) - set(names))
    if unknown or len(args) > len(names):
        shown = ", ".join(repr(n) for n in names)
        raise TypeError(
            f"{fn}() takes {shown}" + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    values: list[Any] = list(args) + [None] * (len(names) - len(args))
    for index, name in enumerate(names):
        if name in kwargs:
            if index < len(args):
                raise TypeError(f"{fn}() got {name!r} twice")
            values[index] = kwargs[name]
    if len(args) == 0 and names[0] not in kwargs:
        raise TypeError(f"{fn}() missing its argument {names[0]!r}")
    return values


def _check_prompt(where: str, prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"{where} must be a str, got {type(prompt).__name__}")
    return prompt


def _check_size(fn: str, items: Sequence[Any]) -> None:
    if len(items) > MAX_BATCH_SIZE:
        raise ValueError(f"{fn} takes at most {MAX_BATCH_SIZE} items, got {len(items)}")


def _rlm_item(index: int, item: Any) -> tuple[str, Any]:
    where = f"rlm_batch item {index}"
    if isinstance(item, str):
        return item, None
    if isinstance(item, list | tuple) and len(item) == 2:
        return _check_prompt(f"{where} prompt", item[0]), item[1]
    if isinstance(item, dict) and "prompt" in item and set(item) <= {"prompt", "context"}:
        return _check_prompt(f"{where} prompt", item["prompt"]), item.get("context")
    raise TypeError(
        f"{where} must be a prompt (str), a (prompt, context) pair or a dict with 'prompt' "
        f"and 'context', got {type(item).__name__}"
    )


def _with_context(prompt: str, context: Any) -> str:
    """The prompt of a plain sub-call standing in for a child RLM: prompt, then context."""
    if context is None:
        return prompt
    text = context if isinstance(context, str) else json.dumps(context, ensure_ascii=False)
    return f"{prompt}\n\n{text}"
