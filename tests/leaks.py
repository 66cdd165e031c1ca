"""A sandbox worker a test leaves running fails that test, and only that test.

``no_leaked_workers`` (autouse, imported by ``tests/conftest.py``) notes the sandbox
worker processes among this process's children before each test and looks again after
it. One that is new and still alive after :data:`GRACE_S` (a worker being shut down is
given time to go) is killed with everything it started, and the test that left it
errors at teardown, naming its pid and command. Without this, a leaked worker surfaced
later, in whichever test happened to run when its ``Popen`` was collected, as a
``ResourceWarning`` turned error: a failure of an unrelated test. (The leaked worker's
``Popen``, if one is still in memory, is waited on after the kill, so that collecting it
later warns nothing.)

Sandbox workers are recognised by their command line: ``bwrap`` itself, or anything
running a ``worker.py`` (every tier's worker script, and the hostile stand-ins the
sandbox tests bind in its place). Other children (servers a fixture keeps for a whole
module, browsers) are left alone. Linux only (it reads ``/proc``); elsewhere it does
nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

GRACE_S = 5.0
"""How long a test's new workers may take to exit after it ends."""
PROC = Path("/proc")


def _children(pid: int) -> set[int]:
    """The pids of ``pid``'s direct children (every thread's)."""
    found: set[int] = set()
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            try:
                found.update(int(c) for c in (task / "children").read_text().split())
            except (OSError, ValueError):
                continue
    except OSError:
        pass
    return found


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        stat = (PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def _command(pid: int) -> list[str]:
    """``pid``'s command line. Right after a spawn it can read empty for a moment (the
    kernel has started the new program but not yet set its arguments): read again."""
    for _ in range(50):
        try:
            raw = (PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            return []
        if raw or not _alive(pid):
            break
        time.sleep(0.01)
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def is_worker(argv: list[str]) -> bool:
    return bool(argv) and (
        os.path.basename(argv[0]) == "bwrap" or any(a.endswith("worker.py") for a in argv)
    )


def workers() -> dict[int, list[str]]:
    """This process's live children that are sandbox workers: pid -> command."""
    out = {}
    for pid in _children(os.getpid()):
        argv = _command(pid)
        if _alive(pid) and is_worker(argv):
            out[pid] = argv
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(c for c in _children(p) if c not in seen)
    return seen


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its descendants; wait (a little) until none runs. The pid is
    not reaped: its owner (a ``Popen``, asyncio's child watcher) still does that."""
    tree = _tree(pid)
    for p in tree:
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    deadline = time.monotonic() + GRACE_S
    while any(_alive(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.01)


def settle_popens(pids: set[int]) -> None:
    """Wait on the ``Popen`` objects of killed ``pids`` still in memory, so that their
    collection later (in another test) finds them finished and warns nothing."""
    import gc
    import subprocess

    for obj in gc.get_objects():
        if isinstance(obj, subprocess.Popen) and obj.pid in pids and obj.returncode is None:
            try:
                obj.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                continue


def still_running(new: dict[int, list[str]], grace: float = GRACE_S) -> dict[int, list[str]]:
    """Those of ``new`` still alive once ``grace`` seconds have passed (early if none)."""
    deadline = time.monotonic() + grace
    while True:
        left = {p: a for p, a in new.items() if _alive(p)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def no_leaked_workers() -> Iterator[None]:
    if not PROC.is_dir():
        yield
        return
    before = set(workers())
    yield
    leaked = still_running({p: a for p, a in workers().items() if p not in before})
    if not leaked:
        return
    for pid in leaked:
        kill_tree(pid)
    settle_popens(set(leaked))
    named = "; ".join(f"pid {p}: {' '.join(a)[-300:]}" for p, a in sorted(leaked.items()))
    pytest.fail(
        f"this test left {len(leaked)} sandbox worker process(es) running "
        f"{GRACE_S:g} s after it ended (killed now): {named}",
        pytrace=False,
    )
