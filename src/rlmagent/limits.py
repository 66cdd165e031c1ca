"""What a budget is, and the counters that enforce it (see :mod:`rlmagent.budget`).

:class:`Budget` is what a user asks for. A :class:`LedgerPool` holds the counts of one
budget: every reservation is checked and counted there, atomically. One run has its own
(:class:`LocalPool`); a batch of runs shares one through :class:`SharedBudget`, in this
process or, on Ray, in an actor that wraps a :class:`LocalPool`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlmagent.engines.pricing import Price
from rlmagent.errors import UsageError

MIN_FINAL_TOKENS = 16
"""The final-answer request is skipped when fewer completion tokens than this are left."""


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


@dataclass(frozen=True, slots=True)
class Spent:
    """What a tree has used so far (settled calls plus reservations in flight)."""

    calls: int
    tokens: int
    cost: float
    seconds: float


@dataclass(frozen=True, slots=True)
class Grant:
    """A pool's answer to a reservation: what was reserved, or the limit that refused it."""

    tokens: int = 0
    cost: float = 0.0
    max_tokens: int = 0
    limit: str | None = None
    why: str | None = None


@runtime_checkable
class LedgerPool(Protocol):
    """The counters behind one :class:`Budget`, shared by the ledgers that draw on it.

    A run's :class:`BudgetLedger` keeps its own pool (:class:`LocalPool`); a batch gives
    every job's ledger the same pool (through :class:`SharedBudget`), so the budget caps
    all jobs together. Each ledger is a *holder* with its own room kept for its final
    answer; every method is atomic. :class:`LocalPool` is the implementation; a batch on
    Ray uses an actor that wraps one (``rlmagent.batch.ledger``).
    """

    def hold(self, holder: str, calls: int, tokens: int, cost: float) -> None: ...

    def release(self, holder: str) -> None: ...

    def reserve(
        self, holder: str, prompt_tokens: int, max_tokens: int, price: Price | None, final: bool
    ) -> Grant: ...

    def settle(
        self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float, cached: bool
    ) -> None: ...

    def mark_exhausted(self, name: str) -> None: ...

    def exhausted(self) -> str | None: ...

    def spent(self) -> Spent: ...

    def elapsed(self) -> float: ...


class LocalPool:
    """A :class:`LedgerPool` in this process, under a lock (see the module docstring).

    The room held back for final answers is the sum over holders: an ordinary call must
    fit beside every holder's room (its own included), a final-answer call beside the
    others' room. With one holder this is the rule of one run.
    """

    def __init__(self, budget: Budget, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._calls = 0
        self._tokens = 0
        self._cost = 0.0
        self._holds: dict[str, tuple[int, int, float]] = {}
        self._held_calls = 0
        self._held_tokens = 0
        self._held_cost = 0.0
        self._exhausted: str | None = None

    def elapsed(self) -> float:
        return self._clock() - self.started

    def exhausted(self) -> str | None:
        return self._exhausted

    def mark_exhausted(self, name: str) -> None:
        with self._lock:
            if self._exhausted is None:
                self._exhausted = name

    def hold(self, holder: str, calls: int, tokens: int, cost: float) -> None:
        with self._lock:
            self._set_hold(holder, (calls, tokens, cost))

    def release(self, holder: str) -> None:
        with self._lock:
            self._set_hold(holder, (0, 0, 0.0))

    def _set_hold(self, holder: str, hold: tuple[int, int, float]) -> None:
        old = self._holds.pop(holder, (0, 0, 0.0))
        if any(hold):
            self._holds[holder] = hold
        self._held_calls += hold[0] - old[0]
        self._held_tokens += hold[1] - old[1]
        self._held_cost += hold[2] - old[2]

    def reserve(
        self, holder: str, prompt_tokens: int, max_tokens: int, price: Price | None, final: bool
    ) -> Grant:
        b = self.budget
        with self._lock:
            held = [self._held_calls, self._held_tokens, self._held_cost]
            if final:  # the final answer may use its own room, never the others'
                own = self._holds.get(holder, (0, 0, 0.0))
                held = [held[0] - own[0], held[1] - own[1], held[2] - own[2]]
            asked = max_tokens
            if final:
                max_tokens = self._final_room(prompt_tokens, max_tokens, price, held)
            tokens = prompt_tokens + max_tokens
            cost = price.cost(prompt_tokens, max_tokens) if price is not None else 0.0
            name, why = "", None
            if b.max_seconds is not None and self.elapsed() >= b.max_seconds:
                name, why = "seconds", f"max_seconds={b.max_seconds:g} reached"
            elif final and max_tokens < min(asked, MIN_FINAL_TOKENS):
                tight = self._final_room(prompt_tokens, asked, None, held) < min(
                    asked, MIN_FINAL_TOKENS
                )
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
                    f", {held[0]} kept for final answers)"
                    if held[0] > 1
                    else ", 1 kept for the final answer)"
                    if held[0]
                    else ")"
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
                    self._set_hold(holder, (0, 0, 0.0))
                return Grant(tokens=tokens, cost=cost, max_tokens=max_tokens)
            if self._exhausted is None:
                self._exhausted = name
            return Grant(limit=name, why=why)

    def _final_room(
        self, prompt_tokens: int, max_tokens: int, price: Price | None, held: list[Any]
    ) -> int:
        """``max_tokens`` cut so that the final request fits the whole budget (locked)."""
        b = self.budget
        room = max_tokens
        if b.max_tokens is not None:
            room = min(room, b.max_tokens - self._tokens - held[1] - prompt_tokens)
        if b.max_cost_usd is not None and price is not None and price.output > 0:
            dollars = b.max_cost_usd - self._cost - held[2] - price.cost(prompt_tokens, 0)
            room = min(room, int(dollars * 1_000_000 / price.output))
        return room

    def settle(
        self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float, cached: bool
    ) -> None:
        with self._lock:
            if cached:
                self._calls -= 1
            self._tokens += tokens - reserved_tokens
            self._cost += cost - reserved_cost

    def spent(self) -> Spent:
        with self._lock:
            return Spent(self._calls, self._tokens, self._cost, self.elapsed())


@dataclass(frozen=True, slots=True)
class SharedBudget(Budget):
    """A :class:`Budget` whose limits are counted in ``pool``, shared with other runs.

    Given to a run as its ``budget``, its ledger draws on ``pool`` as ``holder`` (the
    name of the room kept for this run's final answer; call ``pool.release(holder)``
    when the run is over). A batch gives one to each job, so the limits cap the jobs
    together. ``max_seconds`` counts from when the pool was made.
    """

    pool: LedgerPool | None = field(default=None, compare=False, repr=False)
    holder: str = "run"

    @classmethod
    def of(cls, budget: Budget, pool: LedgerPool, holder: str) -> SharedBudget:
        return cls(
            max_calls=budget.max_calls,
            max_tokens=budget.max_tokens,
            max_cost_usd=budget.max_cost_usd,
            max_seconds=budget.max_seconds,
            pool=pool,
            holder=holder,
        )
