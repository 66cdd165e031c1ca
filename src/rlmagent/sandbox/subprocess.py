"""The default sandbox: model code runs in a separate worker process, isolated by the OS.

Three tiers share one worker and one frame protocol; only the launch differs:

- ``"bwrap"`` (the default where it works): the worker inside bubblewrap namespaces
  (:mod:`rlmagent.sandbox.bwrap`): no network, no view of the host's files, home or
  processes, a bounded private ``/tmp``, no capabilities, an unprivileged user.
- ``"landlock"`` (the default where bubblewrap does not work and the kernel has
  Landlock): a child process that Landlock confines before the worker starts
  (:mod:`rlmagent.sandbox.landlock_tier`): the system and Python directories read-only,
  its work directory read-write, nothing else of the file system, no TCP, no signals
  to or abstract sockets of other processes, no capabilities. No PID namespace.
- ``"process"`` (only when asked for by name): a plain child process
  (:mod:`rlmagent.sandbox.process`) with an empty environment, ``python -I -S``, a
  private work directory and rlimits. It does NOT isolate the file system or the
  user's other processes: it can read what the user running rlmagent can read, and
  signal or read ``/proc/<pid>/environ`` of the host process. Running as root, it has
  no process limit either. Choosing it issues an :class:`IsolationWarning` saying so.

``SubprocessSandbox(isolation="auto")`` probes once per process whether bubblewrap works
here, then Landlock; its sessions name why bubblewrap was not used in
``fallback_reason``. Where neither works it fails closed: :meth:`SubprocessSandbox.start`
(and so ``RLMAgent.run``, before any model call) raises :class:`SandboxError` naming why
each tier cannot run and the two ways on (install bubblewrap, or ask for ``"process"``).

Every tier caps each cell's wall time, the worker's CPU time, memory, open files, file
size and processes (see :class:`~rlmagent.sandbox.base.Limits`). A cell that outlives its
time is killed with every process it started, and a fresh worker (with the context)
continues: the model is told its variables are lost. The host reads only bounded
length-prefixed JSON frames, never blocks on the worker without a deadline, and treats
anything malformed or unexpected as a dead worker, never as a host crash. That session
is :class:`~rlmagent.sandbox.session.SubprocessSession` (re-exported here); this module
chooses the tier (the probes, the fail-closed error) and starts sessions in it.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlmagent.errors import SandboxError, UsageError
from rlmagent.sandbox.base import FunctionSpec, Handler, Limits
from rlmagent.sandbox.bwrap import BwrapLauncher, find_bwrap
from rlmagent.sandbox.landlock_tier import LandlockLauncher
from rlmagent.sandbox.process import ProcessLauncher
from rlmagent.sandbox.session import (  # noqa: F401 - re-exported
    MAX_ERROR_CHARS,
    START_TIMEOUT_S,
    Launcher,
    SubprocessSession,
)

WORKER = Path(__file__).with_name("worker.py")
ISOLATIONS = ("auto", "bwrap", "landlock", "process")
PROBE_TIMEOUT_S = 10.0

INSTALL_BWRAP = (
    "install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; "
    "Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap)"
)
PROCESS_WARNING = (
    "sandbox isolation is 'process', as asked: model code runs as a plain child process "
    "and can read every file you can read and rewrite those you can write (your home and "
    "SSH keys, the run log, trajectories and answer cache, the installed rlmagent), read "
    "/proc/<pid>/environ of your processes (API keys), write to your terminal, reach "
    "other live sandboxes and signal your processes; only its network is cut (seccomp) "
    "and its resources limited (SECURITY.md)"
)
"""The opt-in warning of the plain tier (what model code can then reach; SECURITY.md)."""


class IsolationWarning(RuntimeWarning):
    """The sandbox runs without isolation (``isolation="process"``, asked for by name)."""


_probe_lock = threading.Lock()
_probe_results: dict[tuple[str, str], str | None] = {}


def bwrap_problem(bwrap: str | None, python: str) -> str | None:
    """Why the bubblewrap tier does not work here, or None if it does.

    The probe starts a real worker under bwrap and runs one cell (tens of ms); its
    answer is cached for the life of the process.
    """
    if not sys.platform.startswith("linux"):
        return "bubblewrap needs Linux"
    if bwrap is None:
        return "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
    key = (bwrap, os.path.realpath(python))
    with _probe_lock:
        if key not in _probe_results:
            _probe_results[key] = _probe(bwrap, python)
        return _probe_results[key]


def landlock_problem(python: str) -> str | None:
    """Why the Landlock tier does not work here, or None if it does (a real worker runs
    one cell; cached for the life of the process)."""
    key = ("landlock", os.path.realpath(python))
    with _probe_lock:
        if key not in _probe_results:
            launcher = LandlockLauncher(python, WORKER)
            _probe_results[key] = launcher.problem or _run_probe(launcher, "Landlock")
        return _probe_results[key]


def _probe(bwrap: str, python: str) -> str | None:
    limits = Limits(cell_timeout_s=PROBE_TIMEOUT_S)
    return _run_probe(BwrapLauncher(bwrap, python, WORKER, limits), "bwrap")


def _run_probe(launcher: Launcher, name: str) -> str | None:
    limits = Limits(cell_timeout_s=PROBE_TIMEOUT_S)
    try:
        with SubprocessSession(launcher, limits, None, _no_calls, (), 100) as session:
            result = session.execute("1 + 1")
    except (SandboxError, OSError) as exc:
        return f"{name} does not work here: {exc}"
    if result.output != "2\n":
        return f"a cell under {name} failed: {result.error or result.output!r}"
    return None


def no_tier_error(bwrap: str, landlock: str) -> SandboxError:
    """The fail-closed error: why each isolating tier cannot run, and the ways on."""
    return SandboxError(
        "no sandbox tier that isolates model code works on this machine, so nothing was "
        f"run. bubblewrap: {bwrap}. Landlock: {landlock}. Either {INSTALL_BWRAP}, or run "
        'model code WITHOUT isolation, knowingly: SubprocessSandbox(isolation="process") '
        "in Python, --sandbox process on the command line (model code can then read "
        "every file you can and the API keys in your processes' environments)"
    )


def _no_calls(name: str, params: dict[str, Any]) -> Any:
    raise NameError(f"no host function {name!r}")


class SubprocessSandbox:
    """Runs each session in an OS-isolated worker process (see the module docstring).

    ``isolation``: ``"auto"`` (bubblewrap if it works here, else Landlock, else a
    :class:`SandboxError`), ``"bwrap"`` or ``"landlock"`` (fail if it does not work), or
    ``"process"`` (no isolation, with an :class:`IsolationWarning`). ``python`` is the
    interpreter of the worker (default: this one); ``bwrap`` the bubblewrap executable
    (default: found on the system PATH); ``worker`` the worker script (tests replace it
    with hostile stand-ins).
    """

    def __init__(
        self,
        *,
        isolation: str = "auto",
        limits: Limits | None = None,
        python: str | None = None,
        bwrap: str | None = None,
        worker: str | Path | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise UsageError(f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}")
        self.requested = isolation
        self.limits = limits or Limits()
        self.python = python or sys.executable
        self.bwrap = bwrap or find_bwrap()
        self.worker = Path(worker) if worker is not None else WORKER
        self._launcher: Launcher | None = None
        self.fallback_reason: str | None = None
        """Why ``"auto"`` did not get the bubblewrap tier (set when the tier is chosen);
        None when it did, or when the tier was pinned."""

    @property
    def isolation(self) -> str:
        """The tier sessions run in: ``"bwrap"``, ``"landlock"`` or ``"process"``. For
        ``"auto"`` the first use probes the tiers (a SandboxError where none isolates);
        a pinned tier that cannot work fails in :meth:`start`."""
        if self.requested in ("bwrap", "landlock") and self._launcher is None:
            return self.requested
        return self.launcher().isolation

    def launcher(self) -> Launcher:
        """The launcher of the tier in use; SandboxError if the tier cannot work here."""
        if self._launcher is None:
            self._launcher = self._choose()
        return self._launcher

    def _choose(self) -> Launcher:
        if self.requested == "process":
            warnings.warn(PROCESS_WARNING, IsolationWarning, stacklevel=4)  # once per sandbox
            return ProcessLauncher(self.python, self.worker)
        bwrap = None
        if self.requested in ("auto", "bwrap"):
            bwrap = bwrap_problem(self.bwrap, self.python)
            if bwrap is None:
                assert self.bwrap is not None
                return BwrapLauncher(self.bwrap, self.python, self.worker, self.limits)
            if self.requested == "bwrap":
                raise SandboxError(f"bubblewrap isolation was requested but {bwrap}")
        landlock = landlock_problem(self.python)
        if landlock is None:
            self.fallback_reason = bwrap
            return LandlockLauncher(self.python, self.worker)
        if self.requested == "landlock":
            raise SandboxError(f"Landlock isolation was requested but {landlock}")
        raise no_tier_error(str(bwrap), landlock)

    def start(
        self,
        context: Any,
        handler: Handler,
        *,
        functions: Sequence[FunctionSpec] = (),
        max_output_chars: int = 10_000,
    ) -> SubprocessSession:
        launcher = self.launcher()
        return SubprocessSession(
            launcher,
            self.limits,
            context,
            handler,
            functions,
            max_output_chars,
            fallback_reason=self.fallback_reason,
        )
