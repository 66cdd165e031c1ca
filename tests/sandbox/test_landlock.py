"""The Landlock layer itself: the ABI and its rights, the launcher run directly (no seccomp
filter behind it, so each refusal here is Landlock's own), failing closed, and what the
host verifies from the kernel before any model code runs.

The tier-wide adversarial cases (secrets, /proc, signals, network, other sandboxes) run
on every tier in test_isolation.py and test_host_state.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from rlmagent.errors import SandboxError
from rlmagent.sandbox import Limits, SubprocessSandbox
from rlmagent.sandbox.bwrap import OPTIONAL_FILES, ROOT_LINKS, python_paths
from rlmagent.sandbox.landlock import (
    ABI1_FS,
    FAILED,
    IOCTL_DEV,
    NET_BIND_TCP,
    NET_CONNECT_TCP,
    REFER,
    SCOPE_ABSTRACT_UNIX_SOCKET,
    SCOPE_SIGNAL,
    TRUNCATE,
    abi_version,
    rights,
)
from rlmagent.sandbox.landlock_tier import (
    LAUNCHER,
    kernel_status,
    may_limit_other_users,
    reachable_by_others,
    soft_limits,
)

from .helpers import IS_ROOT, Recorder

pytestmark = pytest.mark.requires_landlock
PYTHON = os.path.realpath(sys.executable)
DEBIAN_PYTHON = "/usr/bin/python3"


def test_rights_grow_with_the_abi():
    assert rights(0) == (0, 0, 0)
    assert rights(1) == (ABI1_FS, 0, 0)
    assert rights(3) == (ABI1_FS | REFER | TRUNCATE, 0, 0)
    tcp = NET_BIND_TCP | NET_CONNECT_TCP
    assert rights(4) == (ABI1_FS | REFER | TRUNCATE, tcp, 0)
    scopes = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    assert rights(6) == (ABI1_FS | REFER | TRUNCATE | IOCTL_DEV, tcp, scopes)
    assert rights(7) == rights(6)  # ABI 7 adds audit flags, no new right


def test_this_kernel_reports_its_abi():
    abi, why = abi_version()
    assert why is None and abi >= 1


def _confined(tmp_path: Path, code: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` under the launcher: system and Python read-only, ``tmp_path/work``
    writable, nothing else."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    rules = [("rx", "/usr"), *(("rx", p) for p in ROOT_LINKS if os.path.isdir(p))]
    rules += [("rx", p) for p in python_paths(PYTHON)] + [("r", p) for p in OPTIONAL_FILES]
    rules += [("rw", str(work))]
    options = [part for access, path in rules for part in ("--allow", access, path)]
    argv = [PYTHON, "-I", "-S", "-B", str(LAUNCHER), *options, *extra]
    argv += ["--", PYTHON, "-I", "-S", "-c", textwrap.dedent(code)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=work)


def test_the_launcher_confines_files_tcp_unix_sockets_and_signals(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("PLANTED")
    with socket.socket() as tcp, socket.socket(socket.AF_UNIX) as unix:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        name = f"\0rlmagent-test-{os.getpid()}"
        unix.bind(name)
        unix.listen()
        code = f"""
        import os, socket
        def attempt(label, fn):
            try:
                fn()
                print(label, "allowed")
            except OSError as exc:
                print(label, exc.errno)
        attempt("read", lambda: open({str(secret)!r}).read())
        attempt("write-here", lambda: open("mine.txt", "w").write("x"))
        attempt("write-parent", lambda: open("../planted.txt", "w").write("x"))
        attempt("link-in", lambda: os.link({str(secret)!r}, "linked.txt"))
        attempt("proc", lambda: open("/proc/{os.getpid()}/environ").read())
        attempt("tcp", lambda: socket.create_connection(("127.0.0.1", {tcp.getsockname()[1]})))
        attempt("bind", lambda: socket.socket().bind(("127.0.0.1", 0)))
        attempt("unix", lambda: socket.socket(socket.AF_UNIX).connect({name!r}))
        attempt("signal", lambda: os.kill({os.getpid()}, 0))
        attempt("own-child", lambda: os.waitpid(os.spawnv(os.P_NOWAIT, "/bin/true", ["true"]), 0))
        """
        done = _confined(tmp_path, code)
    assert done.returncode == 0, done.stderr
    results = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert results == {
        "read": "13",  # EACCES
        "write-here": "allowed",
        "write-parent": "13",
        "link-in": "18",  # EXDEV: a file from outside cannot be linked in (REFER)
        "proc": "13",
        "tcp": "13",  # Landlock's TCP rule: no port allowed
        "bind": "13",
        "unix": "1",  # EPERM: the abstract socket's owner is outside the domain
        "signal": "1",  # EPERM: the host is outside the domain
        "own-child": "allowed",
    }
    assert not (tmp_path / "planted.txt").exists()


def test_the_launcher_fails_closed(tmp_path):
    bad = _confined(tmp_path, "print('ran')", "--bogus")
    assert (bad.returncode, bad.stdout) == (FAILED, "")
    assert "landlock: unknown option '--bogus'" in bad.stderr
    outside = tmp_path / "tool.sh"  # not under any rule: it may not run
    outside.write_text("#!/bin/sh\necho ran\n")
    outside.chmod(0o755)
    work = tmp_path / "work"  # made by the first run
    argv = [PYTHON, "-I", "-S", str(LAUNCHER), "--allow", "rw", str(work), "--", str(outside)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (FAILED, "")
    assert "could not start" in done.stderr and "Permission denied" in done.stderr


def _session(python: str = PYTHON):
    return SubprocessSandbox(isolation="landlock", python=python).start("ctx", Recorder())


def test_the_host_reads_what_is_in_force_from_the_kernel():
    session = _session()
    try:
        status = kernel_status(session.pid)
        assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
        assert {"landlock-fs", "no_new_privs", "seccomp", "no-capabilities"} <= set(
            session.hardening
        )
        assert int(status["CapEff"], 16) == 0
        abi, _ = abi_version()
        assert f"landlock-abi-{abi}" in session.hardening
        assert ("landlock-scoped" in session.hardening) == (abi >= 6)
        uid = int(status["Uid"].split()[0])
        if IS_ROOT and uid == 0:  # Python out of nobody's reach: uid 0, no capabilities
            assert int(status["CapPrm"], 16) == int(status["CapBnd"], 16) == 0
        else:
            assert uid == (65534 if IS_ROOT else os.getuid())
    finally:
        session.close()


NOBODY = pytest.mark.skipif(
    not IS_ROOT or not reachable_by_others([DEBIAN_PYTHON]) or not may_limit_other_users(),
    reason="needs a root host with CAP_SYS_RESOURCE (to set another user's rlimits) and "
    "a Python that nobody can run",
)


@NOBODY
def test_a_root_host_runs_model_code_as_nobody_where_nobody_can_run_python():
    session = _session(DEBIAN_PYTHON)
    try:
        assert "uid-65534" in session.hardening
        result = session.execute("import os\nprint(os.getresuid(), os.getgroups())")
        assert result.output == "(65534, 65534, 65534) []\n", result
        kept = session.execute("open('mine.txt', 'w').write('x')\nprint(open('mine.txt').read())")
        assert kept.output == "x\n"  # its work directory is writable for it
    finally:
        session.close()


def test_the_workers_own_code_tmp_and_dev_shm_are_refused():
    session = _session()
    try:
        code = """
