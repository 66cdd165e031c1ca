"""The REPL that runs model-written code: the namespace, the scaffold, output capture.

This file runs inside the sandbox as a script (``python -I -S worker.py``) and uses only
the standard library. :class:`Repl` is also used directly by the in-process sandbox.

Inside the REPL the model sees ``context`` and the scaffold functions: ``llm_query``,
``llm_batch``, ``FINAL``, ``FINAL_VAR``, ``SHOW_VARS``, ``chunks`` and one function per
host tool. Every host function is a stub that sends a ``call`` frame and waits for the
reply; ``chunks`` is plain Python that runs in the REPL.
After each cell the scaffold names are bound again, so rebinding them cannot break
later turns.
"""

from __future__ import annotations

# Start-up time matters (a fresh worker per run and after every kill), so this module
# imports only what Python has loaded anyway or what costs next to nothing: ``_ast``, not
# ``ast``; ``_thread``, not ``threading``; no ``typing``, ``json`` (see protocol.py) or
# ``linecache`` (loaded on the first error). Model code imports what it needs.
import _ast
import _thread
import builtins
import io
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

if __package__:
    from rlmagent.sandbox import protocol
else:  # run as a script inside the sandbox
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import protocol  # type: ignore[import-not-found, no-redef]

    del sys.path[0]  # the package's other modules must not shadow the stdlib's

if TYPE_CHECKING:
    CallHost = Callable[[str, dict[str, Any]], Any]
MAX_TRACEBACK_LINES = 30
MAX_FINAL_CHARS = 4 * 1024 * 1024


class HostCallError(Exception):
    """A call to the host (``llm_query``, a tool) failed; the message says why."""


class _Final(BaseException):
    """Raised by FINAL / FINAL_VAR to stop the cell at once."""


class CappedBuffer(io.TextIOBase):
    """A text stream that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.kept = 0
        self.total = 0
        self._lock = _thread.allocate_lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        with self._lock:
            self.total += len(s)
            room = self.cap - self.kept
            if room > 0:
                piece = s[:room]
                self.parts.append(piece)
                self.kept += len(piece)
        return len(s)

    def getvalue(self) -> str:
        return "".join(self.parts)


def chunks(text: str, max_chars: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_chars`` characters, cut after a
    newline wherever one fits (a longer line is cut every ``max_chars`` characters).

    ``"".join(chunks(text, n)) == text``, and ``chunks("", n) == []``.
    """
    if not isinstance(text, str):
        raise TypeError(f"chunks(): text must be a str, not {type(text).__name__}")
    if isinstance(max_chars, bool) or not isinstance(max_chars, int):
        raise TypeError(
            f"chunks(): max_chars must be a positive int, not {type(max_chars).__name__}"
        )
    if max_chars <= 0:
        raise ValueError(f"chunks(): max_chars must be a positive int, not {max_chars}")
    pieces = []
    start, size = 0, len(text)
    while start < size:
        end = start + max_chars
        if end < size:
            newline = text.rfind("\n", start, end)
            if newline >= 0:  # else one line longer than max_chars: cut it there
                end = newline + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _short_repr(value: Any, cap: int) -> str:
    if isinstance(value, str | bytes) and len(value) > cap:
        return repr(value[:cap])
    return repr(value)


class Repl:
    """A persistent namespace with the RLM scaffold, executing one cell at a time."""

    def __init__(
        self,
        context: Any,
        call_host: CallHost,
        *,
        functions: list[dict[str, str]] | None = None,
        max_output_chars: int = 10_000,
    ) -> None:
        self.call_host = call_host
        self.max_output_chars = max_output_chars
        self.cells = 0
        self.sources: dict[str, str] = {}
        self.final: str | None = None
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        self.scaffold: dict[str, Any] = {
            "context": context,
            "FINAL": self._final,
            "FINAL_VAR": self._final_var,
            "SHOW_VARS": self._show_vars,
            "chunks": chunks,
        }
        for spec in functions or []:
            self.scaffold[spec["name"]] = self._host_function(spec["name"], spec.get("doc", ""))
        self.namespace.update(self.scaffold)

    # -- scaffold functions -------------------------------------------------------------

    def _host_function(self, name: str, doc: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return self.call_host(name, {"args": list(args), "kwargs": kwargs})

        call.__name__ = call.__qualname__ = name
        call.__doc__ = doc
        return call

    def _final(self, value: Any) -> None:
        """End the run with ``value`` (converted to str) as the answer."""
        self.final = value if isinstance(value, str) else str(value)
        raise _Final

    def _final_var(self, name: Any) -> None:
        """End the run with the value of the REPL variable called ``name``."""
        if not isinstance(name, str):
            self._final(name)
        key = name.strip().strip("'\"")
        if key not in self.namespace:
            names = ", ".join(sorted(self._user_names())) or "none"
            raise NameError(
                f"FINAL_VAR: no variable named {key!r} (variables defined: {names}); "
                "assign it first or use FINAL(value)"
            )
        self._final(self.namespace[key])

    def _user_names(self) -> list[str]:
        return [
            k
            for k in self.namespace
            if not k.startswith("_") and k not in self.scaffold and k != "__builtins__"
        ]

    def _show_vars(self) -> dict[str, str]:
        """The names defined so far in the REPL, with their types."""
        return {k: type(self.namespace[k]).__name__ for k in self._user_names()}

    # -- execution ----------------------------------------------------------------------

    def run_cell(self, code: str) -> dict[str, Any]:
        """Execute one cell; return the ``done`` fields (output, stderr, error, final)."""
        self.cells += 1
        self.final = None
        filename = f"<cell {self.cells}>"
        out = CappedBuffer(self.max_output_chars)
        err = CappedBuffer(self.max_output_chars)
        error: str | None = None
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            self.sources[filename] = code
            self._share_sources()
            tree: Any = compile(code, filename, "exec", _ast.PyCF_ONLY_AST)
            last = None
            if tree.body and isinstance(tree.body[-1], _ast.Expr):
                last = _ast.Expression(tree.body.pop().value)
            exec(compile(tree, filename, "exec"), self.namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), self.namespace)
                if value is not None:
                    print(_short_repr(value, self.max_output_chars))
        except _Final:
            pass
        except BaseException as exc:  # the model's errors are data
            error = self._format_error(exc, filename)
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            self.namespace.update(self.scaffold)
            self.namespace["__builtins__"] = builtins
        final = self.final
        if final is not None and len(final) > MAX_FINAL_CHARS:
            final = final[:MAX_FINAL_CHARS]
        return {
            "output": out.getvalue(),
            "output_chars": out.total,
            "stderr": err.getvalue(),
            "stderr_chars": err.total,
            "error": error,
            "final": final,
        }

    def _share_sources(self) -> None:
        """Show the cells' code to ``linecache`` (tracebacks, ``inspect``) once loaded."""
        linecache = sys.modules.get("linecache")
        if linecache is None:
            return
        for name, code in self.sources.items():
            if name not in linecache.cache:
                linecache.cache[name] = (len(code), None, code.splitlines(True), name)

    def _format_error(self, exc: BaseException, filename: str) -> str:
        import traceback

        self._share_sources()

        if isinstance(exc, SyntaxError) and exc.filename == filename:
            lines = traceback.format_exception_only(type(exc), exc)
        else:
            frames = [
                f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<")
            ]
            lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
            lines.insert(0, "Traceback (most recent call last):\n")
        text = "".join(lines).splitlines()
        if len(text) > MAX_TRACEBACK_LINES:
            text = ["...", *text[-MAX_TRACEBACK_LINES:]]
        return "\n".join(text)


