"""Budgets: reserve then settle, shared by the whole tree, never overshot by a call."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest
from proctree import alive, sandbox_processes

from rlmagent import (
    Budget,
    BudgetExceeded,
    Completion,
    FunctionEngine,
    RLMAgent,
    ScriptedEngine,
    TokenUsage,
    UsageError,
)
from rlmagent.budget import BudgetLedger, price_of
from rlmagent.engines import EngineBase
from rlmagent.engines.pricing import Price

BATCH_300 = (
    "```repl\nr = llm_batch(['p%d' % i for i in range(300)])\nprint(sum(a == 'ok' for a in r))\n```"
)


class Counting:
    """A thread-safe sub-model that counts its calls (and may sleep to overlap them)."""

    def __init__(self, reply: str = "ok", sleep: float = 0.0, price=None) -> None:
        self.calls = 0
        self.reply = reply
        self.sleep = sleep
        self._lock = threading.Lock()
        self.engine = FunctionEngine(self, price=price)

    def __call__(self, messages, model):
        with self._lock:
            self.calls += 1
        if self.sleep:
            time.sleep(self.sleep)
        return self.reply


# -- the ledger ---------------------------------------------------------------------------


def test_budget_validates_its_limits():
    for bad in (
        {"max_calls": 0},
        {"max_tokens": -1},
        {"max_calls": 1.5},
        {"max_cost_usd": 0},
        {"max_seconds": "5"},
        {"max_calls": True},
    ):
        with pytest.raises(UsageError, match=r"Budget\.max_"):
            Budget(**bad)
    assert not Budget().limited and Budget(max_seconds=1).limited


def test_reservations_in_flight_count_and_settling_replaces_them():
    ledger = BudgetLedger(Budget(max_tokens=1000))
    first, allowed = ledger.reserve(100, 500, None)
    assert allowed == 500 and ledger.spent().tokens == 600
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(100, 500, None)  # 600 + 600 > 1000
    assert info.value.limit_name == "tokens" and info.value.limit == 1000
    ledger.settle(first, Completion("x", "m", usage=TokenUsage(90, 10)), None)
    assert ledger.spent().tokens == 100
    ledger.reserve(100, 500, None)
    assert ledger.exhausted == "tokens"


def test_failed_calls_count_and_cached_calls_are_free():
    ledger = BudgetLedger(Budget(max_calls=3))
    failed, _ = ledger.reserve(10, 10, None)
    ledger.settle(failed, None, None)
    cached, _ = ledger.reserve(10, 10, None)
    ledger.settle(cached, Completion("x", "m", cached=True), None)
    assert ledger.spent().calls == 1 and ledger.spent().tokens == 0


def test_threads_racing_for_the_last_calls_never_overshoot():
    ledger = BudgetLedger(Budget(max_calls=137))
    granted = []
    start = threading.Barrier(32)

    def worker():
        start.wait()
        for _ in range(50):
            with contextlib.suppress(BudgetExceeded):
                granted.append(ledger.reserve(1, 1, None)[0])

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 137 and ledger.spent().calls == 137


def test_final_reserve_is_kept_back_and_the_final_request_is_cut_to_fit():
    ledger = BudgetLedger(Budget(max_calls=2, max_tokens=1000))
    ledger.hold_for_final(100, 300, None)
    ledger.reserve(100, 300, None)
    with pytest.raises(BudgetExceeded, match="1 kept for the final answer"):
        ledger.reserve(10, 10, None)  # call 2 of 2 would leave no call for the answer
    reservation, max_tokens = ledger.reserve(200, 900, None, final=True)
    assert max_tokens == 1000 - 400 - 200  # cut to the tokens left
    assert reservation.tokens == 600


def test_price_of_understands_engines():
    assert price_of(FunctionEngine(lambda m, model: "x", price=(1, 2)), "m") == Price(1.0, 2.0)
    assert price_of(FunctionEngine(lambda m, model: "x"), "m") is None
    assert price_of(ScriptedEngine([], price=(3, 4)), "m") == Price(3.0, 4.0)


def test_price_of_asks_the_engine_protocol_and_nothing_else():
    class PerModel(EngineBase):
        provider = "per-model"
        prices = "not a price table"  # attributes beside the protocol are never read
        inner = ScriptedEngine([], price=(9, 9))

        def price(self, model: str) -> Price | None:
            return Price(1.0, 1.0) if model == "cheap" else None

    engine = PerModel()
    assert price_of(engine, "cheap") == Price(1.0, 1.0)
    assert price_of(engine, "other") is None
    assert price_of(EngineBase(), "m") is None  # the default: unknown
    priced = ScriptedEngine([], price=Price(1, 2, 0.5))  # a Price as well as a pair
    assert price_of(priced, "m") == Price(1.0, 2.0, 0.5)


# -- the agent ----------------------------------------------------------------------------


def test_hundreds_of_concurrent_sub_calls_never_make_one_call_too_many():
    sub = Counting(sleep=0.005)
    root = ScriptedEngine([BATCH_300, "FINAL(done)"])
    agent = RLMAgent(
        root, "m", sub_engine=sub.engine, max_concurrency=64, budget=Budget(max_calls=50)
    )
    result = agent.run("q", context="c")
    # root turn 1 + 48 sub-calls + the final answer = exactly 50 engine calls
    assert sub.calls == 48 and len(root.calls) == 2
    assert result.usage.calls == 50
    assert result.content == "done"
    assert result.stop_reason == "budget"
    assert result.budget_limit == "calls"
    assert result.budget["spent"]["calls"] == 50
    observation = result.trajectory[0].observation
    assert "48\n" in observation and "Budget left: 1 call." in observation
    failed = [c for c in result.trajectory[0].cells[0].sub_calls if c.error]
    assert len(failed) == 252 and all("max_calls=50" in c.error for c in failed)
    assert "budget is spent (calls limit reached)" in root.calls[1][-1]["content"]


def test_token_budget_holds_under_concurrency():
    sub = Counting(reply="w" * 160, sleep=0.002)  # 40 tokens an answer
    root = ScriptedEngine([BATCH_300, "FINAL(done)"])
    agent = RLMAgent(
        root,
        "m",
        max_tokens=200,
        sub_engine=sub.engine,
        sub_max_tokens=50,
        max_concurrency=100,
        budget=Budget(max_tokens=6000),
    )
    result = agent.run("q", context="c")
    assert result.usage.total_tokens <= 6000
    assert result.budget_limit == "tokens"
    assert 0 < sub.calls < 300 and result.content == "done"


def test_remaining_budget_is_shown_in_each_observation_before_the_question():
    root = ScriptedEngine(["```repl\nprint(1)\n```", "```repl\nprint(2)\n```", "FINAL(x)"])
    result = RLMAgent(root, "m", budget=Budget(max_calls=10, max_tokens=100_000)).run(
        "q", context="c"
    )
    first, second = (s.observation for s in result.trajectory[:2])
    status, rest = first.split("Budget left: 9 calls, ", 1)
    assert status.startswith("[output]\n1") and "Question: q" in rest
    assert first.endswith("answer with FINAL(answer).")  # what to do next comes last
    assert "Budget left: 8 calls" in second
    assert result.stop_reason == "final"


def test_budget_spans_child_runs_and_the_root_still_answers():
    child_code = "```repl\nprint(llm_batch(['a'] * 20))\n```"
    sub = Counting()
    child = RLMAgent(
        ScriptedEngine([child_code] * 4 + ["FINAL(c)"] * 4), "child", sub_engine=sub.engine
    )
    root = ScriptedEngine(
        [
            "```repl\nprint(rlm_batch([['x', 'one'], ['y', 'two']]))\n```",
            "FINAL(root answer)",
        ]
    )
    result = RLMAgent(
        root, "root", max_depth=2, child_agent=child, budget=Budget(max_calls=12)
    ).run("q", context="c")
    assert result.content == "root answer"
    assert result.usage.calls == 12  # never one more, though children wanted 40 sub-calls
    assert result.stop_reason == "budget"
    output = result.trajectory[0].cells[0].result.output
    assert "BudgetExceeded" in output


def test_no_final_answer_raises_budget_exceeded_with_the_partial():
    # turn 1 fits; its 2,000-token output leaves no room for a final request on turn 2
    root = ScriptedEngine(["FINAL(early guess)\n```repl\nprint('x' * 8000)\n```", "FINAL(x)"])
    with pytest.raises(BudgetExceeded) as info:
        RLMAgent(root, "m", max_tokens=300, budget=Budget(max_tokens=2500)).run("q", context="c")
    error = info.value
    assert error.limit_name == "tokens" and error.limit == 2500
    assert error.partial_answer == "early guess"
    assert error.partial is not None and error.partial.turns == 1
    assert error.partial.stop_reason == "budget"
    assert "without a final answer (last FINAL value: 'early guess')" in str(error)
    assert len(root.calls) == 1


def test_one_call_budget_gives_a_one_shot_answer():
    root = ScriptedEngine(["FINAL(42)"])
    result = RLMAgent(root, "m", budget=Budget(max_calls=1)).run("q", context="c")
    assert result.content == "42" and result.usage.calls == 1
    assert "budget is spent" in root.calls[0][-1]["content"]


def test_cost_budget_needs_known_prices_before_any_call():
    root = ScriptedEngine(["FINAL(1)"], price=(1.0, 1.0))
    with pytest.raises(UsageError, match="no price for model 'small'"):
        RLMAgent(
            root,
            "m",
            sub_engine=FunctionEngine(lambda m, model: "x"),
            sub_model="small",
            budget=Budget(max_cost_usd=1.0),
        ).run("q", context="c")
    assert root.calls == []


def test_cost_budget_stops_priced_sub_calls():
    sub = Counting(price=(1000.0, 1000.0))  # $0.001 a token
    root = ScriptedEngine([BATCH_300, "FINAL(done)"], price=(1.0, 1.0))
    result = RLMAgent(
        root, "m", sub_engine=sub.engine, sub_max_tokens=10, budget=Budget(max_cost_usd=0.5)
    ).run("q", context="c")
    assert result.usage.cost_usd <= 0.5
    assert result.budget_limit == "cost"
    assert 0 < sub.calls < 300 and result.content == "done"


def test_time_budget_cancels_a_sleeping_cell_and_raises():
    root = ScriptedEngine(
        [
            "FINAL(so far)\n```repl\nimport time\ntime.sleep(60)\n```",
            "FINAL(never)",
        ]
    )
    seen: list[int] = []
    started = time.monotonic()
    agent = RLMAgent(root, "m", budget=Budget(max_seconds=1.5))
    threading.Timer(0.8, lambda: seen.extend(sandbox_processes(os.getpid()))).start()
    with pytest.raises(BudgetExceeded) as info:
        agent.run("q", context="c")
    assert time.monotonic() - started < 30
    assert info.value.limit_name == "seconds" and info.value.partial_answer == "so far"
    assert info.value.partial.budget_limit == "seconds"
    assert seen and alive(seen) == []


def test_a_status_line_goes_before_the_question_or_first():
    from rlmagent.prompts import with_status

    text = "[output]\nQuestion: q in the output\n\nQuestion: q\nContinue."
    assert with_status(text, "Budget left: 3 calls.", "q") == (
        "[output]\nQuestion: q in the output\n\nBudget left: 3 calls.\n\nQuestion: q\nContinue."
    )
    assert with_status("Say it again.", "Budget left: 1 call.", "q") == (
        "Budget left: 1 call.\n\nSay it again."
    )
