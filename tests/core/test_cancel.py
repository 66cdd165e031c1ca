"""Cancelling a run stops every call and kills every sandbox of the tree (checked by PID)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from proctree import alive, descendants, describe, sandbox_processes, workers

from rlmagent import EventBus, FunctionEngine, RLMAgent
from rlmagent.events import CodeStarted, Event, RunEnded, SubCallEnded, SubCallStarted


def test_cancelling_arun_kills_the_whole_tree():
    release = threading.Event()

    def model(messages, name):
        if len(messages) == 1:  # a plain sub-call: stays in flight until the test ends
            release.wait(60)
            return "late"
        question = messages[1]["content"]
        if "sleepy" in question:
            return "```repl\nimport time\ntime.sleep(60)\n```"
        if "batchy" in question:
            return "```repl\nprint(llm_batch(['x', 'y', 'z']))\n```"
        return "FINAL(half)\n```repl\nprint(rlm_batch([['sleepy', 'c1'], ['batchy', 'c2']]))\n```"

    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)
    before = set(sandbox_processes(os.getpid()))  # left by other tests, if any

    def count(kind: type, depth: int) -> int:
        return sum(isinstance(e, kind) and e.depth == depth for e in events)

    async def main() -> list[int]:
        agent = RLMAgent(FunctionEngine(model), "m", max_depth=2, bus=bus)
        task = asyncio.create_task(agent.arun("root question", context="c"))
        deadline = time.monotonic() + 60
        while not (count(CodeStarted, 1) == 2 and count(SubCallStarted, 1) == 3):
            assert time.monotonic() < deadline, "the tree never got going"
            await asyncio.sleep(0.02)
        assert len(set(workers(os.getpid())) - before) == 3  # the root's and two children's
        pids = [p for p in sandbox_processes(os.getpid()) if p not in before]
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the run was not cancelled")
        return pids

    try:
        pids = asyncio.run(main())
    finally:
        release.set()
    assert alive(pids) == []
    time.sleep(0.5)  # nothing restarts a worker afterwards
    assert set(sandbox_processes(os.getpid())) <= before, describe(sandbox_processes(os.getpid()))
    ends = [e for e in events if isinstance(e, RunEnded)]
    assert sorted(e.depth for e in ends) == [0, 1, 1]
    assert all(e.result.stop_reason == "cancelled" for e in ends)
    root = next(e for e in ends if e.depth == 0)
    assert root.result.partial_answer == "half"
    failed = [e.call for e in events if isinstance(e, SubCallEnded) and e.call.error]
    assert len(failed) == 5 and {c.error for c in failed} == {"cancelled"}


CLI_CHILD = """
import sys
from pathlib import Path
from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.engines.registry import register_engine

marker = Path(sys.argv[1])

def model(messages, name):
    if len(messages) == 1:
        marker.write_text("the cell is running")
        return "pong"
    code = "import time\\nllm_query('ping')\\ntime.sleep(60)"
    return f"Checking. FINAL(guess 7)\\n```repl\\n{code}\\n```"

def factory(model_name, **options):
    engine = FunctionEngine(model)
    engine.model = model_name
    return engine

register_engine("slowtest", factory)
sys.exit(main(["run", "what?", "--model", "slowtest:m", "--no-log", "--quiet"]))
"""


def test_ctrl_c_in_the_cli_prints_the_partial_answer_and_leaves_no_process(tmp_path: Path):
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI_CHILD, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # the cell is now in time.sleep(60)
        below = descendants(proc.pid)
        assert workers(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()  # reaped and its pipes closed: nothing left for a later test
    assert proc.returncode == 130, err
    assert out == "guess 7\n"
    assert "interrupted" in err
    assert alive(below) == []
