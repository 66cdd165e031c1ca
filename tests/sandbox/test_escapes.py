"""Adversarial suite, escapes: system calls the seccomp filter denies, memory outside
every process's resident set, processes that try to outlive the kill, the terminal, and
host paths in the bubblewrap tier's mount table. Every case runs on every tier.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rlmagent.sandbox import cgroups
from rlmagent.sandbox.bwrap import python_paths
from rlmagent.sandbox.process import wait_gone
from rlmagent.sandbox.seccomp import build_filter

from .helpers import assert_continues, open_session

SECCOMP = build_filter() is not None
MB = 1024 * 1024
needs_seccomp = pytest.mark.skipif(not SECCOMP, reason="no seccomp filter on this machine")

DENIED = r"""
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"x86_64": dict(clone=56, pidfd_open=434, pidfd_getfd=438, process_vm_readv=310,
                     process_vm_writev=311, shmget=29, shmat=30, memfd_secret=447),
      "aarch64": dict(clone=220, pidfd_open=434, pidfd_getfd=438, process_vm_readv=270,
                      process_vm_writev=271, shmget=194, shmat=196, memfd_secret=447)}
nr = NR[os.uname().machine]
found = {}
def call(name, *args):
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr[name]), *[ctypes.c_long(a) for a in args])
    if ret == 0 and name == "clone":
        os._exit(0)  # it must not have worked; if it did, the copy leaves at once
    found[name] = errno.errorcode.get(ctypes.get_errno(), "OK") if ret < 0 else "OK"
call("clone", 0x8000 | 17, 0, 0, 0, 0)   # CLONE_PARENT | SIGCHLD
call("pidfd_open", os.getpid(), 0)
call("pidfd_getfd", 0, 0, 0)
call("process_vm_readv", os.getpid(), 0, 0, 0, 0, 0)
call("process_vm_writev", os.getpid(), 0, 0, 0, 0, 0)
call("shmget", 0, 1 << 20, 0o1600)        # IPC_PRIVATE, IPC_CREAT | 0600
call("shmat", 0, 0, 0)
call("memfd_secret", 0)
try:
    os.memfd_create("x")
    found["memfd_create"] = "OK"
except OSError as exc:
    found["memfd_create"] = errno.errorcode[exc.errno]
try:
    import fcntl, termios
    master, slave = os.openpty()
except OSError as exc:
    found["pty"] = errno.errorcode[exc.errno]
else:
    for name, request, arg in (("TIOCSTI", termios.TIOCSTI, b"x"),
                               ("TCSETS", termios.TCSETS, bytes(60))):
        try:
            fcntl.ioctl(slave, request, arg)
            found[name] = "OK"
        except OSError as exc:
            found[name] = errno.errorcode[exc.errno]
    termios.tcgetattr(slave)  # reading a terminal's settings is fine
print(json.dumps(found))
"""


@needs_seccomp
def test_the_filter_denies_what_no_cell_needs(tier):
    with open_session(tier) as session:
        result = session.execute(DENIED)
        assert result.error is None, result.error
        found = json.loads(result.output)
        expected = {"clone", "pidfd_open", "pidfd_getfd", "process_vm_readv"}
        expected |= {"process_vm_writev", "shmget", "shmat", "memfd_secret", "memfd_create"}
        if "pty" not in found:  # a tier may refuse the pty itself
            expected |= {"TIOCSTI", "TCSETS"}
        assert {name: found[name] for name in expected} == dict.fromkeys(expected, "EPERM")
        assert_continues(session)


STILL_WORKS = r"""
import asyncio, ctypes, os, subprocess, sys, tempfile, threading
callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x * 2)
assert callback(21) == 42
pid = os.fork()
if pid == 0:
    os._exit(7)
assert os.waitpid(pid, 0)[1] >> 8 == 7
out = subprocess.run([sys.executable, "-I", "-S", "-c", "print(6 * 7)"], capture_output=True)
assert out.stdout == b"42\n", out
thread = threading.Thread(target=lambda: None); thread.start(); thread.join()
assert asyncio.run(asyncio.sleep(0, "ok")) == "ok"
with tempfile.TemporaryFile() as f:
    f.write(b"x")
print("all fine")
"""


def test_what_cells_do_still_works_under_the_filter(tier):
    with open_session(tier) as session:
        result = session.execute(STILL_WORKS)
        assert result.error is None, result.error
        assert result.output == "all fine\n"


def _segments() -> int:
    """System V shared memory segments of the host's IPC namespace (``ipcs -m``)."""
    try:
        return len(Path("/proc/sysvipc/shm").read_text().splitlines()) - 1
    except OSError:
        return 0


HOARD = r"""
import ctypes, mmap, os
held, report = [], []
for n in range(5):
    try:
        fd = os.memfd_create(f"m{n}")
        os.ftruncate(fd, 256 << 20)
        with mmap.mmap(fd, 256 << 20) as m:
            for i in range(0, 256 << 20, 4096):
                m[i] = 1
        held.append(fd)
    except OSError as exc:
        report.append(f"memfd {n}: {exc.strerror}")
        break
libc = ctypes.CDLL(None, use_errno=True)
for n in range(8):
    shmid = libc.shmget(0, 64 << 20, 0o1600)
    if shmid < 0:
        report.append(f"shmget {n}: {os.strerror(ctypes.get_errno())}")
        break
print("; ".join(report) or "held everything")
"""


@needs_seccomp
def test_memfds_and_system_v_segments_are_refused(tier):
    before = _segments()
    with open_session(tier, total_memory_bytes=256 * MB) as session:
        result = session.execute(HOARD)
        held = result.output.strip()
        assert held == "memfd 0: Operation not permitted; shmget 0: Operation not permitted", result
        assert_continues(session)
    assert _segments() == before  # no segment outlives the run


