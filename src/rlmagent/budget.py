"""Usage accounting and hard budgets shared by a whole run tree (root, sub-calls, child RLMs).

:class:`Budget` is what a user asks for; :class:`BudgetLedger` enforces it for one tree.
Every engine call first *reserves* its worst case under a lock (one call, the estimated
prompt tokens plus ``max_tokens``, and what that would cost), and is refused with
:class:`~rlmagent.errors.BudgetExceeded` when the reservation would not fit. After the
call the reservation is *settled* with what the call really used. Reservations in flight
count as spent, so hundreds of concurrent sub-calls can never make one call too many.

What is counted:

- ``calls``: every request sent to an engine, failed or cancelled ones too. Answers
  served from the completion cache are free: they count in
  :attr:`~rlmagent.types.Usage.cached_calls`, never in the budget.
- ``tokens`` and ``cost``: what engines report. A call is allowed only if its worst case
  fits; the prompt part of that worst case is estimated (4 characters a token), so an
  engine whose tokenizer counts more than that can overshoot by the difference.
- ``seconds``: wall-clock time since the run started; at the limit the whole tree is
  cancelled (no final answer is possible once time is up).

The counting itself lives in a :class:`~rlmagent.limits.LedgerPool` (each ledger has its
own, or shares one through :class:`~rlmagent.limits.SharedBudget`: a batch's jobs).

The root run keeps back room for one final answer: one call, and the tokens (and cost)
of its current prompt plus its ``max_tokens``. Sub-calls, child runs and ordinary root
turns may not use that room; the final-answer request may (its ``max_tokens`` is cut
to what is left).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlmagent.engines.base import Engine, estimate_tokens
from rlmagent.engines.pricing import Price
from rlmagent.errors import BudgetExceeded
from rlmagent.limits import (
    MIN_FINAL_TOKENS,
    Budget,
    Grant,
    LedgerPool,
    LocalPool,
    SharedBudget,
    Spent,
)
from rlmagent.types import Completion, Message, ModelUsage, Usage

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "MIN_FINAL_TOKENS",
    "Budget",
    "BudgetLedger",
    "Grant",
    "LedgerPool",
    "LocalPool",
    "Reservation",
    "SharedBudget",
    "Spent",
    "UsageMeter",
    "estimate_prompt",
    "price_of",
]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens added per message to a prompt estimate (role markers of chat templates)."""


class UsageMeter:
    """Thread-safe running totals of completions, per model.

    Each run of a tree has its own meter whose ``parent`` is the meter of the run that
    started it, so a record counts in the run and in every ancestor: the root's meter
    holds the whole tree.
    """

    def __init__(self, parent: UsageMeter | None = None) -> None:
        self._by_model: dict[str, ModelUsage] = {}
        self._lock = threading.Lock()
        self.parent = parent

    def record(self, completion: Completion, model: str | None = None) -> None:
        key = model or completion.model
        with self._lock:
            self._by_model[key] = self._by_model.get(key, ModelUsage()).add(completion)
        if self.parent is not None:
            self.parent.record(completion, model)

    def snapshot(self) -> Usage:
        with self._lock:
            return Usage.from_models(dict(self._by_model))


def price_of(engine: Engine, model: str) -> Price | None:
    """The price an engine charges for ``model``, or None when it is unknown."""
    return engine.price(model)


def estimate_prompt(messages: list[Message]) -> int:
    """Estimated prompt tokens of ``messages`` (4 characters a token, plus overhead)."""
    return sum(estimate_tokens(m.get("content", "")) + MESSAGE_OVERHEAD_TOKENS for m in messages)


@dataclass(slots=True)
class Reservation:
    """What one call holds until it is settled."""

    tokens: int
    cost: float
    settled: bool = False


