"""The state shared by every run of one recursion tree.

:class:`Tree` is the state shared by every run of one recursion tree: usage, the
concurrency limit, the budget, the completion cache and the event bus. Every engine call
of the tree (root turns, sub-calls, child runs' turns) goes through :meth:`Tree.complete`:
cache lookup, budget reservation, a concurrency slot for the call itself, settlement.

Concurrency and depth: the shared semaphore (``max_concurrency``) covers single engine
calls only, never a whole child run, so a child waiting for its own sub-calls holds no
slot. Child runs are limited apart, by one semaphore per depth (``max_concurrency`` live
children at each depth): a run at depth d waits only for slots of depth d + 1, whose
holders never wait for depth d, so no cycle, and no deadlock, can form.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass, field

from rlmagent.budget import BudgetLedger, UsageMeter, estimate_prompt, price_of
from rlmagent.cache import CompletionCache, cache_key, engine_identity
from rlmagent.engines.base import Engine, run_blocking
from rlmagent.engines.pricing import Price
from rlmagent.events import Event, EventBus
from rlmagent.settings import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_DEPTH
from rlmagent.types import Completion, Message


@dataclass
class Tree:
    """State shared by every run in one recursion tree (see the module docstring)."""

    loop: asyncio.AbstractEventLoop
    meter: UsageMeter
    semaphore: asyncio.Semaphore
    bus: EventBus | None
    ids: itertools.count[int] = field(default_factory=itertools.count)
    ledger: BudgetLedger | None = None
    cache: CompletionCache | None = None
    max_depth: int = DEFAULT_MAX_DEPTH
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    _child_slots: dict[int, asyncio.Semaphore] = field(default_factory=dict)
    _prices: dict[tuple[int, str], Price | None] = field(default_factory=dict)
    _memo: dict[str, Completion] = field(default_factory=dict)
    """Temperature-0 sub-call answers of this tree, by cache key (asked again: free)."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def publish(self, event: Event) -> None:
        if self.bus is not None:
            self.bus.publish(event)

    def can_recurse(self, depth: int) -> bool:
        """Whether a run at ``depth`` starts child RLMs (else rlm_query is a plain call)."""
        return depth + 1 < self.max_depth

    def child_slot(self, depth: int) -> asyncio.Semaphore:
        if depth not in self._child_slots:
            self._child_slots[depth] = asyncio.Semaphore(self.max_concurrency)
        return self._child_slots[depth]

    def price(self, engine: Engine, model: str) -> Price | None:
        key = (id(engine), model)
        if key not in self._prices:
            self._prices[key] = price_of(engine, model)
        return self._prices[key]

    async def complete(
        self,
        engine: Engine,
        messages: list[Message],
        *,
        model: str,
        temperature: float,
        max_tokens: int,
        meter: UsageMeter,
        final: bool = False,
        memo: bool = False,
    ) -> Completion:
        """One engine call: cache, budget (reserve then settle), a slot, usage.

        ``final`` is the root's final-answer request: it may use the budget's held-back
        room, with ``max_tokens`` cut to what is left. ``memo``: a temperature-0 call
        asked before in this tree is answered from memory (a cached call: no engine
        call, no budget), so a cell run again does not pay for its sub-calls twice.
        Raises ``BudgetExceeded``.
        """
        cache = self.cache
        remember = memo and temperature == 0
        stored = cache is not None and cache.accepts(temperature)
        key = None  # one key serves the memory and the cache (the same call, the same key)
        if remember or stored:
            key = cache_key(engine_identity(engine), model, messages, temperature, max_tokens)
        if remember and key is not None:
            remembered = self._memo.get(key)
            if remembered is not None:
                meter.record(remembered, model)
                return remembered
        if stored and cache is not None and key is not None:
            hit = await run_blocking(cache.get, key)
            if hit is not None:
                meter.record(hit, model)
                return hit
        ledger, price, reservation = self.ledger, None, None
        if ledger is not None:
            price = self.price(engine, model)
            reservation, max_tokens = ledger.reserve(
                estimate_prompt(messages), max_tokens, price, final=final
            )
        try:
            async with self.semaphore:
                completion: Completion = await engine.agenerate(
                    messages, model=model, temperature=temperature, max_tokens=max_tokens
                )
        except BaseException:
            if ledger is not None and reservation is not None:
                ledger.settle(reservation, None, price)
            raise
        if ledger is not None and reservation is not None:
            ledger.settle(reservation, completion, price)
        meter.record(completion, model)
        if remember and key is not None:
            self._memo[key] = dataclasses.replace(completion, cached=True)
        if stored and key is not None and cache is not None and not completion.cached:
            await run_blocking(cache.put, key, engine_identity(engine), completion)
        return completion
