"""One run's REPL on the host side: the sandbox session, the threads its cells run on,
and a shutdown that leaves nothing behind.

A session's REPL (:mod:`rlmagent.session`) outlives its runs: :meth:`Repl.keep` gives it
named contexts and a history, which it stages once (the first context through the
sandbox, the others through a hidden host function, ``_rlm_session``, read in pieces)
and puts back in a worker that was replaced; each run :meth:`~Repl.attach` es its own
host functions, :meth:`~Repl.prepare` s the REPL for its question, and
:meth:`~Repl.release` s it instead of shutting it down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from rlmagent.briefing import Variable
from rlmagent.engines.base import run_blocking
from rlmagent.errors import SandboxError
from rlmagent.sandbox.base import FunctionSpec, Handler, Sandbox, Session
from rlmagent.types import ExecResult

T = TypeVar("T")

SESSION_CLOSE_WAIT_S = 10.0
"""How long a cancelled run waits for a cell's thread to end after killing its sandbox."""
CANCEL_GRACE_S = 2.0
"""How long a cancelled question of a session waits for its cell to end before the
worker is killed (and replaced, its variables lost)."""
SESSION_FUNCTION = "_rlm_session"
"""The hidden host function a session's REPL reads its contexts and history through."""
CONTEXT_PIECE_CHARS = 4 * 1024 * 1024
"""Characters of a context sent in one frame (frames are bounded; see sandbox/protocol)."""
MAX_VARIABLES = 500
"""User variables a listing reports (the first message shows fewer)."""
MAX_NAME_CHARS = 100
SCAFFOLD = frozenset(
    {"context", "contexts", "history", "FINAL", "FINAL_VAR", "SHOW_VARS", "chunks", "search"}
    | {"HostCallError"}
)
"""Names of the REPL that are not the model's variables."""

# Runs in the worker: ``contexts`` and ``history`` from the kept copy (``_rlm_store``),
# reading from the host only the contexts the worker does not hold yet. Built-ins are
# taken from ``builtins``: the model may have bound ``len`` or ``type`` to something else.
_SETUP = """
def __rlm_setup(names):
    import builtins as b
    import json
    g = b.globals()
    store = g.get("_rlm_store")
    store = store if b.type(store) is b.dict else {}
    fresh = {}
    for index, name in b.enumerate(names):
        if index == 0:
            fresh[name] = g.get("context")
        elif name in store:
            fresh[name] = store[name]
        else:
            parts, offset, kind = [], 0, "text"
            while offset is not None:
                piece = g["_rlm_session"]("context", name, offset)
                parts.append(piece["text"])
                kind, offset = piece["kind"], piece["next"]
            text = "".join(parts)
            fresh[name] = json.loads(text) if kind == "json" else text
    g["_rlm_store"] = fresh
    g["contexts"] = b.dict(fresh)
    g["history"] = g["_rlm_session"]("history")
__rlm_setup(%s)
del __rlm_setup
"""

_LIST = """
def __rlm_vars(skip, limit):
    import builtins as b
    import sys
    sized = (b.str, b.bytes, b.list, b.tuple, b.dict, b.set, b.frozenset)
    found = []
    for name, value in b.list(b.globals().items()):
        kind = b.type(value)
        if name.startswith("_") or name in skip or kind is b.type(sys):
            continue
        found.append([name, kind.__name__, b.len(value) if kind in sized else None])
        if b.len(found) >= limit:
            break
    b.globals()["_rlm_session"]("vars", found)
__rlm_vars(%s, %d)
del __rlm_vars
"""