import os, sys
here = os.path.dirname(sys.modules["protocol"].__file__)
planted = os.path.join(here, "planted.py")
for path in (os.path.join(here, "worker.py"), planted, "/tmp/x", "/dev/shm/rlm-x"):
    try:
        open(path, "a").write("x")
        print("wrote")
    except OSError as exc:
        print(type(exc).__name__)
"""
        result = session.execute(code)
        assert result.output == "PermissionError\n" * 4, result
    finally:
        session.close()


def test_the_worker_cannot_leave_its_cgroup():
    session = _session()
    try:
        worker = session._worker
        if worker is None or worker.cgroup is None:
            pytest.skip("no cgroup v2 is delegated to this process: nothing to leave")
        assert "cgroup" in session.hardening
        parent = worker.cgroup.path.parent
        code = f"""
import os
for path in ({str(parent / "cgroup.procs")!r}, "/sys/fs/cgroup/cgroup.procs"):
    try:
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        print("moved")
    except OSError as exc:
        print(type(exc).__name__)
"""
        result = session.execute(code)
        assert result.output == "PermissionError\nPermissionError\n", result
        assert worker.cgroup.holds(session.pid)
    finally:
        session.close()


@NOBODY
def test_as_nobody_a_fork_bomb_stops_at_the_process_limit():
    limits = Limits(processes=16, cell_timeout_s=2)
    sandbox = SubprocessSandbox(isolation="landlock", python=DEBIAN_PYTHON, limits=limits)
    session = sandbox.start("ctx", Recorder())
    code = "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
    code += "        time.sleep(0.01)\n"
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(session.processes()))
            done.wait(0.05)

    watcher = threading.Thread(target=watch)
    try:
        assert "uid-65534" in session.hardening
        watcher.start()
        result = session.execute(code)
        assert result.timed_out and result.state_lost
        assert 2 < peak[0] <= 16 + 2  # RLIMIT_NPROC: nobody's tasks at the start + 16
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
        session.close()


@pytest.mark.skipif(
    not IS_ROOT or not reachable_by_others([DEBIAN_PYTHON]) or may_limit_other_users(),
    reason="needs a root host without CAP_SYS_RESOURCE and a Python that nobody can run",
)
def test_limits_that_do_not_take_fail_the_start(monkeypatch):
    # This host cannot set another user's rlimits: forced onto the nobody path anyway,
    # the kernel really refuses them, and the start must fail rather than run unlimited.
    monkeypatch.setattr("rlmagent.sandbox.landlock_tier.may_limit_other_users", lambda: True)
    monkeypatch.setattr("rlmagent.sandbox.subprocess._probe_results", {})  # probed afresh
    sandbox = SubprocessSandbox(isolation="landlock", python=DEBIAN_PYTHON)
    with pytest.raises(SandboxError, match="limits did not take"):
        sandbox.start("ctx", Recorder())
    # and without the forcing, a root host like this one keeps uid 0 and its limits
    monkeypatch.undo()
    session = SubprocessSandbox(isolation="landlock", python=DEBIAN_PYTHON).start("c", Recorder())
    try:
        assert "no-capabilities" in session.hardening and "uid-65534" not in session.hardening
        assert soft_limits(session.pid)["Max open files"] == str(Limits().open_files)
    finally:
        session.close()
