"""Closing while a worker is being started (issue 14's cancellation race), forced, not timed.

A cancelled run closes its sandbox from the event loop while the cell's thread may be
replacing a worker that just died (the close itself kills it). Before the fix, the
replacement started after ``close()`` had run and outlived the run: a leaked bubblewrap
sandbox that later failed an unrelated test through a ``ResourceWarning``. Here the
launcher is held inside its start until the test lets it go, so the interleaving is the
same on every run: ``close()`` must wait for that worker and kill it, and no worker is
ever started afterwards. The same for the host's REPL: a sandbox session whose start
outlives the shutdown's wait is closed the moment it exists.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from typing import Any

import pytest

from rlmagent import repl as repl_module
from rlmagent.errors import SandboxError
from rlmagent.repl import Repl
from rlmagent.sandbox import Limits, SubprocessSandbox
from rlmagent.sandbox.process import wait_gone

from .helpers import ECHO, Recorder

WAIT_S = 60.0


def _hold_launches(monkeypatch: pytest.MonkeyPatch, launcher: Any) -> dict[str, Any]:
    """Make ``launcher`` stop inside every start, after the processes exist."""
    held: dict[str, Any] = {"launched": threading.Event(), "go": threading.Event(), "pids": []}
    real = launcher.launch

    def launch(*args: Any) -> Any:
        worker = real(*args)
        held["pids"].extend(worker.processes())
        held["launched"].set()
        assert held["go"].wait(WAIT_S), "the test never let the start go on"
        return worker

    monkeypatch.setattr(launcher, "launch", launch)
    return held


def _wait_until(predicate: Any) -> None:
    event = threading.Event()
    for _ in range(int(WAIT_S * 100)):
        if predicate():
            return
        event.wait(0.01)
    raise AssertionError("the other thread never got there")


def test_close_waits_for_and_kills_a_worker_being_started(tier, monkeypatch):
    sandbox = SubprocessSandbox(isolation=tier, limits=Limits())
    session = sandbox.start("the context", Recorder(), functions=ECHO)
    first = session.processes()
    held = _hold_launches(monkeypatch, session.launcher)
    outcome: dict[str, Any] = {}

    def cell() -> None:  # the worker dies; the session starts a replacement
        try:
            outcome["result"] = session.execute("import os\nos._exit(1)")
        except BaseException as exc:
            outcome["error"] = exc

    cell_thread = threading.Thread(target=cell)
    cell_thread.start()
    assert held["launched"].wait(WAIT_S), "no replacement was started"
    closer = threading.Thread(target=session.close)
    closer.start()
    _wait_until(lambda: session._closed)
    assert closer.is_alive()  # close() waits: a worker is still being started
    replacement = list(held["pids"])
    assert replacement and not set(replacement) & set(first)
    held["go"].set()
    closer.join(WAIT_S)
    assert not closer.is_alive()
    left = [pid for pid in [*first, *replacement] if not wait_gone(pid, 5.0)]
    assert left == [], f"a worker outlived close(): {left}"
    cell_thread.join(WAIT_S)
    assert isinstance(outcome.get("error"), SandboxError), outcome
    assert "closed" in str(outcome["error"])
    with pytest.raises(SandboxError, match="closed"):
        session.execute("print(1)")  # and none is started later
    assert session.processes() == []


def test_a_sandbox_that_finishes_starting_after_the_shutdown_is_closed(tier, monkeypatch):
    sandbox = SubprocessSandbox(isolation=tier, limits=Limits())
    held = _hold_launches(monkeypatch, sandbox.launcher())
    monkeypatch.setattr(repl_module, "SESSION_CLOSE_WAIT_S", 0.0)  # the wait runs out
    repl = Repl(sandbox)

    async def cancelled_run() -> None:
        task = asyncio.create_task(repl.start("ctx", Recorder(), ECHO, 1000))
        while not held["launched"].is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        async def no_calls() -> None:
            return None

        await repl.shutdown(no_calls)  # returns while the start is still held

    asyncio.run(cancelled_run())
    assert repl.session is None
    pids = list(held["pids"])
    assert pids
    held["go"].set()
    for done in repl._threads:
        assert done.wait(WAIT_S)
    left = [pid for pid in pids if not wait_gone(pid, 5.0)]
    assert left == [], f"a sandbox outlived the shutdown: {left}"
    assert repl.session is None


def test_a_close_from_another_thread_never_frees_descriptors_a_cell_still_uses(tier):
    """close() while a cell's thread waits in a host call: the processes die at once, but
    the channel's descriptor numbers stay taken until that thread is done with them, so
    a descriptor opened meanwhile (here: temporary files) never receives its frames."""
    in_call, release = threading.Event(), threading.Event()

    def handler(name: str, params: dict[str, Any]) -> Any:
        in_call.set()
        assert release.wait(WAIT_S)
        return "late"

    session = SubprocessSandbox(isolation=tier).start("ctx", handler, functions=ECHO)
    outcome: dict[str, Any] = {}

    def cell() -> None:
        try:
            outcome["result"] = session.execute("print(llm_query('x'))")
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=cell)
    thread.start()
    assert in_call.wait(WAIT_S)
    pids = session.processes()
    session.close()
    left = [pid for pid in pids if not wait_gone(pid, 5.0)]
    assert left == [], f"processes survived close(): {left}"
    probes = [tempfile.TemporaryFile() for _ in range(8)]  # noqa: SIM115 - lowest numbers
    try:
        release.set()
        thread.join(WAIT_S)
        assert not thread.is_alive()
        written = [os.fstat(probe.fileno()).st_size for probe in probes]
        assert written == [0] * 8, "the closed session's frames went into other files"
    finally:
        for probe in probes:
            probe.close()
    assert isinstance(outcome.get("error"), SandboxError), outcome
