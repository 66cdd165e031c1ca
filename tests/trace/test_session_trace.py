"""A session's trajectory: one JSONL file, each question a root run in it, in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlmagent import RLMAgent, ScriptedEngine
from rlmagent.trace import Trajectory
from rlmagent.viewer.payload import build_payload


def ask_three(path: Path) -> list[str]:
    engine = ScriptedEngine(
        [
            "```repl\nn = len(context)\nFINAL(n)\n```",
            "```repl\nFINAL(n * 2)\n```",
            "```repl\nFINAL(n * 3)\n```",
        ]
    )
    agent = RLMAgent(engine, "m", trace=path, check_answers=False)
    with agent.session(context="abcd") as session:
        return [session.ask(q).run_id for q in ("one?", "two?", "three?")]


def test_each_question_is_a_root_run_of_one_file_in_order(tmp_path: Path):
    path = tmp_path / "session.jsonl"
    run_ids = ask_three(path)
    trajectory = Trajectory.load(path)
    roots = [r for r in trajectory.runs if r.parent_id is None]
    assert [r.run_id for r in roots] == run_ids
    assert [(r.question, r.answer) for r in roots] == [
        ("one?", "4"),
        ("two?", "8"),
        ("three?", "12"),
    ]
    assert all(r.finished for r in roots) and not trajectory.truncated
    payload = build_payload(trajectory)
    assert payload["questions"] == run_ids
    assert payload["title"] == "Session: 3 questions"
    assert payload["complete"] is True
    assert payload["usage"]["calls"] == 3


CHILD = r"""
import sys, time
from pathlib import Path
from rlmagent import FunctionEngine, RLMAgent

marker = Path(sys.argv[2])

def model(messages, name):
    if "second" in messages[1]["content"]:
        marker.write_text("asked")
        time.sleep(600)
    return "```repl\nFINAL(len(context))\n```"

agent = RLMAgent(FunctionEngine(model), "m", trace=sys.argv[1], check_answers=False)
with agent.session(context="abc") as session:
    session.ask("first question")
    session.ask("second question")
"""


def test_a_session_killed_with_sigkill_leaves_a_loadable_file(tmp_path: Path):
    path, marker = tmp_path / "killed.jsonl", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    trajectory = Trajectory.load(path)
    roots = [r for r in trajectory.runs if r.parent_id is None]
    assert [r.question for r in roots] == ["first question", "second question"]
    assert roots[0].finished and roots[0].answer == "3"
    assert not roots[1].finished
    payload = build_payload(trajectory)
    assert payload["complete"] is False and len(payload["questions"]) == 2


def test_rlm_runs_lists_a_session_as_one_row(tmp_path: Path):
    from rlmagent.trace.runlog import summarize_run

    path = tmp_path / "session.jsonl"
    ask_three(path)
    row = summarize_run(path)
    assert row.question == "[session, 3 questions] one?"
    assert row.answer == "12" and row.turns == 3 and row.calls == 3
    assert row.status == "done"
