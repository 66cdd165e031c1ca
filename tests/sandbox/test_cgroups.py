"""The plain tiers' cgroups: what a killed host's sandbox left is killed by the next host.

Runs only where this process may make cgroup v2 groups (root, or a delegated scope).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rlmagent.sandbox import cgroups
from rlmagent.sandbox.process import wait_gone

PARENT = cgroups.own_cgroup()
DELEGATED = PARENT is not None and os.access(PARENT, os.W_OK)
pytestmark = pytest.mark.skipif(not DELEGATED, reason="no writable cgroup v2 group here")

HOST = """
import sys, warnings
warnings.simplefilter("ignore")
from rlmagent.sandbox import SubprocessSandbox
session = SubprocessSandbox(isolation="process").start("c", lambda name, args: None)
print("cgroup" in session.hardening, flush=True)
cell = "import os, time\\nif os.fork() == 0:\\n    os.setsid()\\n    time.sleep(600)\\n"
cell += "    os._exit(0)\\nprint(os.getpid())"
result = session.execute(cell)
found = session.processes()
print(" ".join(str(pid) for pid in found if str(pid) != result.output.strip()), flush=True)
sys.stdin.read()  # wait to be killed
"""


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_hosts_leftover_processes_die_when_the_next_group_is_made(monkeypatch):
    with subprocess.Popen(
        [sys.executable, "-c", HOST], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as host:
        assert host.stdout is not None
        assert host.stdout.readline().strip() == "True"  # the worker is in a group
        sleepers = [int(pid) for pid in host.stdout.readline().split()]
        assert sleepers, "the cell's sleeper was not seen"
        host.send_signal(signal.SIGKILL)
    try:
        # A killed host cannot kill its group: the sleeper lives on, unless another
        # rlmagent process on this machine made its first group meanwhile (and swept).
        monkeypatch.setattr(cgroups, "_swept", False)
        group = cgroups.Cgroup.create()  # the next sandbox of any later process
        assert group is not None
        group.remove()
        assert all(wait_gone(pid, 5.0) for pid in sleepers)
        prefix = f"rlmagent-{cgroups._pid_namespace()}-{host.pid}-"
        left = [p.name for p in PARENT.iterdir() if p.name.startswith(prefix)]
        assert left == []
    finally:
        for pid in sleepers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_groups_of_live_hosts_are_left_alone(monkeypatch):
    assert PARENT is not None
    namespace = cgroups._pid_namespace()
    live = PARENT / f"rlmagent-{namespace}-{os.getppid()}-999999"
    dead_pid = _dead_pid()
    dead = PARENT / f"rlmagent-{namespace}-{dead_pid}-999999"
    elsewhere = PARENT / f"rlmagent-{namespace + 1}-{dead_pid}-999999"  # another namespace
    other = PARENT / "rlmagent-not-ours"
    for path in (live, dead, elsewhere, other):
        path.mkdir()
    try:
        monkeypatch.setattr(cgroups, "_swept", False)
        assert cgroups.sweep_abandoned(PARENT) == [Path(dead)]
        assert live.exists() and elsewhere.exists() and other.exists() and not dead.exists()
    finally:
        for path in (live, dead, elsewhere, other):
            with contextlib.suppress(OSError):
                path.rmdir()


def test_memory_max_is_written_where_the_controller_is_delegated(tmp_path: Path) -> None:
    with_controller = tmp_path / "with"
    with_controller.mkdir()
    (with_controller / "memory.max").write_text("max\n")
    (with_controller / "memory.swap.max").write_text("max\n")
    assert cgroups.Cgroup(with_controller).limit_memory(256 * 2**20)
    assert (with_controller / "memory.max").read_text() == f"{256 * 2**20}\n"
    assert (with_controller / "memory.swap.max").read_text() == "0\n"
    without = tmp_path / "without"
    without.mkdir()
    assert not cgroups.Cgroup(without).limit_memory(256 * 2**20)
    assert not (without / "memory.max").exists()


def _memory_controller() -> bool:
    group = cgroups.own_cgroup()
    if group is None:
        return False
    with contextlib.suppress(OSError):
        return "memory" in (group / "cgroup.subtree_control").read_text().split()
    return False


@pytest.mark.skipif(
    not _memory_controller(), reason="no cgroup v2 memory controller is delegated here"
)
def test_a_plain_tier_worker_group_gets_memory_max() -> None:
    import warnings

    from rlmagent.sandbox import Limits, SubprocessSandbox

    limit = 200 * 2**20
    with warnings.catch_warnings():  # the plain tier's opt-in warning
        warnings.simplefilter("ignore")
        sandbox = SubprocessSandbox(isolation="process", limits=Limits(total_memory_bytes=limit))
        session = sandbox.start("ctx", lambda name, params: None)
    try:
        assert "cgroup-memory-max" in session.hardening
        worker = session._worker
        assert worker is not None and worker.cgroup is not None
        assert (worker.cgroup.path / "memory.max").read_text().strip() == str(limit)
    finally:
        session.close()
