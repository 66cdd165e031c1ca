"""The worker's process tree, read from ``/proc``: listing, stopping, killing, limits.

What every tier's :class:`~rlmagent.sandbox.process.Worker` uses to find the processes a
cell started (:func:`children`, :func:`descendants`, :func:`tree`), to take them down
(:func:`stop_tree`, then :func:`kill_tree`; :func:`wait_gone` to see one gone), and to
read and set a process's CPU time and rlimits (:func:`cpu_seconds`, :func:`set_limit`,
:func:`user_tasks`). Pids only, no handles: nothing here trusts what a process says.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux/macOS
    resource = None  # type: ignore[assignment]

KILL_ROUNDS = 50
"""Passes over the worker's descendants when killing (a fork bomb respawns between)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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