class Repl:
    """A sandbox session whose blocking calls run on threads that :meth:`shutdown` waits
    for, even when the run was cancelled meanwhile. A session's REPL keeps contexts and
    a history across runs (see the module docstring and :meth:`keep`)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.session: Session | None = None
        self._threads: list[threading.Event] = []
        self._closing = threading.Lock()
        self._closed = False
        """Set by the first close: a sandbox session that finishes starting afterwards
        (its thread outlived the shutdown's wait) is closed at once, never kept."""
        self._handler: Handler | None = None
        self._kept: dict[str, Any] | None = None
        self._history: list[dict[str, Any]] = []
        self._serving: tuple[str, str, str] | None = None
        self._reported: tuple[Variable, ...] | None = None
        self._skip: list[str] = sorted(SCAFFOLD)
        self.variables: tuple[Variable, ...] = ()
        """The user variables at the end of the last cell (sessions only)."""
        self.lost: list[str] = []
        """Variables lost to replaced workers since the last :meth:`prepare`."""
        self.replaced = False
        """Whether a worker was replaced since the last :meth:`prepare`."""

    # -- a session's contexts and history -------------------------------------------

    def keep(self, contexts: Mapping[str, Any], history: list[dict[str, Any]]) -> None:
        """Session mode: ``contexts`` by name (the first is ``context``; those not yet in
        the worker are staged at the next :meth:`prepare`) and ``history``."""
        self._kept = dict(contexts)
        self._history = list(history)

    @property
    def kept(self) -> bool:
        return self._kept is not None

    async def start(
        self,
        context: Any,
        handler: Callable[[str, dict[str, Any]], Any],
        functions: list[FunctionSpec],
        max_output_chars: int,
    ) -> Session:
        self._handler = handler
        specs = list(functions)
        if self._kept is not None:
            specs.append(FunctionSpec(SESSION_FUNCTION, "(internal: the session's contexts)"))
            self._skip = sorted(SCAFFOLD | {f.name for f in specs})

        def start() -> None:  # kept on self even if the run was cancelled meanwhile
            session = self.sandbox.start(
                context, self._dispatch, functions=specs, max_output_chars=max_output_chars
            )
            with self._closing:
                closed = self._closed
                if not closed:
                    self.session = session
            if closed:  # shut down while it started: nothing may outlive the shutdown
                session.close()
                raise SandboxError("the REPL was shut down while its sandbox started")

        await self._blocking(start)
        assert self.session is not None
        return self.session

    def attach(self, handler: Handler) -> None:
        """A session's next run: its host functions answer the REPL's calls."""
        self._handler = handler

    async def prepare(self) -> tuple[tuple[Variable, ...], tuple[str, ...], bool]:
        """Before a session's question: ``contexts`` and ``history`` set (a worker replaced
        since is found here and restored). Returns the variables, those lost since the
        last question, and whether a worker was replaced."""
        pending = [d for d in self._threads if not d.is_set()]
        if pending:  # a cell of an interrupted question still runs: it must not share
            self._interrupt()  # the worker with this one's (a fresh one replaces it)
            await run_blocking(_wait_all, pending, SESSION_CLOSE_WAIT_S)
        self._threads = [d for d in self._threads if not d.is_set()]
        await self._blocking(self._prepare)
        lost, replaced = tuple(dict.fromkeys(self.lost)), self.replaced
        self.lost, self.replaced = [], False
        return self.variables, lost, replaced

    def _prepare(self) -> None:
        result = self._setup()
        if result.state_lost:  # the worker had died since the last question
            self._replaced()
            result = self._setup()
        self._check(result, "setting up the session's REPL")
        self._list_variables()

    def _setup(self) -> ExecResult:
        assert self.session is not None and self._kept is not None
        return self.session.execute(_SETUP % json.dumps(list(self._kept)))

    def _replaced(self) -> None:
        self.lost.extend(v.name for v in self.variables)
        self.variables = ()
        self.replaced = True

    def _check(self, result: ExecResult, what: str) -> None:
        if result.error is not None or result.state_lost:
            raise SandboxError(f"{what} failed: {result.error or 'the worker died'}")

    def _list_variables(self) -> None:
        assert self.session is not None
        self._reported = None
        result = self.session.execute(_LIST % (json.dumps(self._skip), MAX_VARIABLES))
        if result.state_lost:
            self._replaced()
            self._check(self._setup(), "restoring the session's contexts")
            return
        self.variables = self._reported or ()

    def _dispatch(self, name: str, params: dict[str, Any]) -> Any:
        if name == SESSION_FUNCTION and self._kept is not None:
            return self._serve(params.get("args"))
        handler = self._handler
        if handler is None:
            raise RuntimeError("no question is running: host functions answer only during one")
        return handler(name, params)

    def _serve(self, args: Any) -> Any:
        """The hidden function's answers. Its arguments come from the worker: hostile."""
        if not isinstance(args, list) or not args or not isinstance(args[0], str):
            raise TypeError("malformed call")
        what = args[0]
        if what == "history":
            return self._history
        if what == "vars" and len(args) == 2 and isinstance(args[1], list):
            self._reported = _variables(args[1])
            return None
        if what == "context" and len(args) == 3:
            name, offset = args[1], args[2]
            if (
                isinstance(name, str)
                and self._kept is not None
                and name in self._kept
                and isinstance(offset, int)
                and not isinstance(offset, bool)
                and offset >= 0
            ):
                return self._piece(name, offset)
        raise ValueError("malformed call")

    def _piece(self, name: str, offset: int) -> dict[str, Any]:
        assert self._kept is not None
        if self._serving is None or self._serving[0] != name:
            kind, text = _serialise(self._kept[name])
            self._serving = (name, kind, text)
        _, kind, text = self._serving
        end = offset + CONTEXT_PIECE_CHARS
        more = end < len(text)
        piece = text[offset:end]
        if not more:
            self._serving = None
        return {"kind": kind, "text": piece, "next": end if more else None}

    # -- cells ------------------------------------------------------------------------

    async def execute(self, code: str) -> ExecResult:
        assert self.session is not None
        return await self._blocking(self._execute, code)

    def _execute(self, code: str) -> ExecResult:
        assert self.session is not None
        result = self.session.execute(code)
        if self._kept is None:
            return result
        if result.state_lost:
            lost = [v.name for v in self.variables]
            self._replaced()
            self._check(self._setup(), "restoring the session's contexts")
            names = ", ".join(lost) if lost else "none were defined"
            note = (
                f"Variables lost: {names}. `contexts`, `context` and `history` were loaded again."
            )
            error = f"{result.error}\n{note}" if result.error else note
            result = dataclasses.replace(result, error=error)
        self._list_variables()
        return result

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        done = threading.Event()
        self._threads.append(done)

        def target() -> T:
            try:
                return fn(*args)
            finally:
                done.set()

        return await run_blocking(target)

    async def shutdown(self, cancel_calls: Callable[[], Awaitable[None]]) -> None:
        """Cancel host calls in flight (``cancel_calls``: child runs close their own
        sandboxes), kill the sandbox, wait for a cell's thread to notice, and close
        again (a sandbox may have restarted its worker while it died)."""
        try:
            await cancel_calls()
        finally:
            self._close()
            pending = [d for d in self._threads if not d.is_set()]
            if pending:
                await run_blocking(_wait_all, pending, SESSION_CLOSE_WAIT_S)
                self._close()

    async def release(self, cancel_calls: Callable[[], Awaitable[None]]) -> None:
        """A session's run ends, the REPL stays: cancel its host calls; a cell still
        running after :data:`CANCEL_GRACE_S` has its worker killed (a fresh one, with
        the contexts, replaces it; the next question is told what was lost)."""
        try:
            await cancel_calls()
        finally:
            pending = [d for d in self._threads if not d.is_set()]
            if pending:
                await run_blocking(_wait_all, pending, CANCEL_GRACE_S)
                if any(not d.is_set() for d in pending):
                    self._interrupt()
                    await run_blocking(_wait_all, pending, SESSION_CLOSE_WAIT_S)
            self._threads = [d for d in self._threads if not d.is_set()]
            self._handler = None

    def _interrupt(self) -> None:
        """Kill the worker of a cell that will not end (its session replaces it)."""
        pid = getattr(self.session, "pid", None)
        if isinstance(pid, int) and pid > 0:
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)

    @property
    def busy(self) -> bool:
        """Whether a cell's thread is still running."""
        return any(not d.is_set() for d in self._threads)

    def close(self) -> None:
        """Kill the sandbox for good (a session's end)."""
        self._handler = None
        self._close()

    def _close(self) -> None:
        with self._closing:
            self._closed = True
            session = self.session
        if session is not None:
            session.close()


def _wait_all(events: list[threading.Event], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))


def _variables(found: list[Any]) -> tuple[Variable, ...]:
    """The worker's variable listing, checked (it is hostile)."""
    out: list[Variable] = []
    for item in found[:MAX_VARIABLES]:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        name, kind, size = item
        if not isinstance(name, str) or not isinstance(kind, str):
            continue
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            size = None
        out.append(Variable(name[:MAX_NAME_CHARS], kind[:MAX_NAME_CHARS], size))
    return tuple(out)


def _serialise(value: Any) -> tuple[str, str]:
    """A context as the worker reads it: ``("text", str)`` or ``("json", str)``."""
    if isinstance(value, Path):
        return "text", value.read_text(encoding="utf-8", errors="replace")
    if isinstance(value, str):
        return "text", value
    return "json", json.dumps(value, ensure_ascii=False)
