"""A cgroup v2 per worker, where the machine delegates one: a kill no process can leave.

A process can leave its parent's process tree (a double fork under another reaper, a
sibling made with ``CLONE_PARENT``) and can keep others running (a helper that sends
``SIGCONT`` while the host stops the tree), but it cannot leave its cgroup without
write access to another cgroup's ``cgroup.procs``. Where this process's own cgroup v2
directory is writable (root, or a delegated systemd scope), the plain tiers put each
worker into a fresh child cgroup before it runs anything, list its processes from
``cgroup.procs`` and kill them all at once with ``cgroup.kill`` (Linux 5.14; else the
group is frozen, every member SIGKILLed, and thawed). Elsewhere :meth:`Cgroup.create`
returns None and the callers fall back to stopping and sweeping the process tree.

A model running as root in the plain tier can still move itself to another cgroup
(it can write anywhere): SECURITY.md says so.

A host killed with SIGKILL cannot kill its workers' groups; the first group made by a
later process kills what is left in the groups of hosts that are gone (named
``rlmagent-<pid namespace>-<host pid>-<n>``: only hosts of its own PID namespace, whose pid
is no longer alive) and removes them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import threading
import time
from pathlib import Path

EMPTY_WAIT_S = 5.0
NAME = re.compile(r"rlmagent-(\d+)-(\d+)-\d+")
_counter = itertools.count(1)
_swept = False
_sweep_lock = threading.Lock()


def own_cgroup() -> Path | None:
    """This process's cgroup v2 directory, or None (no unified hierarchy mounted)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            relative = next((line.strip()[3:] for line in f if line.startswith("0::")), None)
        if relative is None:
            return None
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                tail = fields[fields.index("-") + 1 :] if "-" in fields else []
                if tail and tail[0] == "cgroup2" and fields[3] == "/":
                    return Path(fields[4]) / relative.lstrip("/")
    except (OSError, ValueError):
        return None
    return None


class Cgroup:
    """One worker's cgroup (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls) -> Cgroup | None:
        """A fresh child of this process's cgroup, or None where none can be made."""
        parent = own_cgroup()
        if parent is None or not os.access(parent, os.W_OK):
            return None
        sweep_abandoned(parent)
        path = parent / f"rlmagent-{_pid_namespace()}-{os.getpid()}-{next(_counter)}"
        try:
            path.mkdir()
        except OSError:
            return None
        return cls(path)

    def add(self, pid: int) -> bool:
        """Move ``pid`` into the group; False (and the group removed) if that fails."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
            return True
        except OSError:
            self.remove()
            return False

    def limit_memory(self, limit: int) -> bool:
        """Cap the group's memory at ``limit`` bytes (``memory.max``, no swap) where the
        memory controller is delegated to it; False where it is not. The kernel then
        counts everything the group's processes use, memfds and shared memory included,
        and reclaims or kills within it."""
        target = self.path / "memory.max"
        if not target.exists():
            return False
        try:
            target.write_text(f"{int(limit)}\n")
            swap = self.path / "memory.swap.max"
            if swap.exists():
                swap.write_text("0\n")
        except OSError:
            return False
        return True

    def holds(self, pid: int) -> bool:
        """Whether the kernel reports ``pid`` in this group."""
        try:
            with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.startswith("0::")]
        except OSError:
            return False
        return bool(lines) and self.path.as_posix().endswith(lines[0][3:])

    def pids(self) -> list[int]:
        """Every process in the group now."""
        try:
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """SIGKILL every process in the group and wait until it is empty."""
        killer = self.path / "cgroup.kill"
        try:
            killer.write_text("1\n")
        except OSError:
            self._freeze_and_kill()
        deadline = time.monotonic() + EMPTY_WAIT_S
        while self.pids() and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                killer.write_text("1\n")
            time.sleep(0.002)

    def _freeze_and_kill(self) -> None:
        freezer = self.path / "cgroup.freeze"
        with contextlib.suppress(OSError):
            freezer.write_text("1\n")
        for _ in range(10):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            freezer.write_text("0\n")

    def remove(self) -> None:
        """Delete the (empty) group; a group that cannot be removed yet is left."""
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.002)


def _pid_namespace() -> int:
    """The inode of this process's PID namespace (0 where it cannot be read)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_abandoned(parent: Path) -> list[Path]:
    """Once per process: kill and remove the groups in ``parent`` of hosts that are gone."""
    global _swept
    with _sweep_lock:
        if _swept:
            return []
        _swept = True
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        match = NAME.fullmatch(entry.name)
        if match is None or not entry.is_dir(follow_symlinks=False):
            continue
        namespace, pid = int(match.group(1)), int(match.group(2))
        if namespace != _pid_namespace() or pid == os.getpid() or _alive(pid):
            continue  # another namespace's host (its pids mean nothing here), or alive
        group = Cgroup(Path(entry.path))
        group.kill()
        group.remove()
        if not os.path.exists(entry.path):
            removed.append(Path(entry.path))
    return removed
