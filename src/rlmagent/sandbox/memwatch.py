"""A bound on the memory a sandbox holds in all processes together (``total_memory_bytes``).

``RLIMIT_AS`` bounds each process; nothing in rlimits bounds their sum, so a cell that
starts many processes could take the host's memory. One daemon thread (started with the
first sandbox) looks at every live sandbox every :data:`INTERVAL_S`: it adds up the
resident anonymous and shared memory (``RssAnon`` + ``RssShmem`` of ``/proc/PID/status``,
one small read a process) of the worker and every process below it, and over the limit
SIGKILLs them all. The session notices the dead worker as it would a crash, and tells
the model why. A forked child's pages that it still shares with its parent count in
both (conservative). Linux only: elsewhere nothing is watched.

Memory held outside any process's resident set counts too, where the host can see it:
the bytes in a sandbox's own ``/dev/shm`` (POSIX shared memory; the bubblewrap tier
mounts one per sandbox, reached through ``/proc/<pid>/root``). ``memfd_create`` and
System V segments are denied by the seccomp filter (SECURITY.md); on a machine the
filter does not cover, the memfds each process holds open and the System V segments
its processes created are counted instead (:func:`unfiltered_bytes`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from rlmagent.sandbox.seccomp import build_filter

INTERVAL_S = 0.05
"""How often every sandbox is measured: a fast allocator can overshoot by what it
allocates in this time."""

_FIELDS = (b"RssAnon:", b"RssShmem:")


def resident_bytes(pid: int) -> int:
    """Resident anonymous + shared memory of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    kib = 0
    for line in lines:
        if line.startswith(_FIELDS):
            with contextlib.suppress(ValueError, IndexError):
                kib += int(line.split()[1])
    return kib * 1024


def shm_bytes(pid: int) -> int:
    """Bytes in the ``/dev/shm`` of ``pid``'s root, when that root is not the host's
    (a sandbox's private one); 0 otherwise or if it cannot be read."""
    try:
        root = os.stat(f"/proc/{pid}/root")
        if (root.st_dev, root.st_ino) == _HOST_ROOT:
            return 0  # the host's own /dev/shm: shared with everyone, not attributable
        fs = os.statvfs(f"/proc/{pid}/root/dev/shm")
    except OSError:
        return 0
    return (fs.f_blocks - fs.f_bfree) * fs.f_frsize


def _host_root() -> tuple[int, int]:
    try:
        st = os.stat("/")
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)


_HOST_ROOT = _host_root()


def memfd_bytes(pid: int) -> int:
    """Bytes allocated to the memfds ``pid`` holds open, each file counted once."""
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    seen: set[int] = set()
    total = 0
    for name in names:
        path = f"/proc/{pid}/fd/{name}"
        try:
            if not os.readlink(path).startswith("/memfd:"):
                continue
            st = os.stat(path)
        except OSError:
            continue
        if st.st_ino not in seen:
            seen.add(st.st_ino)
            total += st.st_blocks * 512
    return total


def sysv_bytes(pids: Iterable[int]) -> int:
    """Resident bytes of the System V segments (of this IPC namespace) that ``pids``
    created, attached or not (``/proc/sysvipc/shm``)."""
    wanted = set(pids)
    try:
        with open("/proc/sysvipc/shm", "rb") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return 0
    total = 0
    for line in lines:
        fields = line.split()
        with contextlib.suppress(ValueError, IndexError):
            if int(fields[4]) in wanted:  # cpid; rss is the 15th column, in bytes
                total += int(fields[14])
    return total


def unfiltered_bytes(pids: list[int]) -> int:
    """Memory the seccomp filter would have refused: memfds and System V segments."""
    return sum(memfd_bytes(pid) for pid in pids) + sysv_bytes(pids)


FILTERED = build_filter() is not None
"""Whether this machine's seccomp filter denies memfds and System V segments."""


def total_bytes(pids: Iterable[int]) -> int:
    pids = list(pids)
    total = sum(resident_bytes(pid) for pid in pids) + (shm_bytes(pids[0]) if pids else 0)
    return total if FILTERED else total + unfiltered_bytes(pids)


class Watched(Protocol):
    """What the watch needs of a session."""

    def memory_check(self) -> tuple[list[int], int] | None:
        """The pids of the live sandbox and its limit in bytes, or None (nothing runs)."""
        ...

    def memory_exceeded(self, used: int, limit: int) -> None:
        """Called on the watch thread, just before the processes are killed."""
        ...


class MemoryWatch:
    """One thread measuring every registered session; see the module docstring."""

    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._sessions: weakref.WeakSet[Watched] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, session: Watched) -> None:
        if not os.path.isdir("/proc"):
            return
        with self._lock:
            self._sessions.add(session)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rlmagent-memory-watch", daemon=True
                )
                self._thread.start()

    def discard(self, session: Watched) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                with contextlib.suppress(Exception):  # one bad session must not stop the watch
                    self.check(session)

    @staticmethod
    def check(session: Watched) -> bool:
        """Measure one session; over its limit, tell it, then kill its processes. True then."""
        found = session.memory_check()
        if found is None:
            return False
        pids, limit = found
        used = total_bytes(pids)
        if used <= limit:
            return False
        session.memory_exceeded(used, limit)  # first: the session reads it once they die
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        return True


WATCH = MemoryWatch()
"""The process's one watch."""
