"""Adversarial suite, resources: runaway time, memory, threads, processes, output, disk.

Each case, in every tier: the host survives and stays responsive (the session keeps
answering), the model gets a clear observation, and the run continues with its state
kept, or reported as lost after a kill. Every process of a session must be gone after
``close()`` (checked by ``open_session``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

from rlmagent.sandbox import SubprocessSandbox
from rlmagent.sandbox.process import wait_gone

from .helpers import assert_continues, open_session, runs_as_root

MB = 1024**2


def test_infinite_loop_is_killed_and_the_loss_reported(tier):
    with open_session(tier, cell_timeout_s=1) as session:
        session.execute("x = 41")
        result = session.execute("while True:\n    pass")
        assert result.timed_out and result.state_lost
        assert "timed out after 1 s" in result.error and "lost" in result.error
        assert session.execute("print('x' in dir())").output == "False\n"
        assert_continues(session)


def test_sleeping_forever_is_killed(tier):
    with open_session(tier, cell_timeout_s=1) as session:
        result = session.execute("import time\ntime.sleep(10**6)")
        assert result.timed_out and result.state_lost
        assert_continues(session)


def test_a_loop_that_ignores_sigxcpu_is_killed_by_the_cpu_limit(tier):
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass"
    with open_session(tier, cpu_seconds=1, cell_timeout_s=60) as session:
        result = session.execute(code)
        assert result.state_lost and not result.timed_out  # the CPU limit came first
        assert "SIGKILL" in result.error and "1 s of CPU time" in result.error
        assert_continues(session)


def test_memory_bomb_is_a_memory_error_and_state_is_kept(tier):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(16 * 1024**2))"
    with open_session(tier, memory_bytes=512 * MB) as session:
        session.execute("kept = 'yes'")
        result = session.execute(code)
        assert "MemoryError" in result.error and not result.state_lost
        session.execute("del blocks")
        assert_continues(session, state="kept")


HOG = """
import os, time
for _ in range({n}):
    if os.fork() == 0:
        time.sleep({wait})
        held = b"x" * ({mb} * 1024**2)
        time.sleep(60)
        os._exit(0)
"""


def test_processes_over_total_memory_are_all_killed(tier):
    """Each child stays under memory_bytes; together they pass total_memory_bytes."""
    code = HOG.format(n=3, wait=0, mb=200) + "time.sleep(30)"
    with open_session(tier, total_memory_bytes=400 * MB, cell_timeout_s=60) as session:
        session.execute("x = 1")
        result = session.execute(code)
        assert result.state_lost and not result.timed_out, result
        assert "Limits.total_memory_bytes" in result.error and "400 MiB" in result.error
        assert result.duration_s < 20  # the watch killed them, not the cell's timeout
        assert_continues(session)


def test_memory_taken_between_cells_is_caught_at_the_next_cell(tier):
    with open_session(tier, total_memory_bytes=300 * MB) as session:
        started = session.execute(HOG.format(n=1, wait=0.3, mb=500))
        assert started.error is None, started.error
        time.sleep(2)  # the background child takes its 500 MB meanwhile
        result = session.execute("print('next')")
        assert result.state_lost and "Limits.total_memory_bytes" in result.error
        assert_continues(session)


def test_thread_bomb_stops_at_a_limit(tier):
    code = """
import threading, time
started = 0
try:
    while True:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        started += 1
except RuntimeError as exc:
    print(started, exc)
"""
    with open_session(tier, processes=16, memory_bytes=512 * MB) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        started, message = result.output.split(" ", 1)
        assert "can't start new thread" in message
        # bwrap: RLIMIT_NPROC in the sandbox's user namespace; plain tier: the threads'
        # stacks exhaust RLIMIT_AS (as root, RLIMIT_NPROC is not enforced).
        assert int(started) <= (16 if tier == "bwrap" else 200)
        assert_continues(session, state="started")


def test_fork_bomb_is_bounded_and_every_process_is_killed(tier):
    if runs_as_root(tier):
        pytest.skip(
            f"the {tier} tier runs model code as root here, with no process limit (the "
            "kernel never applies RLIMIT_NPROC to root): an unbounded fork bomb could take "
            "the machine down"
        )
    code = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""
    with open_session(tier, processes=16, cell_timeout_s=2) as session:
        peak = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], len(session.processes()))
                done.wait(0.05)

        watcher = threading.Thread(target=watch)
        watcher.start()
        old = session.processes()
        try:
            result = session.execute(code)
        finally:
            done.set()
            watcher.join()
        assert result.timed_out and result.state_lost
        if tier == "bwrap":  # PID 1 + the worker + at most `processes` tasks
            assert 2 < peak[0] <= 16 + 2
        assert all(wait_gone(pid, 5.0) for pid in old)
        assert_continues(session)


def test_children_that_call_setsid_die_with_the_cell(tier):
    spawn = """
import os, subprocess
subprocess.Popen(["sleep", "1000"], start_new_session=True)
child = os.fork()
if child == 0:  # a daemon: new session, double fork, the middle process exits
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "1001"])
    os._exit(0)