SHM = r"""
with open("/dev/shm/hoard", "wb") as f:
    for _ in range(96):
        f.write(b"x" * (4 << 20))
print("kept 384 MiB in /dev/shm")
"""


@pytest.mark.requires_bwrap
def test_posix_shared_memory_counts_towards_the_total():
    with open_session("bwrap", total_memory_bytes=256 * MB, disk_bytes=512 * MB) as session:
        result = session.execute(SHM)
        assert result.state_lost, result
        assert "total_memory_bytes" in (result.error or ""), result.error
        assert session.execute("import os\nprint(os.listdir('/dev/shm'))").output == "[]\n"


ESCAPE = r"""
import ctypes, os, signal, threading, time
libc = ctypes.CDLL(None, use_errno=True)
worker = os.getpid()
def note():  # each process names itself in the work directory (host pids but in bwrap)
    open(f"pid-{os.getpid()}", "w").close()
if libc.syscall(56 if os.uname().machine == "x86_64" else 220, 0x8000 | 17, 0, 0, 0, 0) == 0:
    os.setsid()  # a sibling of the worker in a session of its own, if the filter let it
    note()
    while True:
        time.sleep(1)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the helper: wakes the worker up again and again
        note()
        while True:
            try:
                os.kill(worker, signal.SIGCONT)
            except OSError:
                pass
            time.sleep(0.001)
    os._exit(0)
def respawn():  # keeps eight setsid sleepers alive: a killed one is forked again at once
    alive = set()
    while True:
        while len(alive) < 8:
            try:
                pid = os.fork()
            except OSError:
                time.sleep(0.01)
                continue
            if pid == 0:
                os.setsid()
                note()
                time.sleep(600)
                os._exit(0)
            alive.add(pid)
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            continue
        alive.discard(pid)
threading.Thread(target=respawn, daemon=True).start()
time.sleep(0.3)
llm_query("started")
time.sleep(600)
"""


@pytest.fixture(params=["as-built", "no-cgroup"])
def cgroup_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no-cgroup":  # the fallback: stop the tree, then sweep it
        monkeypatch.setattr(cgroups.Cgroup, "create", classmethod(lambda cls: None))
    return str(request.param)


def test_no_process_outlives_the_kill(tier, cgroup_mode):
    """setsid sleepers forked again as fast as they are killed, a helper that SIGCONTs the
    stopped worker, a ``CLONE_PARENT`` sibling: after the kill no process is left, by pid
    (the pids each process wrote into the work directory, and the session's own list)."""
    seen: list[int] = []
    sessions: list[Any] = []

    def handler(name: str, params: dict[str, Any]) -> Any:
        seen.extend(sessions[0].processes())  # host pids, while the cell runs
        return "ok"

    with open_session(tier, handler=handler, cell_timeout_s=3) as session:
        sessions.append(session)
        result = session.execute(ESCAPE)
        assert result.timed_out and result.state_lost, result
        named = [int(p.name[4:]) for p in session.workdir.glob("pid-*")]  # not in bwrap
        pids = sorted({*seen, *named})
        assert len(seen) >= 5, seen  # the worker, the helper, its sleepers
        left = [pid for pid in pids if not wait_gone(pid, 5.0)]
        for pid in left:  # do not leave them to the next test
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        assert left == [], f"processes of the cell survived the kill: {left}"
        assert_continues(session)


TERMINAL = r"""
import os
try:
    os.open("/dev/tty", os.O_RDWR)
    print("a controlling terminal")
except OSError as exc:
    print("no terminal:", exc.strerror)
print([os.isatty(fd) for fd in (0, 1, 2)])
"""


def test_no_handle_on_the_host_terminal(tier):
    with open_session(tier) as session:
        result = session.execute(TERMINAL)
        assert result.error is None, result.error
        first, second = result.output.splitlines()
        assert first.startswith("no terminal:"), first
        assert second == "[False, False, False]"


MOUNTS = r"""
import os
print(open("/proc/self/mountinfo").read())
print(os.environ.get("TMPDIR"), os.environ.get("HOME"), os.getcwd())
"""


@pytest.mark.requires_bwrap
def test_the_bwrap_tier_shows_no_host_paths(tmp_path, monkeypatch):
    private_tmp = tmp_path / "alice-private-tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    with open_session("bwrap") as session:
        assert session.workdir.parent == private_tmp
        result = session.execute(MOUNTS)
        assert result.error is None, result.error
        seen = result.output
        assert "/tmp/work /tmp/work /tmp/work" in seen
        for host_path in ("alice-private-tmp", str(tmp_path), session.workdir.name, "rlmagent-"):
            assert host_path not in seen, (host_path, seen)
        home = str(Path.home())
        pythons = python_paths(sys.executable)
        for line in seen.splitlines():  # the home shows only as a Python installed there
            if home in line.split(" - ")[0]:
                assert any(path in line for path in pythons), line


DESCRIPTORS = r"""
import os, stat
open_fds = []
for fd in range(256):
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        continue
    kind = "sock" if stat.S_ISSOCK(mode) else "chr" if stat.S_ISCHR(mode) else "other"
    open_fds.append((fd, kind))
print(open_fds)
"""


def test_the_worker_holds_no_descriptor_but_its_channel(tier):
    """Nothing a launcher passed (bubblewrap's set-up pipes, the worker's code, the
    context) is left open for model code: fds 0-2 (``/dev/null``) and the channel."""
    with open_session(tier) as session:
        result = session.execute(DESCRIPTORS)
        assert result.error is None, result.error
        found = eval(result.output)
        assert [kind for fd, kind in found if fd <= 2] == ["chr", "chr", "chr"]
        assert [kind for fd, kind in found if fd > 2] == ["sock", "sock"], found
