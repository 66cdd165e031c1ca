"""Public test doubles: :class:`ScriptedEngine` and :class:`FunctionEngine`.

Both are real engines as far as the agent is concerned; they are how the loop's logic
is tested without a model, and how users write deterministic tests of their own code.
Token counts are estimated (4 characters a token); cost is None unless a price is given
(``price=(input, output)`` USD per million tokens, or a
:class:`~rlmagent.engines.pricing.Price`); the context window is unknown unless
``context_window=`` says it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from rlmagent.engines.base import EngineBase, estimate_tokens, run_blocking
from rlmagent.engines.pricing import Price, PriceLike, as_price
from rlmagent.errors import EngineError, UsageError
from rlmagent.types import Completion, Message, TokenUsage


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
    cost = None if price is None else price.cost(usage.prompt_tokens, usage.completion_tokens)
    return Completion(content=reply, model=model, usage=usage, cost_usd=cost)


class _Double(EngineBase):
    """What both test doubles share: a fixed price and context window for every model."""

    def __init__(self, price: PriceLike | None, context_window: int | None) -> None:
        if context_window is not None and (
            not isinstance(context_window, int)
            or isinstance(context_window, bool)
            or context_window < 1
        ):
            raise UsageError(
                f"context_window must be a positive int (tokens) or None, got {context_window!r}"
            )
        self._price = None if price is None else as_price(price)
        self._context_window = context_window

    def price(self, model: str) -> Price | None:
        return self._price

    def context_window(self, model: str) -> int | None:
        return self._context_window


class FunctionEngine(_Double):
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
        price: PriceLike | None = None,
        context_window: int | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"FunctionEngine needs a callable, got {type(fn).__name__}")
        super().__init__(price, context_window)
        self.fn = fn
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
        return _complete(self.fn(msgs, model), msgs, model, self._price)  # type: ignore[arg-type]

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
        return _complete(reply, msgs, model, self._price)  # type: ignore[arg-type]


class ScriptedEngine(_Double):
    """An engine that returns ``responses`` one after another, whoever asks.

    Running out of responses is an :class:`EngineError`. ``calls`` records every
    request's messages, in order, for assertions.
    """

    provider = "scripted"

    def __init__(
        self,
        responses: Sequence[str | Completion],
        *,
        price: PriceLike | None = None,
        context_window: int | None = None,
    ) -> None:
        super().__init__(price, context_window)
        self.responses = list(responses)
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
        return _complete(reply, msgs, model, self._price)

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