os.waitpid(child, 0)
print("spawned")
"""
    with open_session(tier, cell_timeout_s=1) as session:
        assert session.execute(spawn).output == "spawned\n"
        before = _sleepers(session, 2)  # they outlived the cell
        result = session.execute("while True:\n    pass")
        assert result.timed_out
        assert all(wait_gone(pid, 5.0) for pid in before)
        assert_continues(session)


def _sleepers(session, count: int) -> list[int]:
    """Every process of the session once ``count`` of them run ``sleep`` (5 s at most)."""
    for _ in range(500):
        found = session.processes()
        if sum(_cmdline(pid).startswith("sleep") for pid in found) == count:
            return found
        time.sleep(0.01)
    raise AssertionError(f"no {count} sleepers among {session.processes()}")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_printing_100_mb_keeps_only_the_output_cap(tier):
    with open_session(tier) as session:
        result = session.execute("print('x' * 100_000_000)")
        assert len(result.output) < 11_000
        assert "99,990,001 more characters cut" in result.output
        result = session.execute("for _ in range(100):\n    print('y' * 1_000_000)")
        assert len(result.output) < 11_000 and "more characters cut" in result.output
        assert_continues(session)


def test_writing_a_huge_file_stops_at_the_file_size_limit(tier):
    code = """
import os
try:
    with open("big.bin", "wb") as f:
        f.write(b"x" * (64 * 1024**2))
except OSError as exc:
    print(exc.strerror)
print(os.path.getsize("big.bin"))
"""
    with open_session(tier, file_size_bytes=8 * MB) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        message, size = result.output.strip().rsplit("\n", 1)
        assert message == "File too large"
        assert int(size) <= 8 * MB
        assert_continues(session)


def test_filling_the_disk_with_small_files_stops_at_the_disk_limit(tier):
    if tier in ("process", "landlock"):
        pytest.skip(
            f"the {tier} tier has no bound on total bytes written (see SECURITY.md); "
            "filling the host's disk in a test would do harm"
        )
    code = """
import os
n = 0
try:
    while True:
        with open(f"f{n}.txt", "w") as f:
            f.write("x" * 1000)
        n += 1
except OSError as exc:
    print(n, exc.errno)
try:
    with open("/tmp/more.bin", "wb") as f:
        f.write(b"y" * 4096)
except OSError as exc:
    print("tmp", exc.errno)
"""
    with open_session(tier, disk_bytes=16 * MB) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        match = re.fullmatch(r"(\d+) 28\ntmp 28\n", result.output)  # ENOSPC both times
        assert match, result.output
        assert int(match.group(1)) <= 16 * MB // 4096  # a page per small file
        assert sorted(p.name for p in session.workdir.iterdir()) == ["context.txt"]
        session.execute("import os\nfor n in range(n):\n    os.remove(f'f{n}.txt')")
        assert_continues(session, state="n")


HOST = """
import json, sys
from rlmagent.sandbox import SubprocessSandbox
from rlmagent.sandbox.process import DEFAULT_WORKER, staged_worker
session = SubprocessSandbox(isolation=sys.argv[1]).start("c", None)
session.execute("import subprocess\\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)")
dirs = [str(session.workdir), str(staged_worker(DEFAULT_WORKER))]
print(json.dumps([session.pid, session.processes(), dirs]), flush=True)
sys.stdin.read()
"""


def test_the_sandbox_dies_with_its_host(tier):
    with subprocess.Popen(
        [sys.executable, "-c", HOST, tier], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as host:
        try:
            worker, pids, dirs = json.loads(host.stdout.readline())
            assert len(pids) >= 2
        finally:
            host.kill()  # SIGKILL: no clean-up code of the host runs
    for path in dirs:  # so it leaves its directories behind (SECURITY.md)
        shutil.rmtree(path)
    assert wait_gone(worker, 5.0)
    survivors = [pid for pid in pids if not wait_gone(pid, 5.0 if tier == "bwrap" else 0.5)]
    for pid in survivors:  # the plain tier's setsid child outlives it: SECURITY.md
        os.kill(pid, signal.SIGKILL)
    assert survivors == [] if tier == "bwrap" else len(survivors) <= 1


def test_a_session_outlives_the_thread_that_started_it(tier):
    # "Dies with its parent" follows the starting *thread*: the agent starts sessions on
    # pooled threads that exit when idle, and that must not kill a live sandbox.
    started = {}

    def start() -> None:
        sandbox = SubprocessSandbox(isolation=tier)
        started["session"] = sandbox.start("c", None)
        started["session"].execute("kept = 7")

    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
    session = started["session"]
    try:
        time.sleep(0.2)  # give a parent-death signal time to arrive
        result = session.execute("print(kept)")
        assert result.error is None and result.output == "7\n", result
    finally:
        session.close()


def test_opening_too_many_files_stops_at_the_limit(tier):
    code = """
handles = []
open("some.txt", "w").close()
try:
    while True:
        handles.append(open("some.txt"))
except OSError as exc:
    print(len(handles), exc.strerror)
for handle in handles:
    handle.close()
"""
    with open_session(tier, open_files=64) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        count, message = result.output.strip().split(" ", 1)
        assert message == "Too many open files" and int(count) < 64
        assert_continues(session, state="handles")
