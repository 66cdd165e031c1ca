"""The Landlock tier: a plain child process that Landlock confines before the worker runs.

For machines where bubblewrap is missing or cannot run (no user namespaces): the worker
is started through :mod:`rlmagent.sandbox.landlock` as a launcher, which restricts the
process and then ``exec``\\ s the worker, so no line of the worker (let alone model code)
runs outside the domain. What the worker may touch:

- read and run: ``/usr`` (and ``/bin``, ``/lib``... ), the Python installation; read:
  the worker's own code (its staged directory), ``/etc/ld.so.cache``, ``/etc/localtime``,
  ``/dev/zero``, ``/dev/urandom``, ``/dev/random``;
- read and write: its work directory and ``/dev/null``; nothing else of the file system
  (no home, no ``/tmp`` beyond its work directory, no ``/proc`` at all, no ``/etc``);
- no TCP bind or connect (ABI 4+); no signal to, and no abstract unix socket of, any
  process outside its domain (ABI 6+); plus the plain tier's seccomp filter (which
  also denies ``socket``), rlimits, the memory watch and the process-tree kill.

Where the host runs as root, model code must not run as root: the launcher switches to
``nobody`` (``SANDBOX_UID``) when that user can reach the Python installation and the
host may set another user's rlimits (``CAP_SYS_RESOURCE``); where not (a Python under
``/root``, mode 0700; a container that dropped the capability), it stays uid 0 with every
capability dropped for good. The host reads what is in force from the kernel before any
model code runs, not from the worker's word: ``/proc/<pid>/status`` (uids,
``NoNewPrivs``, ``Seccomp``, the capability sets) and ``/proc/<pid>/limits`` (a limit
that did not take fails the start). There is no PID, IPC or network namespace: see
SECURITY.md for what that leaves.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from rlmagent.errors import SandboxError
from rlmagent.sandbox.base import Limits
from rlmagent.sandbox.bwrap import OPTIONAL_FILES, ROOT_LINKS, SANDBOX_UID, python_paths
from rlmagent.sandbox.kernel import Expected
from rlmagent.sandbox.landlock import abi_version, rights
from rlmagent.sandbox.process import ProcessWorker, Worker
from rlmagent.sandbox.proctree import user_tasks
from rlmagent.sandbox.seccomp import build_filter
from rlmagent.sandbox.spawn import clean_env, spawn
from rlmagent.sandbox.staging import DEFAULT_WORKER, staged_worker, worker_command

LAUNCHER = Path(__file__).with_name("landlock.py")
READ_DEVICES = ("/dev/zero", "/dev/urandom", "/dev/random")
MIN_ABI = 1


def reachable_by_others(paths: list[str]) -> bool:
    """Whether a user who owns none of ``paths`` can reach them: every ancestor
    directory searchable by "others", each path itself readable and searchable."""
    for path in paths:
        parts = Path(os.path.realpath(path)).parts
        for depth in range(1, len(parts) + 1):
            try:
                mode = os.stat(os.path.join(*parts[:depth])).st_mode
            except OSError:
                return False
            need = stat.S_IXOTH  # a directory on the way: searchable
            if depth == len(parts) and stat.S_ISDIR(mode):
                need = stat.S_IROTH | stat.S_IXOTH
            elif depth == len(parts):  # a program must run, a script be read
                need = stat.S_IXOTH if mode & stat.S_IXUSR else stat.S_IROTH
            if mode & need != need:
                return False
    return True


CAP_SYS_RESOURCE = 24
LIMIT_NAMES = {
    "Max address space": "memory_bytes",
    "Max file size": "file_size_bytes",
    "Max open files": "open_files",
}


def may_limit_other_users() -> bool:
    """Whether this (root) process holds ``CAP_SYS_RESOURCE``, without which it cannot
    set the rlimits of a process running as another user (containers often drop it)."""
    caps = kernel_status(os.getpid()).get("CapEff", "0")
    return bool(int(caps, 16) >> CAP_SYS_RESOURCE & 1)


def soft_limits(pid: int) -> dict[str, str]:
    """``{"Max address space": "4294967296", ...}``: the soft limits of ``pid``."""
    found: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/limits", encoding="ascii", errors="replace") as f:
            for line in f:
                for name in (*LIMIT_NAMES, "Max processes"):
                    if line.startswith(name):
                        found[name] = line[len(name) :].split()[0]
    except OSError:
        pass
    return found


def kernel_status(pid: int) -> dict[str, str]:
    """The fields of ``/proc/<pid>/status`` (``Uid``, ``NoNewPrivs``, ``CapEff``...)."""
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
    except OSError:
        pass
    return fields


class LandlockWorker(ProcessWorker):
    """A worker confined by Landlock; killed like the plain tier's (its process tree)."""

    def __init__(self, *args: Any, uid: int, abi: int) -> None:
        super().__init__(*args)
        self.uid = uid
        self.abi = abi
        self.nproc: int | None = None

    def ready(self, limits: Limits, message: dict[str, Any]) -> None:
        self.hardening += self.verify()
        super().ready(limits, message)
        self.check_limits(limits)

    def check_limits(self, limits: Limits) -> None:
        """The rlimits the host set, as the kernel reports them (``/proc/<pid>/limits``):
        a limit that did not take is a failed start, not a silent gap."""
        found = soft_limits(self.pid)
        expected = {name: str(getattr(limits, field)) for name, field in LIMIT_NAMES.items()}
        if self.nproc is not None:
            expected["Max processes"] = str(self.nproc)
        wrong = {
            name: found.get(name) for name, value in expected.items() if found.get(name) != value
        }
        if wrong:
            raise SandboxError(
                f"the Landlock worker's limits did not take: {wrong} (wanted {expected})"
            )

    def verify(self) -> list[str]:
        """The Landlock rights in force. The kernel confirms the rest before model code
        runs (``expected``: uid, no_new_privs, seccomp, no effective capabilities; here
        also, for uid 0, empty permitted and bounding sets); SandboxError if not."""
        if self.uid == 0:
            status = kernel_status(self.pid)
            caps = {key: status.get(key, "") for key in ("CapPrm", "CapBnd", "CapAmb")}
            if any(not value or int(value, 16) for value in caps.values()):
                # the session kills the worker (once) when its start fails
                raise SandboxError(f"the Landlock worker kept capabilities ({caps})")
        _, net, scoped = rights(self.abi)
        found = [f"landlock-abi-{self.abi}", "landlock-fs"]
        found += ["landlock-tcp"] if net else []
        found += ["landlock-scoped"] if scoped else []
        return found

    def process_limit(self, limits: Limits) -> int | None:
        if self.uid == 0:
            return None  # the kernel never applies RLIMIT_NPROC to uid 0 (SECURITY.md)
        self.nproc = user_tasks(self.uid) + limits.processes  # what check_limits expects
        return self.nproc


