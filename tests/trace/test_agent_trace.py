"""End to end: RLMAgent(trace=PATH) on scripted engines, read back with Trajectory.load."""

from __future__ import annotations

import json
from pathlib import Path

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.trace import Trajectory, summarize_run

REPLY = (
    "I will ask about each part.\n```repl\n"
    "parts = [context[i:i+10] for i in range(0, len(context), 10)]\n"
    'ans = llm_batch(["Count x in: " + p for p in parts])\n'
    "print(ans)\n```\n"
    "```repl\nundefined_name\n```"
)


def sub_model(messages: list[dict[str, str]], model: str) -> str:
    prompt = messages[-1]["content"]
    if "fail" in prompt:
        raise RuntimeError("the sub-model is down")
    return str(prompt.count("x"))


def test_a_traced_run_reads_back_as_the_agent_saw_it(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    root = ScriptedEngine([REPLY, "FINAL(14)", "FINAL(14)"])
    agent = RLMAgent(
        root,
        "root-m",
        sub_engine=FunctionEngine(sub_model),
        sub_model="sub-m",
        trace=path,
    )
    result = agent.run("How many x?", context="abcx" * 5 + "fail" + "x" * 16)
    traj = Trajectory.load(path)
    assert traj.complete and traj.skipped == 0
    assert traj.answer == result.content
    root_run = traj.root
    assert root_run is not None
    assert root_run.question == "How many x?"
    assert root_run.model == "root-m" and root_run.sub_model == "sub-m"
    # the typed steps rebuilt from the events are exactly the agent's own record
    assert root_run.steps() == result.trajectory
    batch_cell, error_cell = root_run.turns[0].cells
    assert len(batch_cell.sub_calls) == 4
    failed = [t.call for t in batch_cell.sub_calls if t.call.error]
    assert len(failed) == 1 and "the sub-model is down" in (failed[0].error or "")
    assert batch_cell.batches[0].failures == 1
    assert error_cell.result is not None and "NameError" in (error_cell.result.error or "")
    assert traj.usage == result.usage
    summary = summarize_run(path)
    assert (summary.answer, summary.turns, summary.calls) == (
        result.content,
        result.turns,
        result.usage.calls,
    )
    text = path.read_text(encoding="utf-8")
    assert all(json.loads(line) for line in text.splitlines())
