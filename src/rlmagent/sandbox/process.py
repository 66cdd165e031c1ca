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

How a worker is started (the channel of Unix socket pairs, the clean environment) is in
:mod:`rlmagent.sandbox.spawn`; the process-tree helpers (listing, stopping, killing,
rlimits) in :mod:`rlmagent.sandbox.proctree`. Both are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from rlmagent.errors import SandboxError
from rlmagent.sandbox.base import Limits
from rlmagent.sandbox.cgroups import Cgroup
from rlmagent.sandbox.channel import Channel
from rlmagent.sandbox.kernel import Expected, verify
from rlmagent.sandbox.proctree import (  # noqa: F401 - the tree helpers re-exported
    KILL_ROUNDS,
    children,
    cpu_seconds,
    descendants,
    kill_tree,
    set_limit,
    signal_name,
    stop_tree,
    tree,
    user_tasks,
    wait_gone,
)
from rlmagent.sandbox.seccomp import build_filter
from rlmagent.sandbox.spawn import SAFE_PATH, clean_env, spawn  # noqa: F401 - re-exported
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

EXIT_WAIT_S = 5.0
CPU_GRACE_S = 1
"""After the per-cell CPU limit sends SIGXCPU, seconds more until SIGKILL."""
STDERR_KEPT = 4000


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
