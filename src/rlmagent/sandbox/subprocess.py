"""The default sandbox: model code runs in a separate worker process with resource limits.

What this tier isolates:

- The host process's memory, objects and secrets in memory: the worker is another
  process, started with an empty environment (no API keys), ``python -I -S`` (no user
  site, no site-packages, no ``PYTHON*`` variables) and a private temporary work directory
  as its cwd and ``HOME``, removed on close.
- Runaway resource use: address space, CPU seconds per cell, file size, open files and
  core dumps are capped with rlimits; a cell that outlives its wall-clock timeout is
  killed with its whole process group, and a fresh worker (with the context) continues.
- The channel: the host reads only length-prefixed JSON frames, bounded in size, and
  treats anything malformed or unexpected as a dead worker, never as a host crash.

What it does NOT isolate (see SECURITY.md): the file system (the worker can read what the
user running rlmagent can read), the network, other processes of the same user
(including ``/proc/<pid>/environ``), and processes that leave the process group with
``setsid``. For those, the bubblewrap tier adds namespaces.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlmagent.errors import SandboxError
from rlmagent.sandbox import protocol
from rlmagent.sandbox.base import FunctionSpec, Handler, Limits, cut, stage_context
from rlmagent.types import ExecResult

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux/macOS
    resource = None  # type: ignore[assignment]

WORKER = Path(__file__).with_name("worker.py")
START_TIMEOUT_S = 30.0
MAX_ERROR_CHARS = 20_000


def clean_env(workdir: Path) -> dict[str, str]:
    """The whole environment of a worker: nothing inherited from the host."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
    }


class SubprocessSandbox:
    """Runs each session in a worker subprocess with rlimits (see the module docstring)."""

    isolation = "process"

    def __init__(self, *, limits: Limits | None = None, python: str | None = None) -> None:
        self.limits = limits or Limits()
        self.python = python or sys.executable

    def argv(self, workdir: Path) -> list[str]:
        """The command that starts a worker (a subclass may wrap it, e.g. in bwrap)."""
        return [self.python, "-I", "-S", "-B", str(WORKER)]

    def start(
        self,
        context: Any,
        handler: Handler,
        *,
        functions: Sequence[FunctionSpec] = (),
        max_output_chars: int = 10_000,
    ) -> SubprocessSession:
        return SubprocessSession(self, context, handler, functions, max_output_chars)


