"""Opt-in sandbox that runs model code inside the host process. NO ISOLATION.

Model code runs with the host's privileges, memory, environment (API keys included),
file system and network; there are no resource limits and no timeouts (a cell that
loops forever hangs the run). While a cell runs, ``sys.stdout`` / ``sys.stderr`` of the
whole process are redirected into the cell's capture. Use it only for trusted models and
inputs, for debugging, or where starting a process is impossible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from rlmagent.sandbox.base import FunctionSpec, Handler, cut
from rlmagent.sandbox.worker import Repl
from rlmagent.types import ExecResult

_capture_lock = threading.Lock()  # sys.stdout is process-wide: one cell at a time


class InProcessSandbox:
    """Runs sessions in this process (see the module docstring: no isolation at all)."""

    isolation = "none"

    def start(
        self,
        context: Any,
        handler: Handler,
        *,
        functions: Sequence[FunctionSpec] = (),
        max_output_chars: int = 10_000,
    ) -> InProcessSession:
        return InProcessSession(context, handler, functions, max_output_chars)


class InProcessSession:
    isolation = "none"
    fallback_reason: str | None = None  # "none" is only ever asked for, never a fallback

    def __init__(
        self,
        context: Any,
        handler: Handler,
        functions: Sequence[FunctionSpec],
        max_output_chars: int,
    ) -> None:
        if hasattr(context, "read_text"):
            context = context.read_text(encoding="utf-8", errors="replace")
        self.max_output_chars = max_output_chars
        self.repl = Repl(
            context,
            handler,
            functions=[{"name": f.name, "doc": f.doc} for f in functions],
            max_output_chars=max_output_chars,
        )

    def execute(self, code: str) -> ExecResult:
        started = time.monotonic()
        with _capture_lock:
            done = self.repl.run_cell(code)
        limit = self.max_output_chars
        return ExecResult(
            output=cut(done["output"], done["output_chars"], limit),
            stderr=cut(done["stderr"], done["stderr_chars"], limit),
            error=done["error"],
            final=done["final"],
            duration_s=time.monotonic() - started,
        )

    def close(self) -> None:
        self.repl.namespace.clear()
