"""Work directories: locked while in use, removed by the next process when a host was killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rlmagent.sandbox.workdirs import GRACE_S, PREFIX, LockedDir, sweep_abandoned

HOST = """
import sys
from rlmagent.sandbox import SubprocessSandbox

# the plain tier stages the worker's code on disk (bubblewrap gets it from memory)
sandbox = SubprocessSandbox(isolation="process")
session = sandbox.start("the secret context", lambda name, args: None)
print(session.workdir, flush=True)
sys.stdin.read()  # wait to be killed
"""


def age(path: Path, seconds: float = GRACE_S + 60) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_directories_of_a_killed_host_are_removed_by_the_next(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with subprocess.Popen(
        [sys.executable, "-c", HOST], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as host:
        assert host.stdout is not None
        workdir = Path(host.stdout.readline().decode().strip())
        left = sorted(p.name.split("-")[1] for p in tmp_path.iterdir())
        assert workdir.parent == tmp_path and left == ["session", "worker"]
        assert "the secret context" in "".join(p.read_text() for p in workdir.iterdir())
        for path in tmp_path.iterdir():
            age(path)
        assert sweep_abandoned(tmp_path) == []  # the host is alive: its locks hold
        host.send_signal(signal.SIGKILL)
    assert workdir.exists()  # a killed host cannot clean up
    removed = sweep_abandoned(tmp_path)
    assert len(removed) == 2 and list(tmp_path.iterdir()) == []


def test_live_young_and_foreign_directories_are_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    live = LockedDir("session")  # locked by this process
    age(live.path)
    young = tmp_path / f"{PREFIX}session-young"  # unlocked, but its creator may be starting
    young.mkdir()
    foreign = tmp_path / "rlm-not-ours"  # not our prefix
    foreign.mkdir()
    age(foreign)
    stale = tmp_path / f"{PREFIX}session-stale"
    stale.mkdir()
    (stale / "context.txt").write_text("left behind")
    age(stale)
    try:
        assert sweep_abandoned(tmp_path) == [stale]
        assert live.path.exists() and young.exists() and foreign.exists()
    finally:
        live.remove()
    assert not live.path.exists()
    live.remove()  # twice is fine