class LandlockLauncher:
    """Starts workers through the Landlock launcher (see the module docstring)."""

    isolation = "landlock"

    def __init__(self, python: str, worker: Path) -> None:
        found = shutil.which(python) or python
        self.python = os.path.realpath(found)
        self.worker = worker
        self.abi, self.problem = abi_version()
        if self.problem is None and self.abi < MIN_ABI:
            self.problem = f"Landlock ABI {self.abi} is too old"
        self.seccomp = build_filter(deny_sockets=True)  # no network namespace here

    def script(self) -> tuple[Path, bool]:
        """The worker script to run and whether it is the staged (compiled) copy."""
        staged = staged_worker(self.worker) if self.worker == DEFAULT_WORKER else None
        return (staged / "worker.py", True) if staged else (self.worker, False)

    def rules(self, workdir: Path, script: Path) -> list[tuple[str, str]]:
        """``(access, path)`` pairs for the launcher's ``--allow`` options."""
        rules = [("rx", "/usr")]
        rules += [("rx", link) for link in ROOT_LINKS if os.path.isdir(link)]
        rules += [("rx", path) for path in python_paths(self.python)]
        rules += [("r", path) for path in OPTIONAL_FILES]
        rules.append(("r", str(script.parent)))
        rules += [("r", path) for path in READ_DEVICES]
        rules += [("rw", str(workdir)), ("rw", "/dev/null")]
        return rules

    def user(self, script: Path) -> tuple[int, int] | None:
        """The user to switch to: ``nobody`` for a root host that it can serve (that user
        reaches the Python installation, and the host may set its rlimits)."""
        if os.geteuid() != 0 or not may_limit_other_users():
            return None
        needed = [self.python, *python_paths(self.python), str(script)]
        return (SANDBOX_UID, SANDBOX_UID) if reachable_by_others(needed) else None

    def launch(self, workdir: Path) -> Worker:
        if self.problem is not None:
            raise SandboxError(self.problem)
        script, staged = self.script()
        options: list[str] = []
        for access, path in self.rules(workdir, script):
            options += ["--allow", access, path]
        user = self.user(script)
        if user is not None:
            options += ["--user", f"{user[0]}:{user[1]}"]
            os.chown(workdir, -1, user[1])  # its group may write there: nobody else may
            os.chmod(workdir, 0o770)
        elif os.geteuid() == 0:
            options.append("--no-caps")
        command = worker_command(self.python, str(script), staged)
        argv = [self.python, "-I", "-S", "-B", str(LAUNCHER), *options, "--", *command]
        proc, channel, stderr = spawn(argv, cwd=workdir, env=clean_env(str(workdir)))
        uid = user[0] if user is not None else os.geteuid()
        worker = LandlockWorker(proc, channel, stderr, uid=uid, abi=self.abi)
        harden: dict[str, Any] = {"subreaper": True, "parent_death_signal": True}
        if self.seccomp is not None:
            harden["seccomp"] = self.seccomp.hex()
        worker.init = {"harden": harden}
        worker.expected = Expected(  # the launcher's part holds for any worker script
            seccomp=self.seccomp is not None and self.worker == DEFAULT_WORKER,
            no_new_privs=True,
            uid=uid,
            no_capabilities=True,  # as root dropped by the launcher; else none to begin with
        )
        return worker
