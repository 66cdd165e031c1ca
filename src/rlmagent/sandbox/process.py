"""Launching and killing worker processes: the plain tier, and what every tier shares.

A *launcher* starts one worker process for a session and returns a :class:`Worker`
handle: the pipes of the frame channel, the host pid of the Python worker (for its
rlimits), and a ``kill`` that takes down every process the worker started.

The plain tier (:class:`ProcessLauncher`) runs the worker as a child process of the host
with an empty environment and rlimits. To kill every process a cell started, including
ones that left the process group with ``setsid``, the worker is put into a cgroup of its
own where one can be made (:mod:`rlmagent.sandbox.cgroups`: killed as a whole); else it
makes itself a "child subreaper" (orphaned descendants are re-parented to it, not to
init), the seccomp filter denies ``CLONE_PARENT`` (a sibling would be the host's child),
and the host stops every process of the tree until none is left running (so no helper
can ``SIGCONT`` the others), then kills them all before the worker itself.

The channel is a pair of Unix socket pairs, not pipes: a socket cannot be opened through
``/proc/<pid>/fd/N``, so model code of one worker that can see the host's descriptors
(the plain tier) cannot write frames into another session's channel.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, TypeVar

from rlmagent.errors import SandboxError
from rlmagent.sandbox.base import Limits
from rlmagent.sandbox.cgroups import Cgroup
from rlmagent.sandbox.channel import Channel
from rlmagent.sandbox.kernel import Expected, verify
from rlmagent.sandbox.seccomp import build_filter
from rlmagent.sandbox.staging import (  # noqa: F401 - LAUNCH re-exported
    DEFAULT_WORKER,
    LAUNCH,
    staged_worker,
    worker_command,
)

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux/macOS
    resource = None  # type: ignore[assignment]

T = TypeVar("T")
KILL_ROUNDS = 50
"""Passes over the worker's descendants when killing (a fork bomb respawns between)."""
EXIT_WAIT_S = 5.0
CPU_GRACE_S = 1
"""After the per-cell CPU limit sends SIGXCPU, seconds more until SIGKILL."""
STDERR_KEPT = 4000
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def clean_env(home: str) -> dict[str, str]:
    """The whole environment of a worker: nothing inherited from the host."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home}


def signal_name(status: int) -> str:
    try:
        return signal.Signals(status).name
    except ValueError:
        return f"signal {status}"


def _process_table() -> dict[int, int]:
    """``{pid: parent pid}`` of every visible live process (zombies left out)."""
    table: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
            fields = stat.rsplit(b")", 1)[1].split()
            if fields[0] not in (b"Z", b"X"):
                table[int(entry.name)] = int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    return table


def children(pid: int) -> list[int]:
    """Direct children of ``pid``: the kernel's per-thread lists, else a ``/proc`` scan."""
    try:
        found: list[int] = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                found += [int(child) for child in f.read().split()]
        return found
    except (OSError, ValueError):
        return [child for child, parent in _process_table().items() if parent == pid]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (Linux ``/proc``)."""
    if not os.path.isdir("/proc"):
        return []
    children: dict[int, list[int]] = {}
    for child, parent in _process_table().items():
        children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and every live process below it, by the kernel's per-thread child lists.

    Cheaper than :func:`descendants` (a few small reads instead of all of ``/proc``), for
    measuring; killing keeps the full snapshot, which leaves zombies out.
    """
    if not os.path.isdir("/proc"):
        return [pid]
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL every descendant of ``pid``, round after round until none is left."""
    for _ in range(KILL_ROUNDS):
        found = descendants(pid)
        if not found:
            return
        for child in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)


def cpu_seconds(pid: int) -> int:
    """CPU time (user + system) used so far by process ``pid``, rounded up to seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return -(-(int(fields[11]) + int(fields[12])) // CLOCK_TICKS)
    except (OSError, ValueError, IndexError):
        return 0


def set_limit(pid: int, name: str, soft: int, hard: int | None = None) -> None:
    """Set one rlimit of another process (Linux ``prlimit``); ignore what cannot be set."""
    if resource is None or not hasattr(resource, "prlimit") or not hasattr(resource, name):
        return
    # If the worker already exited, the next read reports it.
    with contextlib.suppress(OSError, ValueError):
        resource.prlimit(pid, getattr(resource, name), (soft, soft if hard is None else hard))


def user_tasks(uid: int) -> int:
    """Processes and threads of ``uid`` now (what ``RLIMIT_NPROC`` counts for it)."""
    count = 0
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            continue
    return count


class Worker:
    """A started worker: its process, channel and host pid; subclasses decide the kill."""

    def __init__(self, proc: subprocess.Popen[bytes], channel: Channel, stderr: IO[bytes]):
        self.proc = proc
        self.channel = channel
        self.stderr = stderr
        self.pid = proc.pid
        """Host pid of the Python worker (where rlimits go); known once it is ready."""
        self.init: dict[str, Any] = {}
        """Extra fields for the ``init`` frame (privileges to drop, hardening to apply)."""
        self.hardening: list[str] = []
        """Protections in force, as the kernel reports them (``"seccomp"``...)."""
        self.expected = Expected()
        """What the kernel must confirm before model code runs (see :mod:`.kernel`)."""
        self.cgroup: Cgroup | None = None
        self._kill_lock = threading.Lock()
        self._stopped = False
        self._io_closed = False

    def ready(self, limits: Limits, message: dict[str, Any]) -> None:
        """The worker said ``ready`` and no model code has run yet: check what the kernel
        says is in force (never the worker's own report), then apply the limits. A worker
        that is not hardened as required is killed (SandboxError)."""
        try:
            self.hardening += verify(self.pid, self.expected)
            if self.cgroup is not None and self.cgroup.holds(self.pid):
                self.hardening.append("cgroup")
        except SandboxError:
            self.kill()
            raise
        self.apply_limits(limits)
        if self.cgroup is not None and self.cgroup.limit_memory(limits.total_memory_bytes):
            self.hardening.append("cgroup-memory-max")

    def apply_limits(self, limits: Limits) -> None:
        for name, value in (
            ("RLIMIT_AS", limits.memory_bytes),
            ("RLIMIT_FSIZE", limits.file_size_bytes),
            ("RLIMIT_NOFILE", limits.open_files),
            ("RLIMIT_CORE", 0),
        ):
            set_limit(self.pid, name, value)
        nproc = self.process_limit(limits)
        if nproc is not None:
            set_limit(self.pid, "RLIMIT_NPROC", nproc)

    def process_limit(self, limits: Limits) -> int | None:
        """``RLIMIT_NPROC`` for the worker, or None where it cannot work (root)."""
        if os.getuid() == 0 or not os.path.isdir("/proc"):
            return None  # never enforced for root (SECURITY.md); not countable here
        return user_tasks(os.getuid()) + limits.processes

    def limit_cpu(self, seconds: int) -> None:
        """Allow the worker ``seconds`` more CPU time (a cell starts): then SIGXCPU, and
        ``CPU_GRACE_S`` later SIGKILL. Raising a hard limit needs privileges: without
        them only SIGXCPU is sent, and a cell that ignores it runs into its wall-clock
        timeout instead."""
        soft = cpu_seconds(self.pid) + seconds
        if os.geteuid() == 0:
            set_limit(self.pid, "RLIMIT_CPU", soft, soft + CPU_GRACE_S)
        elif resource is not None:
            set_limit(self.pid, "RLIMIT_CPU", soft, resource.RLIM_INFINITY)

    def processes(self) -> list[int]:
        """Host pids of every process of this worker's sandbox that is still alive."""
        return tree(self.pid)

    def kill(self) -> None:
        """Kill every process of the worker (once), then close its descriptors."""
        self.stop()
        self.close_io()

    def stop(self) -> None:
        """Kill every process of the worker, once, keeping the channel's descriptors: a
        cell's thread may still be reading them (closing them under it would free their
        numbers for the next descriptor anyone opens). Safe from any thread, any number
        of times; the pids are never used again once the worker was reaped."""
        with self._kill_lock:
            if not self._stopped:
                self._stopped = True
                self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def exit_reason(self) -> str:
        """Why the worker ended, for the model's observation."""
        status = self.proc.poll()
        if status is None:
            return "it stopped answering"
        if status < 0:
            return f"killed by {signal_name(-status)}"
        return f"exit status {status}"

    def startup_errors(self) -> str:
        """What the worker (or its launcher) printed to stderr before it was ready."""
        try:
            self.stderr.seek(0)
            return self.stderr.read(STDERR_KEPT).decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def _reap(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)

    def close_io(self) -> None:
        """Close the channel and the stderr file, once (a second close of a descriptor
        number could close whatever reused it)."""
        with self._kill_lock:
            if self._io_closed:
                return
            self._io_closed = True
        self.channel.close()
        with contextlib.suppress(OSError):
            self.stderr.close()


class ProcessWorker(Worker):
    """A plain child process (see the module docstring for how it is killed)."""

    def __init__(self, proc: subprocess.Popen[bytes], channel: Channel, stderr: IO[bytes]):
        super().__init__(proc, channel, stderr)
        # Before the worker has read its init frame: nothing of the model's has run yet.
        cgroup = Cgroup.create() if sys.platform.startswith("linux") else None
        if cgroup is not None and cgroup.add(self.pid):
            self.cgroup = cgroup

    def processes(self) -> list[int]:
        found = tree(self.pid)
        if self.cgroup is not None:
            found += [pid for pid in self.cgroup.pids() if pid not in found]
        return found

    def _stop(self) -> None:
        if self.cgroup is not None:
            self.cgroup.kill()
        if self.proc.poll() is None:  # not reaped: the pid is still the worker's
            # Stop them all first: stopped processes cannot fork, nor wake each other.
            stop_tree(self.pid)
            kill_tree(self.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self._reap(EXIT_WAIT_S)
        if self.cgroup is not None:
            self.cgroup.kill()  # anything that was between the tree and the group
            self.cgroup.remove()


def _state(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return b"X"


def stop_tree(pid: int) -> None:
    """SIGSTOP ``pid`` and every descendant, round after round, until one round finds
    every one of them stopped (or gone): none is left that could fork or ``SIGCONT``
    another while they are killed."""
    for _ in range(KILL_ROUNDS):
        found = [pid, *descendants(pid)]
        for child in found:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGSTOP)
        if all(_state(child) in (b"T", b"t", b"Z", b"X") for child in found) and set(found) == {
            pid,
            *descendants(pid),
        }:
            return


class _Spawner:
    """One long-lived thread that starts every worker process.

    "Dies with its parent" (``PR_SET_PDEATHSIG``, bubblewrap's ``--die-with-parent``)
    follows the *thread* that started a process: started from a pooled thread that later
    exits, a sandbox would be killed mid-run. Started from this thread, which lives as
    long as the host process, it dies with the host and only then.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[T] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rlmagent-sandbox-spawner", daemon=True
                )
                self._thread.start()
            self._jobs.put((fn, future))
        return future.result()

    def _run(self) -> None:
        while True:
            fn, future = self._jobs.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(
    argv: list[str],
    *,
    cwd: str | Path,
    env: dict[str, str],
    pass_fds: tuple[int, ...] = (),
) -> tuple[subprocess.Popen[bytes], Channel, IO[bytes]]:
    """Start ``argv`` with a fresh frame channel on its stdin/stdout.

    The umask is fixed so that directories bubblewrap creates (parents of the bound
    Python installation) can be traversed by the unprivileged sandbox user.
    """
    to_worker_r, to_worker_w = _socket_pair()
    from_worker_r, from_worker_w = _socket_pair()
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the worker's life
    try:
        proc = _SPAWNER.call(
            lambda: subprocess.Popen(
                argv,
                stdin=to_worker_r,
                stdout=from_worker_w,
                stderr=stderr,
                cwd=cwd,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,
                close_fds=True,
                umask=0o022,
            )
        )
    except BaseException:
        for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
            os.close(fd)
        stderr.close()
        raise
    os.close(to_worker_r)
    os.close(from_worker_w)
    return proc, Channel(from_worker_r, to_worker_w), stderr


def _socket_pair() -> tuple[int, int]:
    """Descriptors of a connected pair: the first end reads, the second writes."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        reader.shutdown(socket.SHUT_WR)
        writer.shutdown(socket.SHUT_RD)
    return reader.detach(), writer.detach()


class ProcessLauncher:
    """The plain tier: the worker as a child process with rlimits and a clean env."""

    isolation = "process"

    def __init__(self, python: str, worker: Path) -> None:
        self.python = python
        self.worker = worker
        self.seccomp = build_filter(deny_sockets=True)  # no network namespace here

    def launch(self, workdir: Path) -> Worker:
        staged = staged_worker(self.worker) if self.worker == DEFAULT_WORKER else None
        script = staged / "worker.py" if staged else self.worker
        proc, channel, stderr = spawn(
            worker_command(self.python, str(script), staged is not None),
            cwd=workdir,
            env=clean_env(str(workdir)),
        )
        worker = ProcessWorker(proc, channel, stderr)
        harden: dict[str, Any] = {"subreaper": True, "parent_death_signal": True}
        if self.seccomp is not None:
            harden["seccomp"] = self.seccomp.hex()
            if self.worker == DEFAULT_WORKER:  # a stand-in worker of the tests may not
                worker.expected = Expected(seccomp=True, no_new_privs=True)
        worker.init = {"harden": harden}
        return worker


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` is gone or a zombie; True if it is."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X"):
                    return True
        except (OSError, IndexError):
            return True
        time.sleep(0.005)
    return False