# -- the worker process ------------------------------------------------------------------


def load_context(path: str | None, kind: str) -> Any:
    if kind == "none" or path is None:
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return protocol.loads(f.read()) if kind == "json" else f.read()


def drop_privileges(user: Any) -> None:
    """Switch to ``[uid, gid]`` for good (the bubblewrap tier on a root host)."""
    uid, gid = int(user[0]), int(user[1])
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getgroups():
        raise SystemExit(3)  # fail closed: never run model code with privileges


def harden(options: dict[str, Any]) -> list[str]:
    """Plain tier: die with the host, adopt orphaned descendants (so that they can be
    killed), and install the host's seccomp filter. Returns what was applied."""
    if not sys.platform.startswith("linux"):
        return []
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return []
    applied = []
    if options.get("parent_death_signal") and prctl(1, 9, 0, 0, 0) == 0:  # PDEATHSIG, KILL
        applied.append("parent_death_signal")
    if options.get("subreaper") and prctl(36, 1, 0, 0, 0) == 0:  # PR_SET_CHILD_SUBREAPER
        applied.append("subreaper")
    program = options.get("seccomp")
    if isinstance(program, str) and program:

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        code = bytes.fromhex(program)
        buffer = ctypes.create_string_buffer(code, len(code))
        fprog = SockFprog(len(code) // 8, ctypes.addressof(buffer))
        # PR_SET_NO_NEW_PRIVS, then PR_SET_SECCOMP with SECCOMP_MODE_FILTER
        if prctl(38, 1, 0, 0, 0) == 0 and prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0:
            applied.append("seccomp")
    return applied


def main() -> int:
    # Keep private copies of the channel and point fds 0-2 elsewhere, so model code that
    # writes to fd 1 directly cannot corrupt the frame stream by accident.
    rx = os.fdopen(os.dup(0), "rb", buffering=0)
    tx = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115

    init = protocol.read_frame(rx)
    if init is None or init.get("type") != "init":
        return 2
    if init.get("user") is not None:
        drop_privileges(init["user"])
    hardening = harden(init["harden"]) if isinstance(init.get("harden"), dict) else []
    lock = _thread.allocate_lock()
    next_id = iter(range(1, 1 << 62))

    def call_host(method: str, params: dict[str, Any]) -> Any:
        with lock:  # one call in flight at a time: replies cannot interleave
            call_id = next(next_id)
            protocol.write_frame(
                tx, {"type": "call", "id": call_id, "method": method, "params": params}
            )
            reply = protocol.read_frame(rx)
        if reply is None:
            raise SystemExit(0)
        if reply.get("type") != "reply" or reply.get("id") != call_id:
            raise HostCallError("the host sent an unexpected reply")
        if not reply.get("ok"):
            raise HostCallError(str(reply.get("error", "call failed")))
        return reply.get("value")

    repl = Repl(
        load_context(init.get("context_path"), init.get("context_kind", "none")),
        call_host,
        functions=init.get("functions", []),
        max_output_chars=int(init.get("max_output_chars", 10_000)),
    )
    repl.scaffold["HostCallError"] = HostCallError
    repl.namespace["HostCallError"] = HostCallError
    protocol.write_frame(tx, {"type": "ready", "hardening": hardening})
    while True:
        message = protocol.read_frame(rx)
        if message is None or message.get("type") != "exec":
            return 0
        done = repl.run_cell(str(message.get("code", "")))
        done.update(type="done", id=message.get("id"))
        protocol.write_frame(tx, done)


if __name__ == "__main__":
    sys.exit(main())