class SubprocessSession:
    """One persistent worker; restarted (state lost) after a timeout or crash."""

    def __init__(
        self,
        sandbox: SubprocessSandbox,
        context: Any,
        handler: Handler,
        functions: Sequence[FunctionSpec],
        max_output_chars: int,
    ) -> None:
        self.sandbox = sandbox
        self.isolation = sandbox.isolation
        self.handler = handler
        self.max_output_chars = max_output_chars
        self.workdir = Path(tempfile.mkdtemp(prefix="rlm-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cell = 0
        try:
            self._context_file, self._context_kind = stage_context(context, self.workdir)
            self._init = {
                "type": "init",
                "context_path": self._context_file,
                "context_kind": self._context_kind,
                "functions": [{"name": f.name, "doc": f.doc} for f in functions],
                "max_output_chars": max_output_chars,
            }
            self._spawn()
        except BaseException:
            self.close()
            raise

    # -- process management -------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _spawn(self) -> None:
        limits = self.sandbox.limits
        self._inbox = queue.Queue()
        try:
            proc = subprocess.Popen(
                self.sandbox.argv(self.workdir),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=self.workdir,
                env=clean_env(self.workdir),
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"could not start the sandbox worker: {exc}") from exc
        self._proc = proc
        if resource is not None:  # before any model code can run
            for name, value in (
                ("RLIMIT_AS", limits.memory_bytes),
                ("RLIMIT_FSIZE", limits.file_size_bytes),
                ("RLIMIT_NOFILE", limits.open_files),
                ("RLIMIT_CORE", 0),
            ):
                self._prlimit(name, value, value)
        threading.Thread(target=self._read_loop, args=(proc, self._inbox), daemon=True).start()
        self._send(self._init)
        kind, message = self._next(START_TIMEOUT_S)
        if kind != "frame" or message.get("type") != "ready":
            self._kill()
            raise SandboxError(f"the sandbox worker did not start ({kind}: {message})")

    def _prlimit(self, name: str, soft: int, hard: int) -> None:
        if self._proc is None or resource is None or not hasattr(resource, name):
            return
        try:
            resource.prlimit(self._proc.pid, getattr(resource, name), (soft, hard))
        except (OSError, ValueError):
            pass  # the worker already exited; the next read reports it

    def _cpu_used(self) -> int:
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) // os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0

    @staticmethod
    def _read_loop(proc: subprocess.Popen[bytes], inbox: queue.Queue[tuple[str, Any]]) -> None:
        stream = proc.stdout
        assert stream is not None
        try:
            while True:
                message = protocol.read_frame(stream)
                if message is None:
                    inbox.put(("eof", None))
                    return
                inbox.put(("frame", message))
        except protocol.FrameError as exc:
            inbox.put(("garbage", str(exc)))
        except (OSError, ValueError) as exc:
            inbox.put(("eof", str(exc)))

    def _send(self, message: dict[str, Any]) -> bool:
        if self._proc is None or self._proc.stdin is None:
            return False
        try:
            protocol.write_frame(self._proc.stdin, message)  # type: ignore[arg-type]
            return True
        except (OSError, ValueError):
            return False

    def _next(self, timeout: float) -> tuple[str, Any]:
        try:
            return self._inbox.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return "timeout", None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.kill()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    # -- cells --------------------------------------------------------------------------

    def execute(self, code: str) -> ExecResult:
        """Run one cell; a timeout or a dead worker becomes an error the model sees."""
        if self._proc is None:
            self._spawn()
        limits = self.sandbox.limits
        started = time.monotonic()
        self._cell += 1
        cell = self._cell
        cpu = self._cpu_used() + limits.cpu_seconds
        self._prlimit("RLIMIT_CPU", cpu, cpu + 5)
        if not self._send({"type": "exec", "id": cell, "code": code}):
            return self._lost("the REPL process had died", started)
        deadline = started + limits.cell_timeout_s
        while True:
            kind, message = self._next(deadline - time.monotonic())
            if kind == "timeout":
                return self._lost(
                    f"the cell timed out after {limits.cell_timeout_s:g} s of run time",
                    started,
                    timed_out=True,
                )
            if kind != "frame":
                code_ = self._proc.poll() if self._proc else None
                why = f"exit status {code_}" if code_ is not None else f"{kind}: {message}"
                return self._lost(f"the REPL process died ({why})", started)
            mtype = message.get("type")
            if mtype == "call":
                waited = time.monotonic()
                reply = self._answer(message)
                deadline += time.monotonic() - waited  # host time does not count
                if not self._send(reply):
                    return self._lost("the REPL process died during a call", started)
            elif mtype == "done" and message.get("id") == cell:
                return self._result(message, time.monotonic() - started)
            else:
                return self._lost(f"the REPL process sent an unexpected {mtype!r} frame", started)

    def _answer(self, message: dict[str, Any]) -> dict[str, Any]:
        call_id = message.get("id")
        method, params = message.get("method"), message.get("params")
        reply: dict[str, Any] = {"type": "reply", "id": call_id}
        if not isinstance(method, str) or not isinstance(params, dict):
            return {**reply, "ok": False, "error": "malformed call"}
        try:
            value = self.handler(method, params)
            protocol.encode({"value": value})  # must be JSON and fit in a frame
        except Exception as exc:
            return {**reply, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {**reply, "ok": True, "value": value}

    def _result(self, message: dict[str, Any], duration: float) -> ExecResult:
        def text(key: str) -> str:
            value = message.get(key)
            return value if isinstance(value, str) else ""

        def count(key: str) -> int:
            value = message.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        limit = self.max_output_chars
        error = message.get("error")
        final = message.get("final")
        return ExecResult(
            output=cut(text("output"), count("output_chars"), limit),
            stderr=cut(text("stderr"), count("stderr_chars"), limit),
            error=cut(error, len(error), MAX_ERROR_CHARS) if isinstance(error, str) else None,
            final=final if isinstance(final, str) else None,
            duration_s=duration,
        )

    def _lost(self, why: str, started: float, *, timed_out: bool = False) -> ExecResult:
        self._kill()
        self._spawn()
        return ExecResult(
            error=f"{why}; the REPL was restarted: variables from earlier cells are lost "
            "(context and the built-in functions are loaded again)",
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            state_lost=True,
        )

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SubprocessSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
