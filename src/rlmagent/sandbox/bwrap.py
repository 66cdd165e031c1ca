"""The strong tier: the worker inside bubblewrap (``bwrap``) namespaces.

What the worker sees and may do (see SECURITY.md for the full table):

- New user, PID, network, IPC, UTS and cgroup namespaces: no network interface but a
  loopback of its own, only its own processes in ``/proc``, no way to signal the host.
- A root file system built from scratch: ``/usr`` (and the ``/bin``, ``/lib`` links),
  the Python installation read-only, the worker's code copied in read-only from the
  host's memory (``--ro-bind-data``: nothing on the host's disk, which the plain tier
  could have changed, is trusted); a fresh ``/proc`` and minimal ``/dev`` with a
  bounded ``/dev/shm`` of its own; ``/tmp`` a private tmpfs of ``Limits.disk_bytes``
  holding the work directory ``/tmp/work`` (the only writable place, and ``TMPDIR``).
  The context reaches the worker as an open read-only descriptor, closed before model
  code runs: no bind of a host path, so the mount table shows no host temporary
  directory. The host's home, ``/etc``, ``/var``, other users' files: absent.
- No capabilities, ``no_new_privs``, an empty environment, a new session (no terminal
  injection), and it dies with its parent (``--die-with-parent``).
- When the host runs as root, bubblewrap itself cannot drop to another user, so the
  host maps one more user into the sandbox's user namespace (``SANDBOX_UID``, the host's
  ``nobody``) and the worker switches to it before any model code runs. Model code then
  runs as an unprivileged user, which is also what makes ``RLIMIT_NPROC`` count (the
  kernel never applies it to root).

Killing the sandbox's PID 1 kills every process in the namespace, including ones that
called ``setsid``; the host waits until they are gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rlmagent.errors import SandboxError
from rlmagent.sandbox.base import Limits
from rlmagent.sandbox.kernel import Expected
from rlmagent.sandbox.process import EXIT_WAIT_S, Worker
from rlmagent.sandbox.proctree import children, signal_name, tree
from rlmagent.sandbox.seccomp import build_filter
from rlmagent.sandbox.spawn import SAFE_PATH, clean_env, spawn
from rlmagent.sandbox.staging import COMPANIONS, DEFAULT_WORKER, worker_command, worker_files

SANDBOX_UID = 65534
"""Host uid (and gid) that runs model code when the host is root: ``nobody``."""
INNER_DIR = "/opt/rlmagent"
"""Where the worker script and its companion modules appear inside the sandbox."""
INNER_WORKDIR = "/tmp/work"
"""The work directory (and ``HOME``, ``TMPDIR``) inside: a name that says nothing of the
host."""

INFO_TIMEOUT_S = 10.0
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
OPTIONAL_FILES = ("/etc/ld.so.cache", "/etc/localtime")


def find_bwrap() -> str | None:
    """Path of the ``bwrap`` executable on the system PATH, or None."""
    return shutil.which("bwrap", path=SAFE_PATH)


def python_paths(python: str) -> list[str]:
    """Directories a Python interpreter needs, read-only, outside ``/usr``."""
    real = os.path.realpath(python)
    if os.path.realpath(sys.executable) == real:
        prefixes = {sys.base_prefix, os.path.realpath(sys.base_prefix)}
    else:  # <prefix>/bin/python
        prefixes = {os.path.dirname(os.path.dirname(real))}
    prefixes.add(os.path.dirname(real))
    kept = sorted(p for p in prefixes if p and not _under(p, "/usr"))
    return [p for p in kept if not any(_under(p, q) and p != q for q in kept)]


def _parents(paths: list[str]) -> list[str]:
    """Every ancestor directory of ``paths`` except ``/``, parents first, once each."""
    found: list[str] = []
    for path in paths:
        parts = Path(path).parts[1:]
        for depth in range(1, len(parts)):
            parent = "/" + "/".join(parts[:depth])
            if parent not in found and parent != "/usr":
                found.append(parent)
    return found


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class BwrapWorker(Worker):
    """A worker inside bubblewrap; ``pid1`` is the namespace's init (host pid)."""

    pid1: int | None = None

    def ready(self, limits: Limits, message: dict[str, Any]) -> None:
        if self.pid1 is not None:
            found = children(self.pid1)
            if len(found) != 1:
                raise SandboxError(f"expected one worker in the sandbox, found {len(found)}")
            self.pid = found[0]
        super().ready(limits, message)

    def process_limit(self, limits: Limits) -> int | None:
        # Counted per (user namespace, uid): only this sandbox's processes, plus PID 1.
        return limits.processes + 1

    def processes(self) -> list[int]:
        if self.pid1 is None:
            return super().processes()
        return tree(self.pid1)

    def exit_reason(self) -> str:
        status = self.proc.poll()
        if status is not None and status > 128:  # bwrap reports a signal as 128 + n
            return f"killed by {signal_name(status - 128)}"
        return super().exit_reason()

    def _stop(self) -> None:
        if self.pid1 is not None:
            # The namespace dies with its PID 1; bwrap exits once it is gone.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid1, signal.SIGKILL)
            self._reap(EXIT_WAIT_S)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self._reap(EXIT_WAIT_S)


