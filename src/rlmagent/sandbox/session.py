"""The host's side of one sandbox session: one worker process, restarted when lost.

:class:`SubprocessSession` is what :meth:`SubprocessSandbox.start
<rlmagent.sandbox.subprocess.SubprocessSandbox.start>` returns, whatever the tier: the
launcher (:mod:`~rlmagent.sandbox.bwrap`, :mod:`~rlmagent.sandbox.landlock_tier`,
:mod:`~rlmagent.sandbox.process`) only decides how the worker is started and killed. It
stages the context in a private work directory (again when the plain tier's model code
replaced it), starts the worker and sends it the ``init`` frame, runs cells against the
cell's deadline (host time answering ``llm_query`` and tool calls does not count), and
answers the worker's calls with frames that always encode. A timeout, a dead worker,
the memory watch's kill or anything malformed kills every process of the worker and
starts a fresh one (with the context); the model is told its variables are lost.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from rlmagent.errors import SandboxError
from rlmagent.sandbox import protocol
from rlmagent.sandbox.base import FunctionSpec, Handler, Limits, cut, stage_context
from rlmagent.sandbox.bwrap import BwrapLauncher
from rlmagent.sandbox.landlock_tier import LandlockLauncher
from rlmagent.sandbox.memwatch import WATCH
from rlmagent.sandbox.process import ProcessLauncher, Worker
from rlmagent.sandbox.workdirs import LockedDir, sweep_once
from rlmagent.types import ExecResult

START_TIMEOUT_S = 30.0
MAX_ERROR_CHARS = 20_000

Launcher = BwrapLauncher | LandlockLauncher | ProcessLauncher


class SubprocessSession:
    """One persistent worker; restarted (state lost) after a timeout or crash."""

    def __init__(
        self,
        launcher: Launcher,
        limits: Limits,
        context: Any,
        handler: Handler,
        functions: Sequence[FunctionSpec],
        max_output_chars: int,
        *,
        fallback_reason: str | None = None,
    ) -> None:
        self.launcher = launcher
        self.limits = limits
        self.isolation = launcher.isolation
        self.fallback_reason = fallback_reason
        """Why this session is not in the bubblewrap tier ``"auto"`` asked for, or None."""
        self.handler = handler
        self.max_output_chars = max_output_chars
        sweep_once()  # work directories left by hosts that were killed
        self._dir = LockedDir("session")
        self.workdir = self._dir.path
        self._context = context
        self._worker: Worker | None = None
        self._cell = 0
        self._memory_exceeded: str | None = None
        self._state = threading.Condition()
        """Guards ``_worker``, ``_closed`` and ``_starting``: :meth:`close` waits for a
        worker being started on another thread (a cell replacing a dead worker) and
        kills it, and no worker is started once the session is closed."""
        self._closed = False
        self._starting = 0
        self._busy = False
        """A cell's thread is in :meth:`execute`: a close from another thread then kills
        the processes only and leaves closing the descriptors to that thread."""
        self.hardening: tuple[str, ...] = ()
        """Protections beyond the tier's own, e.g. ``("seccomp",)`` (see SECURITY.md)."""
        try:
            self._stage()
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
        WATCH.add(self)

    # -- the context file ---------------------------------------------------------------

    def _stage(self) -> None:
        self._context_file, self._context_kind = stage_context(self._context, self.workdir)
        self._signature = self._file_signature()
        if self._context_file is not None:
            os.chmod(self.workdir / self._context_file, 0o444)

    def _file_signature(self) -> tuple[int, int, int] | None:
        if self._context_file is None:
            return None
        try:
            st = os.lstat(self.workdir / self._context_file)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _restage_if_changed(self) -> None:
        """Model code of the plain tier can replace the context file: write it again."""
        if self._context_file is None or (
            self._signature is not None and self._file_signature() == self._signature
        ):
            return
        if os.path.islink(self.workdir) or not os.path.isdir(self.workdir):
            # Model code replaced the directory itself (its processes are dead by now):
            # take a fresh private one rather than follow whatever stands there.
            replaced = self.workdir
            self._dir.remove()
            with contextlib.suppress(OSError):
                os.unlink(replaced)  # a file or a link in its place, never followed
            self._dir = LockedDir("session")
            self.workdir = self._dir.path
            self._stage()
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.workdir / self._context_file)
        self._stage()

    # -- process management -------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """Host pid of the Python worker process (None while none runs)."""
        return self._worker.pid if self._worker else None

    def processes(self) -> list[int]:
        """Host pids of every live process of this session's sandbox (diagnostics)."""
        return self._worker.processes() if self._worker else []

    def memory_check(self) -> tuple[list[int], int] | None:
        worker = self._worker
        if worker is None or worker.proc.poll() is not None:
            return None
        return worker.processes(), self.limits.total_memory_bytes

    def memory_exceeded(self, used: int, limit: int) -> None:
        self._memory_exceeded = (
            f"the sandbox's processes held {used / 2**20:,.0f} MiB of memory together, "
            f"over its limit of {limit / 2**20:,.0f} MiB (Limits.total_memory_bytes), "
            "and were all killed"
        )

    def _spawn(self) -> None:
        with self._state:
            if self._closed:
                raise SandboxError("the sandbox session is closed: no worker is started")
            self._starting += 1
        try:
            self._restage_if_changed()
            deadline = time.monotonic() + START_TIMEOUT_S
            if isinstance(self.launcher, BwrapLauncher):
                files = [self._context_file] if self._context_file else []
                worker = self.launcher.launch(self.workdir, files)
            else:
                worker = self.launcher.launch(self.workdir)
        except BaseException:
            self._started()
            raise
        with self._state:
            closed = self._closed
            if not closed:
                self._worker = worker
        if closed:  # close() ran meanwhile and waits for this worker to be gone
            try:
                worker.kill()
            finally:
                self._started()
            raise SandboxError("the sandbox session was closed while its worker started")
        self._started()
        kind, message = "eof", None
        if worker.channel.send({**self._init, **worker.init}, deadline):
            kind, message = worker.channel.receive(deadline)
        if kind != "frame" or not isinstance(message, dict) or message.get("type") != "ready":
            errors = worker.startup_errors()
            self._kill()
            raise SandboxError(
                f"the sandbox worker did not start ({kind}: {message}); "
                f"it said: {errors or '(nothing)'}"
            )
        try:
            worker.ready(self.limits, message)
        except BaseException:
            self._kill()  # never left in place to run model code
            raise
        self.hardening = tuple(worker.hardening)

    def _started(self) -> None:
        with self._state:
            self._starting -= 1
            self._state.notify_all()

    def _kill(self) -> None:
        with self._state:
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()

    # -- cells --------------------------------------------------------------------------

    def execute(self, code: str) -> ExecResult:
        """Run one cell; a timeout or a dead worker becomes an error the model sees."""
        with self._state:
            if self._closed:
                raise SandboxError("the sandbox session is closed")
            self._busy = True
        try:
            return self._execute(code)
        finally:
            with self._state:
                self._busy = False
                closed = self._closed
            if closed:  # close() ran meanwhile: this thread closes what it was using
                self._kill()

    def _execute(self, code: str) -> ExecResult:
        if self._worker is None:
            self._spawn()
        worker = self._worker
        assert worker is not None
        limits = self.limits
        started = time.monotonic()
        self._cell += 1
        cell = self._cell
        worker.limit_cpu(limits.cpu_seconds)
        deadline = started + limits.cell_timeout_s
        try:  # issue 15: a cell that cannot be sent is an error, not a host exception
            frame = protocol.encode({"type": "exec", "id": cell, "code": code})
        except (protocol.FrameError, TypeError, ValueError) as exc:
            return ExecResult(error=f"the cell cannot be sent to the REPL: {exc}")
        if not worker.channel.send(frame, deadline):
            return self._lost(f"the REPL process had died ({worker.exit_reason()})", started)
        while True:
            kind, message = worker.channel.receive(deadline)
            if kind == "timeout":
                return self._lost(
                    f"the cell timed out after {limits.cell_timeout_s:g} s of run time",
                    started,
                    timed_out=True,
                )
            if kind != "frame":
                return self._lost(
                    f"the REPL process died ({self._why(worker, kind, message)})", started
                )
            mtype = message.get("type")
            if mtype == "call":
                waited = time.monotonic()
                reply = self._answer(message)
                deadline += time.monotonic() - waited  # host time does not count
                if not worker.channel.send(reply, deadline):
                    return self._lost("the REPL process stopped reading during a call", started)
            elif mtype == "done" and message.get("id") == cell:
                return self._result(message, time.monotonic() - started)
            else:
                shown = protocol.shown(mtype) if isinstance(mtype, str) else repr(mtype)
                return self._lost(f"the REPL process sent an unexpected {shown} frame", started)

    def _why(self, worker: Worker, kind: str, message: Any) -> str:
        if kind == "garbage":
            return f"it sent a malformed frame: {message}"
        worker._reap(1.0)
        reason = worker.exit_reason()
        if "SIGKILL" in reason or "SIGXCPU" in reason:
            reason += (
                f"; a limit may have been hit: {self.limits.cpu_seconds} s of CPU time per "
                f"cell, or {self.limits.processes} processes"
            )
        return reason

    def _answer(self, message: dict[str, Any]) -> bytes:
        """The reply frame to a call: always one that encodes (see protocol.reply_frame);
        nothing the worker sent is echoed but its call id, an int."""
        call_id = message.get("id")
        method, params = message.get("method"), message.get("params")
        if not isinstance(call_id, int) or isinstance(call_id, bool) or call_id.bit_length() > 63:
            call_id, method = 0, None  # refused: an id is never echoed but as an int
        if not isinstance(method, str) or not isinstance(params, dict):
            return protocol.reply_frame(call_id, error="malformed call")
        try:
            value = self.handler(method, params)
        except Exception as exc:
            try:  # reply_frame cuts the text
                text = f"{type(exc).__name__}: {exc}"
            except Exception:  # an exception whose str() fails
                text = type(exc).__name__
            return protocol.reply_frame(call_id, error=text)
        return protocol.reply_frame(call_id, value)

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
        why, self._memory_exceeded = self._memory_exceeded or why, None
        self._spawn()
        return ExecResult(
            error=f"{why}; the REPL was restarted: variables from earlier cells are lost "
            "(context and the built-in functions are loaded again)",
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            state_lost=True,
        )

    def close(self) -> None:
        """Kill the worker, and one being started on another thread meanwhile (waiting
        for it), for good: the session starts no worker after this."""
        WATCH.discard(self)
        with self._state:
            self._closed = True
            self._state.wait_for(lambda: self._starting == 0, timeout=START_TIMEOUT_S)
            busy, worker = self._busy, self._worker
        if busy and worker is not None:
            worker.stop()  # the cell's thread sees the end and closes the descriptors
        else:
            self._kill()
        self._dir.remove()

    def __enter__(self) -> SubprocessSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
