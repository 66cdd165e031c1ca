"""Public test doubles: :class:`ScriptedEngine` and :class:`FunctionEngine`.

Both are real engines as far as the agent is concerned; they are how the loop's logic
is tested without a model, and how users write deterministic tests of their own code.
Token counts are estimated (4 characters a token); cost is None unless a price is given.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rlmagent.engines.base import estimate_tokens, run_blocking
from rlmagent.errors import EngineError
from rlmagent.types import Completion, Message, TokenUsage

Price = tuple[float, float]
"""USD per million (input, output) tokens."""


def _complete(
    reply: str | Completion, messages: Sequence[Message], model: str, price: Price | None
) -> Completion:
    if isinstance(reply, Completion):
        return reply
    if not isinstance(reply, str):
        raise EngineError(
            f"a test engine must answer with str or Completion, got {type(reply).__name__}",
            provider="function",
            model=model,
        )
    usage = TokenUsage(
        prompt_tokens=sum(estimate_tokens(m.get("content", "")) for m in messages),
        completion_tokens=estimate_tokens(reply),
    )
    cost = None
    if price is not None:
        cost = (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6
    return Completion(content=reply, model=model, usage=usage, cost_usd=cost)


class FunctionEngine:
    """An engine that answers with ``fn(messages, model)``.

    ``fn`` gets a list of ``{"role", "content"}`` dicts and the model name and returns a
    ``str`` (or a full :class:`Completion`). It may be a coroutine function. It is called
    from several threads or tasks at once during ``llm_batch``: keep it thread-safe.
    """

    provider = "function"

    def __init__(
        self,
        fn: Callable[[list[Message], str], str | Completion | Awaitable[str | Completion]],
        *,
        price: Price | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionEngine needs a callable, got {type(fn).__name__}")
        self.fn = fn
        self.price = price
        self._is_async = inspect.iscoroutinefunction(fn)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        if self._is_async:
            raise EngineError(
                "this FunctionEngine wraps a coroutine function: use agenerate()",
                provider=self.provider,
                model=model,
            )
        msgs = [dict(m) for m in messages]
        return _complete(self.fn(msgs, model), msgs, model, self.price)  # type: ignore[arg-type]

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        msgs = [dict(m) for m in messages]
        if self._is_async:
            reply = await self.fn(msgs, model)  # type: ignore[misc]
        else:
            reply = await run_blocking(self.fn, msgs, model)
        return _complete(reply, msgs, model, self.price)  # type: ignore[arg-type]


class ScriptedEngine:
    """An engine that returns ``responses`` one after another, whoever asks.

    Running out of responses is an :class:`EngineError`. ``calls`` records every
    request's messages, in order, for assertions.
    """

    provider = "scripted"

    def __init__(self, responses: Sequence[str | Completion], *, price: Price | None = None):
        self.responses = list(responses)
        self.price = price
        self.calls: list[list[Message]] = []
        self._lock = threading.Lock()

    def _next(self, messages: Sequence[Message], model: str) -> Completion:
        msgs = [dict(m) for m in messages]
        with self._lock:
            index = len(self.calls)
            self.calls.append(msgs)
            if index >= len(self.responses):
                raise EngineError(
                    f"ScriptedEngine ran out of responses after {len(self.responses)} calls",
                    provider=self.provider,
                    model=model,
                )
            reply = self.responses[index]
        return _complete(reply, msgs, model, self.price)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        return self._next(messages, model)

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        return self._next(messages, model)
