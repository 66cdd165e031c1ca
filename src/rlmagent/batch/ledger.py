"""The batch-wide budget on Ray: one actor holds the counters, every job's ledger asks it.

:class:`LedgerActor` wraps a :class:`~rlmagent.limits.LocalPool`; made a Ray actor (one
per batch, ``num_cpus=0``, default concurrency 1) its methods run one at a time, so each
reservation is checked and counted atomically for the whole cluster: the rule of one run
(reserve the worst case, settle with what was used, room kept for final answers), over
every job on every node. :class:`RayPool` is the :class:`~rlmagent.limits.LedgerPool`
a job's ledger uses: a reservation is one ``ray.get`` of one actor call (about 0.4 ms
on loopback); holds and settlements are sent without waiting. The actor is never
restarted: a lost ledger would forget what was spent, so jobs that cannot reach it fail
instead of overshooting the budget.

Ray is imported only when a :class:`RayPool` is used or the actor is made.
"""

from __future__ import annotations

from typing import Any

from rlmagent.engines.pricing import Price
from rlmagent.limits import Budget, Grant, LocalPool, Spent


class LedgerActor:
    """The counters of one batch budget (the body of the Ray actor)."""

    def __init__(self, budget: Budget) -> None:
        self._pool = LocalPool(budget)

    def hold(self, holder: str, calls: int, tokens: int, cost: float) -> None:
        self._pool.hold(holder, calls, tokens, cost)

    def release(self, holder: str) -> None:
        self._pool.release(holder)

    def reserve(
        self, holder: str, prompt_tokens: int, max_tokens: int, price: Price | None, final: bool
    ) -> Grant:
        return self._pool.reserve(holder, prompt_tokens, max_tokens, price, final)

    def settle(
        self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float, cached: bool
    ) -> None:
        self._pool.settle(reserved_tokens, reserved_cost, tokens, cost, cached)

    def mark_exhausted(self, name: str) -> None:
        self._pool.mark_exhausted(name)

    def exhausted(self) -> str | None:
        return self._pool.exhausted()

    def spent(self) -> Spent:
        return self._pool.spent()

    def elapsed(self) -> float:
        return self._pool.elapsed()


def start_ledger(budget: Budget) -> Any:
    """A new ledger actor for ``budget`` on the connected Ray cluster (its handle)."""
    import ray

    actor_class = ray.remote(num_cpus=0, max_restarts=0)(LedgerActor)
    return actor_class.remote(budget)


class RayPool:
    """A :class:`~rlmagent.limits.LedgerPool` whose counters live in a ledger actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def _call(self, name: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(self.actor, name).remote(*args))

    def _send(self, name: str, *args: Any) -> None:
        """A call whose answer nobody waits for: Ray runs one caller's calls to an actor
        in the order they were sent, so this caller's next reservation sees it."""
        getattr(self.actor, name).remote(*args)

    def hold(self, holder: str, calls: int, tokens: int, cost: float) -> None:
        self._send("hold", holder, calls, tokens, cost)

    def release(self, holder: str) -> None:
        self._send("release", holder)

    def reserve(
        self, holder: str, prompt_tokens: int, max_tokens: int, price: Price | None, final: bool
    ) -> Grant:
        grant: Grant = self._call("reserve", holder, prompt_tokens, max_tokens, price, final)
        return grant

    def settle(
        self, reserved_tokens: int, reserved_cost: float, tokens: int, cost: float, cached: bool
    ) -> None:
        self._send("settle", reserved_tokens, reserved_cost, tokens, cost, cached)

    def mark_exhausted(self, name: str) -> None:
        self._send("mark_exhausted", name)

    def exhausted(self) -> str | None:
        found: str | None = self._call("exhausted")
        return found

    def spent(self) -> Spent:
        spent: Spent = self._call("spent")
        return spent

    def elapsed(self) -> float:
        return float(self._call("elapsed"))
