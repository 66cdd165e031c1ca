"""The host side of the REPL's functions: ``llm_query``, ``llm_batch`` and tools.

Model code calls these stubs inside the sandbox; the sandbox thread hands each call to
:meth:`HostFunctions.handler`, which runs it on the agent's event loop. Sub-calls of a
batch run concurrently, at most ``max_concurrency`` at once over the whole run tree.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rlmagent.budget import UsageMeter
from rlmagent.engines.base import run_blocking
from rlmagent.events import (
    BatchEnded,
    BatchStarted,
    Event,
    EventBus,
    SubCallEnded,
    SubCallStarted,
    ToolCalled,
)
from rlmagent.sandbox.base import FunctionSpec
from rlmagent.tools import Tool, bind_arguments, to_json_value
from rlmagent.types import SubCall

if TYPE_CHECKING:
    from rlmagent.agent import RLMAgent

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


@dataclass
class Tree:
    """State shared by every run in one recursion tree."""

    loop: asyncio.AbstractEventLoop
    meter: UsageMeter
    semaphore: asyncio.Semaphore
    bus: EventBus | None
    ids: itertools.count[int] = field(default_factory=itertools.count)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def publish(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.publish(event)


class HostFunctions:
    """Everything the REPL of one run can call on the host."""

    def __init__(
        self,
        agent: RLMAgent,
        tree: Tree,
        *,
        run_id: str,
        depth: int,
        parent_id: str | None,
        tools: Mapping[str, Tool],
    ) -> None:
        self.agent = agent
        self.tree = tree
        self.run_id = run_id
        self.depth = depth
        self.parent_id = parent_id
        self.tools = dict(tools)
        self.cell_calls: list[SubCall] = []

    def _ev(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "depth": self.depth, "parent_id": self.parent_id}

    def specs(self) -> list[FunctionSpec]:
        specs = []
        if self.agent.sub_calls:
            specs += [FunctionSpec("llm_query", LLM_QUERY_DOC), FunctionSpec("llm_batch", LLM_BATCH_DOC)]
        specs += [FunctionSpec(t.name, t.description) for t in self.tools.values()]
        return specs

    # -- called from the sandbox's thread -----------------------------------------------

    def handler(self, name: str, params: dict[str, Any]) -> Any:
        args = params.get("args", [])
        kwargs = params.get("kwargs", {})
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise TypeError("malformed arguments")
        future = asyncio.run_coroutine_threadsafe(self.dispatch(name, args, kwargs), self.tree.loop)
        return future.result()

    async def dispatch(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.agent.sub_calls and name == "llm_query":
            prompt = _one_argument("llm_query", "prompt", args, kwargs)
            return await self.query(_check_prompt("llm_query", prompt))
        if self.agent.sub_calls and name == "llm_batch":
            prompts = _one_argument("llm_batch", "prompts", args, kwargs)
            return await self.batch(prompts)
        if name in self.tools:
            return await self.call_tool(self.tools[name], args, kwargs)
        raise NameError(f"no host function named {name!r}")

    # -- sub-calls ----------------------------------------------------------------------

    async def query(self, prompt: str, *, batch_id: str | None = None) -> str:
        agent = self.agent
        call_id = self.tree.new_id("call-")
        async with self.tree.semaphore:
            self.tree.publish(
                SubCallStarted(
                    **self._ev(), call_id=call_id, prompt=prompt, model=agent.sub_model,
                    batch_id=batch_id,
                )
            )
            started, t0 = time.time(), time.monotonic()
            try:
                completion = await agent.sub_engine.agenerate(
                    [{"role": "user", "content": prompt}],
                    model=agent.sub_model,
                    temperature=agent.sub_temperature,
                    max_tokens=agent.sub_max_tokens,
                )
            except Exception as exc:
                self._record(SubCall(
                    call_id=call_id, prompt=prompt, answer=None, model=agent.sub_model,
                    depth=self.depth + 1, started_at=started, latency_s=time.monotonic() - t0,
                    error=f"{type(exc).__name__}: {exc}", batch_id=batch_id,
                ))
                raise
        self.tree.meter.record(completion, agent.sub_model)
        self._record(SubCall(
            call_id=call_id, prompt=prompt, answer=completion.content, model=agent.sub_model,
            depth=self.depth + 1, usage=completion.usage, cost_usd=completion.cost_usd,
            started_at=started, latency_s=time.monotonic() - t0, cached=completion.cached,
            batch_id=batch_id,
        ))
        return completion.content

    def _record(self, call: SubCall) -> None:
        self.cell_calls.append(call)
        self.tree.publish(SubCallEnded(**self._ev(), call=call))

    async def batch(self, prompts: Any) -> list[str]:
        if not isinstance(prompts, list | tuple):
            raise TypeError(f"llm_batch(prompts) needs a list of str, got {type(prompts).__name__}")
        if len(prompts) > MAX_BATCH_SIZE:
            raise ValueError(f"llm_batch takes at most {MAX_BATCH_SIZE} prompts, got {len(prompts)}")
        checked = [_check_prompt(f"llm_batch item {i}", p) for i, p in enumerate(prompts)]
        batch_id = self.tree.new_id("batch-")
        self.tree.publish(BatchStarted(**self._ev(), batch_id=batch_id, size=len(checked)))

        async def one(prompt: str) -> str:
            try:
                return await self.query(prompt, batch_id=batch_id)
            except Exception as exc:
                return f"{ERROR_PREFIX}{type(exc).__name__}: {exc}"

        answers = await asyncio.gather(*(one(p) for p in checked))
        failures = sum(a.startswith(ERROR_PREFIX) for a in answers)
        self.tree.publish(
            BatchEnded(**self._ev(), batch_id=batch_id, size=len(answers), failures=failures)
        )
        return list(answers)

    async def call_tool(self, tool: Tool, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        bound = bind_arguments(tool, args, kwargs)
        t0 = time.monotonic()
        try:
            result = to_json_value(await run_blocking(tool.execute, **bound))
        except Exception as exc:
            self.tree.publish(ToolCalled(
                **self._ev(), name=tool.name, arguments=bound, result=None,
                error=f"{type(exc).__name__}: {exc}", latency_s=time.monotonic() - t0,
            ))
            raise
        self.tree.publish(ToolCalled(
            **self._ev(), name=tool.name, arguments=bound, result=str(result)[:2000],
            latency_s=time.monotonic() - t0,
        ))
        return result


def _one_argument(fn: str, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if len(args) + len(kwargs) != 1 or (kwargs and name not in kwargs):
        raise TypeError(f"{fn}() takes exactly one argument, {name!r}")
    return args[0] if args else kwargs[name]


def _check_prompt(where: str, prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"{where} must be a str, got {type(prompt).__name__}")
    return prompt