class BudgetLedger:
    """Enforces one :class:`Budget` over a run tree (see the module docstring).

    The counting lives in a :class:`LedgerPool`: the ledger's own, or, for a
    :class:`SharedBudget`, the pool it names.
    """

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        pool = budget.pool if isinstance(budget, SharedBudget) else None
        self.pool: LedgerPool = pool if pool is not None else LocalPool(budget, clock=clock)
        self.holder = budget.holder if isinstance(budget, SharedBudget) else "run"

    @property
    def exhausted(self) -> str | None:
        """The first limit that refused a call, or None."""
        return self.pool.exhausted()

    # -- the final-answer reserve -------------------------------------------------------

    def hold_for_final(self, prompt_tokens: int, max_tokens: int, price: Price | None) -> None:
        """Keep one call of ``prompt_tokens + max_tokens`` back for the root's final answer."""
        cost = price.cost(prompt_tokens, max_tokens) if price is not None else 0.0
        self.pool.hold(self.holder, 1, prompt_tokens + max_tokens, cost)

    # -- reserve and settle -------------------------------------------------------------

    def elapsed(self) -> float:
        return self.pool.elapsed()

    def mark_exhausted(self, name: str) -> None:
        """Remember ``name`` as the limit that stopped the tree (the first one wins)."""
        self.pool.mark_exhausted(name)

    def refuse(self, name: str, why: str) -> BudgetExceeded:
        """The error for a refused call (and remember the first limit that refused one)."""
        self.mark_exhausted(name)
        return BudgetExceeded(
            f"the run's budget is spent: {why}; no more model calls can be made",
            limit_name=name,
            spent=self.spent_of(name),
            limit=self.limit_of(name),
        )

    def reserve(
        self, prompt_tokens: int, max_tokens: int, price: Price | None, *, final: bool = False
    ) -> tuple[Reservation, int]:
        """Reserve one call's worst case, or raise ``BudgetExceeded``.

        Returns the reservation and the ``max_tokens`` the call may use: as asked, except
        for ``final`` (the root's final-answer request), which may use the held-back room
        and gets ``max_tokens`` cut to what is left.
        """
        grant = self.pool.reserve(self.holder, prompt_tokens, max_tokens, price, final)
        if grant.limit is not None:
            raise self.refuse(grant.limit, grant.why or f"{grant.limit} limit reached")
        return Reservation(tokens=grant.tokens, cost=grant.cost), grant.max_tokens

    def settle(
        self, reservation: Reservation, completion: Completion | None, price: Price | None
    ) -> None:
        """Replace a reservation by what the call used (None: it failed; the call counts,
        its tokens do not). A cached completion is free: the reservation is given back."""
        if reservation.settled:
            return
        tokens, cost = 0, 0.0
        if completion is not None and not completion.cached:
            usage = completion.usage
            tokens = usage.prompt_tokens + usage.completion_tokens
            if completion.cost_usd is not None:
                cost = completion.cost_usd
            elif price is not None:
                cost = price.cost(usage.prompt_tokens, usage.completion_tokens)
        reservation.settled = True
        cached = completion is not None and completion.cached
        self.pool.settle(reservation.tokens, reservation.cost, tokens, cost, cached)

    # -- reporting ----------------------------------------------------------------------

    def spent(self) -> Spent:
        return self.pool.spent()

    def limit_of(self, name: str) -> Any:
        b = self.budget
        return {
            "calls": b.max_calls,
            "tokens": b.max_tokens,
            "cost": b.max_cost_usd,
            "seconds": b.max_seconds,
        }[name]

    def spent_of(self, name: str) -> Any:
        s = self.spent()
        return {
            "calls": s.calls,
            "tokens": s.tokens,
            "cost": round(s.cost, 6),
            "seconds": round(s.seconds, 3),
        }[name]

    def remaining_line(self) -> str:
        """``Budget left: 12 calls, 3,400 tokens, $0.0210, 41 s.`` (limited parts only)."""
        b, s = self.budget, self.spent()
        parts = []
        if b.max_calls is not None:
            left = max(0, b.max_calls - s.calls)
            parts.append(f"{left} call" + ("" if left == 1 else "s"))
        if b.max_tokens is not None:
            parts.append(f"{max(0, b.max_tokens - s.tokens):,} tokens")
        if b.max_cost_usd is not None:
            parts.append(f"${max(0.0, b.max_cost_usd - s.cost):.4f}")
        if b.max_seconds is not None:
            parts.append(f"{max(0.0, b.max_seconds - s.seconds):.0f} s")
        return "Budget left: " + ", ".join(parts) + "."

    def summary(self) -> dict[str, Any]:
        """JSON-able limits and what was spent, for result metadata."""
        s = self.spent()
        return {
            "limits": {
                "calls": self.budget.max_calls,
                "tokens": self.budget.max_tokens,
                "cost_usd": self.budget.max_cost_usd,
                "seconds": self.budget.max_seconds,
            },
            "spent": {
                "calls": s.calls,
                "tokens": s.tokens,
                "cost_usd": round(s.cost, 6),
                "seconds": round(s.seconds, 3),
            },
            "exhausted": self.exhausted,
        }
