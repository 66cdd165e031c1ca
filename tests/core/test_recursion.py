"""Recursion: rlm_query / rlm_batch start child RLMs below max_depth, over the real sandbox."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter

import pytest

from rlmagent import EventBus, FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.events import Event, RunStarted, SubCallEnded
from rlmagent.trace.model import Trajectory

SPLIT_AND_SUM = """```repl
n = len(context)
parts = [context[i * n // FANOUT:(i + 1) * n // FANOUT] for i in range(FANOUT)]
answers = rlm_batch([["Sum these numbers.", p] for p in parts])
FINAL(sum(int(a) for a in answers))
```"""


def summing_model(fanout: int, seen: list[str] | None = None):
    """A model that splits its list `context` into `fanout` parts, one rlm_batch item each.

    A plain call (one message: rlm_query at the depth limit) gets the prompt followed by
    the JSON of its context, and answers with the sum.
    """
    lock = threading.Lock()

    def fn(messages, model):
        if len(messages) == 1:
            prompt = messages[0]["content"]
            return str(sum(json.loads(prompt.split("\n\n", 1)[1])))
        if seen is not None:
            with lock:
                seen.append(messages[0]["content"])
        return SPLIT_AND_SUM.replace("FANOUT", str(fanout))

    return fn


def record(bus: EventBus) -> list[Event]:
    events: list[Event] = []
    bus.subscribe(events.append)
    return events


@pytest.mark.parametrize(
    ("depth", "runs_per_depth", "plain_calls"),
    [
        (2, {0: 1, 1: 2}, 4),
        (3, {0: 1, 1: 2, 2: 4}, 8),
    ],
)
def test_depth_builds_a_tree_of_child_runs(depth, runs_per_depth, plain_calls):
    bus = EventBus()
    events = record(bus)
    numbers = list(range(1, 101))
    result = RLMAgent(FunctionEngine(summing_model(2)), "m", max_depth=depth, bus=bus).run(
        "Sum the numbers.", context=numbers
    )
    assert result.content == str(sum(numbers))
    trajectory = Trajectory.from_events(events)
    assert Counter(r.depth for r in trajectory.runs) == runs_per_depth
    by_id = {r.run_id: r for r in trajectory.runs}
    for run in trajectory.runs:
        if run.parent_id is None:
            continue
        parents = [
            r for r in trajectory.runs for t in r.sub_calls() if t.call.call_id == run.parent_id
        ]
        assert len(parents) == 1 and parents[0].depth == run.depth - 1
        [call] = [t for t in parents[0].sub_calls() if t.call.call_id == run.parent_id]
        assert call.child_run_id == run.run_id == call.call.child_run_id
        assert call.call.answer == by_id[run.run_id].answer
    leaves = [t for t in trajectory.sub_calls() if t.child_run_id is None]
    assert len(leaves) == plain_calls and {t.call.depth for t in leaves} == {depth}
    # every completion counts once in the root's usage: one per run plus the plain calls
    assert result.usage.calls == sum(runs_per_depth.values()) + plain_calls


def test_child_usage_nests_under_the_cell_that_started_it():
    result = RLMAgent(FunctionEngine(summing_model(2)), "m", max_depth=3).run(
        "Sum.", context=list(range(40))
    )
    [cell] = result.trajectory[0].cells
    assert len(cell.sub_calls) == 2
    for call in cell.sub_calls:
        assert call.child_run_id is not None and call.turns == 1 and call.depth == 1
        # a depth-1 child: its own root call plus a depth-2 child (1 call + 2 plain calls)
        assert call.usage.prompt_tokens > 0
    child_tokens = sum(c.usage.prompt_tokens + c.usage.completion_tokens for c in cell.sub_calls)
    root_tokens = result.trajectory[0].usage.total_tokens
    assert child_tokens + root_tokens == result.usage.total_tokens


def test_depth_three_with_two_slots_does_not_deadlock():
    """Fan-out 4 at every level, max_concurrency=2: 21 runs, 64 plain calls."""

    async def main():
        agent = RLMAgent(FunctionEngine(summing_model(4)), "m", max_depth=3, max_concurrency=2)
        return await asyncio.wait_for(agent.arun("Sum.", context=list(range(256))), 120)

    result = asyncio.run(main())
    assert result.content == str(sum(range(256)))
    assert result.usage.calls == 1 + 4 + 16 + 64


def test_system_prompt_says_which_rlm_query_applies():
    seen: list[str] = []
    RLMAgent(FunctionEngine(summing_model(2, seen)), "m", max_depth=2).run(
        "Sum.", context=[1, 2, 3, 4]
    )
    root, *children = seen
    assert "start a child RLM" in root
    assert children and all("at this depth, one plain sub-model call" in c for c in children)
    assert all("start a child RLM" not in c for c in children)
    classic = ScriptedEngine(["```repl\nFINAL(1)\n```"])
    RLMAgent(classic, "m").run("q", context="c")
    assert "rlm_query" not in classic.calls[0][0]["content"]


def test_rlm_query_at_the_limit_is_a_plain_call_with_the_context():
    prompts = []

    def sub(messages, model):
        prompts.append(messages[0]["content"])
        return "plain"

    code = (
        "print(rlm_query('Q1', context='some text'))\n"
        "print(rlm_query('Q2'))\n"
        "print(rlm_batch(['Q3', ['Q4', {'k': 1}], {'prompt': 'Q5', 'context': [1]}]))"
    )
    result = RLMAgent(
        ScriptedEngine([f"```repl\n{code}\n```", "FINAL(x)"]), "m", sub_engine=FunctionEngine(sub)
    ).run("q", context="c")
    assert result.trajectory[0].cells[0].result.output == (
        "plain\nplain\n['plain', 'plain', 'plain']\n"
    )
    assert sorted(prompts) == ["Q1\n\nsome text", "Q2", "Q3", 'Q4\n\n{"k": 1}', "Q5\n\n[1]"]
    assert all(c.child_run_id is None for c in result.trajectory[0].cells[0].sub_calls)


def test_bad_rlm_arguments_are_errors_in_the_repl():
    code = (
        "for call in (lambda: rlm_query(3), lambda: rlm_batch('x'), lambda: rlm_batch([[1, 2]]),\n"
        "             lambda: rlm_query('q', context={1, 2}), lambda: rlm_query('q', ctx=1)):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as e:\n"
        "        print(type(e).__name__, str(e)[:120])\n"
    )
    result = RLMAgent(ScriptedEngine([f"```repl\n{code}\n```", "FINAL(x)"]), "m", max_depth=2).run(
        "q", context="c"
    )
    lines = result.trajectory[0].cells[0].result.output.splitlines()
    assert len(lines) == 5
    assert all(line.startswith(("HostCallError", "TypeError")) for line in lines)
    assert "rlm_query must be a str, got int" in lines[0]
    assert "list of prompts" in lines[1]
    assert "prompt must be a str" in lines[2]
    assert lines[3].startswith("TypeError")  # a set is not JSON: the worker cannot send it
    assert "unknown: ctx" in lines[4]


def test_child_agent_runs_the_children():
    child_engine = ScriptedEngine(["```repl\nFINAL(context.upper())\n```"] * 2)
    child = RLMAgent(child_engine, "small")
    root = ScriptedEngine(
        [
            "```repl\nprint(rlm_batch([['up', 'abc'], ['up', 'xyz']]))\n```",
            "FINAL(done)",
        ]
    )
    bus = EventBus()
    events = record(bus)
    result = RLMAgent(root, "big", max_depth=2, child_agent=child, bus=bus).run("q", context="c")
    assert result.trajectory[0].cells[0].result.output == "['ABC', 'XYZ']\n"
    assert len(child_engine.calls) == 2 and len(root.calls) == 2
    starts = [e for e in events if isinstance(e, RunStarted)]
    assert [e.model for e in starts] == ["big", "small", "small"]
    assert set(result.usage.by_model) == {"big", "small"}
    ended = [e.call for e in events if isinstance(e, SubCallEnded)]
    assert {c.model for c in ended} == {"small"}


def test_a_failing_child_is_an_error_string_in_the_batch():
    child_engine = ScriptedEngine(["```repl\nFINAL('fine')\n```"])  # one answer, then errors
    child = RLMAgent(child_engine, "small", max_turns=1)
    root = ScriptedEngine(
        [
            "```repl\nprint(sorted(rlm_batch(['a', 'b'])))\n```",
            "FINAL(done)",
        ]
    )
    result = RLMAgent(root, "big", max_depth=2, child_agent=child).run("q", context="c")
    output = result.trajectory[0].cells[0].result.output
    assert "'fine'" in output and "Error: EngineError: ScriptedEngine ran out" in output
    calls = result.trajectory[0].cells[0].sub_calls
    failed = [c for c in calls if c.error]
    assert len(failed) == 1 and failed[0].child_run_id is not None


def test_max_depth_must_be_positive():
    from rlmagent import UsageError

    with pytest.raises(UsageError, match="max_depth"):
        RLMAgent(ScriptedEngine([]), "m", max_depth=0)
    with pytest.raises(UsageError, match="child_agent"):
        RLMAgent(ScriptedEngine([]), "m", child_agent="small")  # type: ignore[arg-type]