class BwrapLauncher:
    """Starts workers under bubblewrap (see the module docstring)."""

    isolation = "bwrap"

    def __init__(self, bwrap: str, python: str, worker: Path, limits: Limits) -> None:
        self.bwrap = bwrap
        self.python = os.path.realpath(python)
        self.worker = worker
        self.limits = limits
        self.as_root = os.geteuid() == 0
        self.seccomp = build_filter()

    def argv(self, workdir: Path, files: list[str], fds: dict[str, int]) -> list[str]:
        """The bwrap command line. ``files`` are names in ``workdir`` to show read-only
        (none by default: the context goes by descriptor); ``fds`` holds the set-up
        descriptors, and ``code:<path>`` ones for the worker's files."""
        home = self.inner_workdir(workdir)
        args = [self.bwrap, "--unshare-all", "--unshare-user", "--die-with-parent"]
        args += ["--new-session", "--cap-drop", "ALL", "--hostname", "sandbox", "--clearenv"]
        for key, value in clean_env(home).items():
            args += ["--setenv", key, value]
        args += ["--ro-bind", "/usr", "/usr"]
        for link in ROOT_LINKS:
            if os.path.islink(link):
                args += ["--symlink", os.readlink(link), link]
            elif os.path.isdir(link):
                args += ["--ro-bind", link, link]
        for path in OPTIONAL_FILES:
            args += ["--ro-bind-try", path, path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        size = str(self.limits.disk_bytes)
        args += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]  # counted too
        args += ["--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
        args += ["--perms", "1777", "--dir", home]
        paths = python_paths(self.python)
        for parent in _parents([*paths, INNER_DIR]):  # bwrap would make them 0700
            args += ["--perms", "0755", "--dir", parent]
        for path in paths:
            args += ["--ro-bind", path, path]
        code = {key[5:]: fd for key, fd in fds.items() if key.startswith("code:")}
        staged = bool(code)
        if staged:  # worker.py, its companions and their bytecode, from the host's memory
            args += ["--perms", "0755", "--dir", INNER_DIR]
            args += ["--perms", "0755", "--dir", f"{INNER_DIR}/__pycache__"]
            for name, fd in code.items():
                args += ["--perms", "0644", "--ro-bind-data", str(fd), f"{INNER_DIR}/{name}"]
        else:
            args += ["--ro-bind", str(self.worker), f"{INNER_DIR}/worker.py"]
            for name in COMPANIONS:
                args += ["--ro-bind", str(Path(__file__).with_name(name)), f"{INNER_DIR}/{name}"]
        for name in files:
            args += ["--ro-bind", str(workdir / name), f"{home}/{name}"]
        args += ["--chdir", home, "--info-fd", str(fds["info"])]
        if fds.get("seccomp", -1) >= 0:
            args += ["--seccomp", str(fds["seccomp"])]
        if self.as_root:
            args += ["--userns-block-fd", str(fds["block"])]
            args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += ["--disable-userns"]
        command = worker_command(self.python, f"{INNER_DIR}/worker.py", staged)
        return [*args, "--", *command]

    @staticmethod
    def inner_workdir(workdir: Path) -> str:
        """The work directory as the worker sees it (on the sandbox's private /tmp)."""
        return INNER_WORKDIR

    def launch(self, workdir: Path, files: list[str]) -> Worker:
        """Start a worker. ``files`` (names in ``workdir``): the first is the context,
        handed over as a read-only descriptor (no bind, so no host path inside)."""
        context = files[0] if files else None
        code_files = worker_files(self.worker) if self.worker == DEFAULT_WORKER else None
        extra: dict[str, int] = {}
        try:
            for name, content in (code_files or {}).items():
                extra[f"code:{name}"] = _data_fd(content)
            if context is not None:  # the same number in the worker (pass_fds keeps it)
                extra["context"] = os.open(workdir / context, os.O_RDONLY | os.O_NOFOLLOW)
            worker = self._launch(workdir, [], extra)
        finally:
            for fd in extra.values():
                os.close(fd)
        if context is not None:
            worker.init.update(context_path=None, context_fd=extra["context"])
        return worker

    def _launch(self, workdir: Path, files: list[str], extra: dict[str, int]) -> Worker:
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe() if self.as_root else (-1, -1)
        seccomp_r = -1
        if self.seccomp is not None:
            seccomp_r, seccomp_w = os.pipe()
            os.write(seccomp_w, self.seccomp)  # a few hundred bytes: fits in the pipe
            os.close(seccomp_w)
        fds = {"info": info_w, "block": block_r, "seccomp": seccomp_r, **extra}
        try:
            proc, channel, stderr = spawn(
                self.argv(workdir, files, fds),
                cwd="/",
                env=clean_env("/"),
                pass_fds=tuple(fd for fd in fds.values() if fd >= 0),
            )
            os.close(info_w)
            info_w = -1
            worker = BwrapWorker(proc, channel, stderr)
            try:
                worker.pid1 = self._read_pid1(info_r)
                if self.as_root:
                    self._map_users(worker.pid1)
                    os.write(block_w, b"1")
            except BaseException as exc:
                errors = worker.startup_errors()
                worker.kill()
                if isinstance(exc, SandboxError | OSError):
                    raise SandboxError(f"{exc}; bwrap said: {errors or '(nothing)'}") from exc
                raise
        finally:
            for fd in (info_r, info_w, block_r, block_w, seccomp_r):
                if fd >= 0:
                    os.close(fd)
        if self.as_root:
            worker.init = {"user": [SANDBOX_UID, SANDBOX_UID]}
        own = self.worker == DEFAULT_WORKER  # a stand-in of the tests drops nothing itself
        worker.expected = Expected(
            seccomp=self.seccomp is not None,
            no_new_privs=True,
            uid=(SANDBOX_UID if self.as_root else os.getuid()) if own else None,
            no_capabilities=own,
        )
        return worker

    @staticmethod
    def _read_pid1(fd: int) -> int:
        data = b""
        deadline = time.monotonic() + INFO_TIMEOUT_S
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise SandboxError("bubblewrap did not report its sandbox in time")
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            raise SandboxError("bubblewrap could not create the sandbox") from None

    @staticmethod
    def _map_users(pid: int) -> None:
        """Map root (for bwrap's own set-up) and ``SANDBOX_UID`` (for model code)."""
        line = f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n"
        for name in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(line)


def _data_fd(content: bytes) -> int:
    """A read-only descriptor holding ``content`` from its start (an unlinked file)."""
    with tempfile.TemporaryFile() as f:
        f.write(content)
        f.flush()
        return os.open(f"/proc/self/fd/{f.fileno()}", os.O_RDONLY)
