"""A budget shared by several runs' ledgers: one pool, the rule of one run over all."""

from __future__ import annotations

import threading

import pytest

from rlmagent.budget import Budget, BudgetLedger, LocalPool, SharedBudget
from rlmagent.errors import BudgetExceeded
from rlmagent.types import Completion, TokenUsage


def ledgers(budget: Budget, n: int) -> tuple[LocalPool, list[BudgetLedger]]:
    pool = LocalPool(budget)
    return pool, [BudgetLedger(SharedBudget.of(budget, pool, f"job{i}")) for i in range(n)]


def test_ledgers_on_one_pool_count_together() -> None:
    pool, (a, b) = ledgers(Budget(max_calls=3), 2)
    a.reserve(10, 10, None)
    b.reserve(10, 10, None)
    a.reserve(10, 10, None)
    with pytest.raises(BudgetExceeded) as caught:
        b.reserve(10, 10, None)
    assert caught.value.limit_name == "calls"
    assert pool.spent().calls == 3
    assert a.exhausted == b.exhausted == "calls"  # every job sees the batch's limit


def test_each_holder_keeps_room_for_its_own_final_answer() -> None:
    pool, (a, b) = ledgers(Budget(max_calls=4), 2)
    a.hold_for_final(10, 10, None)
    b.hold_for_final(10, 10, None)
    a.reserve(10, 10, None)
    b.reserve(10, 10, None)  # 2 used + 2 held = 4 of 4
    with pytest.raises(BudgetExceeded) as caught:
        a.reserve(10, 10, None)  # would eat one of the two final answers
    assert "2 kept for final answers" in str(caught.value)
    a.reserve(10, 10, None, final=True)  # a's own room
    b.reserve(10, 10, None, final=True)  # b's own room
    assert pool.spent().calls == 4
    with pytest.raises(BudgetExceeded):
        a.reserve(10, 10, None, final=True)  # its room is used: nothing is left
    assert pool.spent().calls == 4


def test_released_room_returns_to_the_pool() -> None:
    pool, (a, b) = ledgers(Budget(max_calls=2), 2)
    a.hold_for_final(10, 10, None)
    b.reserve(10, 10, None)  # 1 used + 1 held by a
    with pytest.raises(BudgetExceeded):
        b.reserve(10, 10, None)
    pool.release("job0")  # a's run ended without using its room
    b.reserve(10, 10, None)
    assert pool.spent().calls == 2


def test_a_shared_budget_is_still_a_budget() -> None:
    pool = LocalPool(Budget(max_calls=1))
    shared = SharedBudget.of(Budget(max_calls=1, max_seconds=5), pool, "x")
    assert isinstance(shared, Budget) and shared.limited
    assert shared == SharedBudget.of(Budget(max_calls=1, max_seconds=5), LocalPool(Budget()), "x")
    assert "pool" not in repr(shared)


def test_one_holder_is_the_rule_of_one_run() -> None:
    """The same sequence on a plain ledger and on a one-holder pool ends the same."""
    budget = Budget(max_calls=5, max_tokens=400)
    plain = BudgetLedger(budget)
    _, (shared,) = ledgers(budget, 1)
    outcomes = []
    for ledger in (plain, shared):
        seen = []
        ledger.hold_for_final(50, 50, None)
        for _ in range(6):
            try:
                r, _m = ledger.reserve(40, 40, None)
                done = Completion(content="x", model="m", usage=TokenUsage(30, 10))
                ledger.settle(r, done, None)
                seen.append("ok")
            except BudgetExceeded as exc:
                seen.append(exc.limit_name)
        r, cut = ledger.reserve(50, 50, None, final=True)
        seen.append(cut)
        outcomes.append((seen, ledger.spent().calls, ledger.spent().tokens))
    assert outcomes[0] == outcomes[1]


def test_threads_of_many_holders_never_overshoot() -> None:
    pool, group = ledgers(Budget(max_calls=101), 8)
    made: list[int] = []
    lock = threading.Lock()

    def work(ledger: BudgetLedger) -> None:
        ledger.hold_for_final(5, 5, None)
        for _ in range(40):
            try:
                ledger.reserve(5, 5, None)
            except BudgetExceeded:
                break
            with lock:
                made.append(1)
        try:
            ledger.reserve(5, 5, None, final=True)
            with lock:
                made.append(1)
        except BudgetExceeded:
            pass

    threads = [threading.Thread(target=work, args=(ledger,)) for ledger in group]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == pool.spent().calls <= 101
    assert len(made) == 101  # every holder still got its final answer in
