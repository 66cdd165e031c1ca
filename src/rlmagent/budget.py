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
from rlmagent.errors import BudgetExceeded, UsageError
from rlmagent.types import Completion, Message, ModelUsage, Usage

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens added per message to a prompt estimate (role markers of chat templates)."""

MIN_FINAL_TOKENS = 16
"""The final-answer request is skipped when fewer completion tokens than this are left."""


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


@dataclass(frozen=True, slots=True)
class Budget:
    """Hard limits for one run, shared by every call in its recursion tree.

    ``max_calls`` engine requests (root turns, sub-calls, child runs' calls),
    ``max_tokens`` prompt plus completion tokens, ``max_cost_usd`` dollars (every engine
    used must have a known price) and ``max_seconds`` of wall-clock time. None means no
    limit. See the module docstring for what counts and how the final answer is kept.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise UsageError(f"Budget.{name} must be a positive int or None, got {value!r}")
        for name in ("max_cost_usd", "max_seconds"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool) or value <= 0
            ):
                raise UsageError(f"Budget.{name} must be a positive number or None, got {value!r}")

    @property
    def limited(self) -> bool:
        """True when any limit is set."""
        return any(
            v is not None
            for v in (self.max_calls, self.max_tokens, self.max_cost_usd, self.max_seconds)
        )


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


@dataclass(frozen=True, slots=True)
class Spent:
    """What a tree has used so far (settled calls plus reservations in flight)."""

    calls: int
    tokens: int
    cost: float
    seconds: float


class BudgetLedger:
    """Enforces one :class:`Budget` over a run tree (see the module docstring)."""

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._calls = 0
        self._tokens = 0
        self._cost = 0.0
        self._held_calls = 0
        self._held_tokens = 0
        self._held_cost = 0.0
        self.exhausted: str | None = None
        """The first limit that refused a call, or None."""

    # -- the final-answer reserve -------------------------------------------------------

    def hold_for_final(self, prompt_tokens: int, max_tokens: int, price: Price | None) -> None:
        """Keep one call of ``prompt_tokens + max_tokens`` back for the root's final answer."""
        cost = price.cost(prompt_tokens, max_tokens) if price is not None else 0.0
        with self._lock:
            self._held_calls = 1
            self._held_tokens = prompt_tokens + max_tokens
            self._held_cost = cost

    # -- reserve and settle -------------------------------------------------------------

    def elapsed(self) -> float:
        return self._clock() - self.started

    def mark_exhausted(self, name: str) -> None:
        """Remember ``name`` as the limit that stopped the tree (the first one wins)."""
        with self._lock:
            if self.exhausted is None:
                self.exhausted = name

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
        b = self.budget
        with self._lock:
            held = (0, 0, 0.0) if final else (self._held_calls, self._held_tokens, self._held_cost)
            asked = max_tokens
            if final:
                max_tokens = self._final_room(prompt_tokens, max_tokens, price)
            tokens = prompt_tokens + max_tokens
            cost = price.cost(prompt_tokens, max_tokens) if price is not None else 0.0
            name, why = "", None
            if b.max_seconds is not None and self.elapsed() >= b.max_seconds:
                name, why = "seconds", f"max_seconds={b.max_seconds:g} reached"
            elif final and max_tokens < min(asked, MIN_FINAL_TOKENS):
                tight = self._final_room(prompt_tokens, asked, None) < min(asked, MIN_FINAL_TOKENS)
                if b.max_tokens is not None and tight:
                    name = "tokens"
                    why = (
                        f"max_tokens={b.max_tokens:,} leaves too little for a final answer "
                        f"({self._tokens:,} used or reserved; its prompt needs about "
                        f"{prompt_tokens:,})"
                    )
                else:
                    name = "cost"
                    why = (
                        f"max_cost_usd={b.max_cost_usd:g} leaves too little for a final "
                        f"answer (${self._cost:.4f} used or reserved)"
                    )
            elif b.max_calls is not None and self._calls + 1 + held[0] > b.max_calls:
                name = "calls"
                why = f"max_calls={b.max_calls} reached ({self._calls} calls made" + (
                    ", 1 kept for the final answer)" if held[0] else ")"
                )
            elif b.max_tokens is not None and self._tokens + tokens + held[1] > b.max_tokens:
                name = "tokens"
                why = (
                    f"max_tokens={b.max_tokens:,} reached ({self._tokens:,} used or reserved"
                    + (f", {held[1]:,} kept for the final answer" if held[1] else "")
                    + f"; this call could need {tokens:,})"
                )
            elif b.max_cost_usd is not None and self._cost + cost + held[2] > b.max_cost_usd:
                name = "cost"
                why = (
                    f"max_cost_usd={b.max_cost_usd:g} reached (${self._cost:.4f} used or "
                    f"reserved; this call could cost ${cost:.4f})"
                )
            if why is None:
                self._calls += 1
                self._tokens += tokens
                self._cost += cost
                if final:
                    self._held_calls, self._held_tokens, self._held_cost = 0, 0, 0.0
                return Reservation(tokens=tokens, cost=cost), max_tokens
        raise self.refuse(name, why)

    def _final_room(self, prompt_tokens: int, max_tokens: int, price: Price | None) -> int:
        """``max_tokens`` cut so that the final request fits the whole budget (locked)."""
        b = self.budget
        room = max_tokens
        if b.max_tokens is not None:
            room = min(room, b.max_tokens - self._tokens - prompt_tokens)
        if b.max_cost_usd is not None and price is not None and price.output > 0:
            dollars = b.max_cost_usd - self._cost - price.cost(prompt_tokens, 0)
            room = min(room, int(dollars * 1_000_000 / price.output))
        return room

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
        with self._lock:
            reservation.settled = True
            if completion is not None and completion.cached:
                self._calls -= 1
            self._tokens += tokens - reservation.tokens
            self._cost += cost - reservation.cost

    # -- reporting ----------------------------------------------------------------------

    def spent(self) -> Spent:
        with self._lock:
            return Spent(self._calls, self._tokens, self._cost, self.elapsed())

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
