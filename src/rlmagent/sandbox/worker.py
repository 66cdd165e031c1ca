"""The REPL that runs model-written code: the namespace, the scaffold, output capture.

This file runs inside the sandbox as a script (``python -I -S worker.py``) and uses only
the standard library. :class:`Repl` is also used directly by the in-process sandbox.

Inside the REPL the model sees ``context`` and the scaffold functions: ``llm_query``,
``llm_batch``, ``FINAL``, ``FINAL_VAR``, ``SHOW_VARS``, ``chunks``, ``search`` and one
function per host tool. Every host function is a stub that sends a ``call`` frame and
waits for the reply; ``chunks`` and ``search`` are plain Python that runs in the REPL
(``textops.py``, staged beside this file).
After each cell the scaffold names are bound again, so rebinding them cannot break
later turns. A cell that ran to its end (or to FINAL) and displayed a slice of a list or
tuple that left items out gets a line saying so at the end of its output
(``[note: hits[:5] showed 5 of 6 items; 1 not shown]``; see ``displayed_slices``).
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
    from rlmagent.sandbox import protocol, textops
else:  # run as a script inside the sandbox
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.append(_here)  # last: nothing in this directory can shadow the stdlib
    import protocol  # type: ignore[import-not-found, no-redef]
    import textops  # type: ignore[import-not-found, no-redef]

    sys.path.remove(_here)
    del _here

if TYPE_CHECKING:
    CallHost = Callable[[str, dict[str, Any]], Any]
chunks = textops.chunks
MAX_TRACEBACK_LINES = 30
MAX_FINAL_CHARS = 4 * 1024 * 1024
MAX_SLICE_NOTES = 5
MAX_NOTE_NODES = 100_000  # a cell's AST nodes looked at for slice notes; then it stops


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


def _short_repr(value: Any, cap: int) -> str:
    if isinstance(value, str | bytes) and len(value) > cap:
        return repr(value[:cap])
    return repr(value)


# -- notes on sliced output ----------------------------------------------------------------
#
# A cell that shows ``hits[:5]`` of a six-item list has the model see five and think it
# has seen them all. After a cell has run, the slices it displayed (in a ``print(...)``
# call's arguments or in the displayed last expression) of a list or tuple variable are
# measured against that variable's value, and a line is added for each that left items
# out: ``[note: hits[:5] showed 5 of 6 items; 1 not shown]``. Static and cheap: the AST
# is already there; nothing of the model's code runs (lengths are read with
# ``list.__len__`` / ``tuple.__len__``, not ``len``).

_NO_BOUND = object()  # a bound that is not an int constant: not a slice this looks at


def _int_bound(node: Any) -> Any:
    """The value of a slice bound: None, an int constant, ``-`` an int constant."""
    if node is None:
        return None
    sign = 1
    if isinstance(node, _ast.UnaryOp) and isinstance(node.op, _ast.USub):
        sign, node = -1, node.operand
    if isinstance(node, _ast.Constant) and type(node.value) is int:  # not a bool
        return sign * node.value
    return _NO_BOUND


def _sliced_name(node: Any) -> tuple[str, int | None, int | None] | None:
    """``(name, start, stop)`` for ``NAME[a:b]`` with int-constant (or no) bounds and no
    step (or step 1), else None."""
    if not isinstance(node.value, _ast.Name) or not isinstance(node.slice, _ast.Slice):
        return None
    piece = node.slice
    if piece.step is not None and _int_bound(piece.step) != 1:
        return None
    start, stop = _int_bound(piece.lower), _int_bound(piece.upper)
    if start is _NO_BOUND or stop is _NO_BOUND:
        return None
    return node.value.id, start, stop


def _children(node: Any) -> list[Any]:
    found = []
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, _ast.AST):
            found.append(value)
        elif isinstance(value, list):
            found.extend(item for item in value if isinstance(item, _ast.AST))
    return found


def _target_names(node: Any, into: set[str]) -> None:
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, _ast.Name):
            into.add(node.id)
        else:
            stack.extend(_children(node))


_SKIPPED = (_ast.FunctionDef, _ast.AsyncFunctionDef, _ast.ClassDef, _ast.Lambda)
# leaves and what is left out: nothing under them is looked at
_LEAVES = (_ast.Constant, _ast.Name, _ast.expr_context, *_SKIPPED)
_LOOPS = (_ast.For, _ast.AsyncFor, _ast.comprehension)
# What passes the items of a slice on to what is displayed: displays and f-strings,
# comprehensions over it, ``a if c else b``, ``+`` and ``%``, and these calls.
_PASSING = (
    _ast.Tuple,
    _ast.List,
    _ast.Set,
    _ast.Dict,
    _ast.Starred,
    _ast.JoinedStr,
    _ast.ListComp,
    _ast.SetComp,
    _ast.DictComp,
    _ast.GeneratorExp,
)
_PASSING_FUNCTIONS = frozenset(
    {"print", "str", "repr", "list", "tuple", "set", "dict", "sorted", "reversed", "enumerate"}
)
_PASSING_METHODS = frozenset({"join", "format", "dumps", "pformat"})


def _passed_on(node: Any) -> list[tuple[Any, bool]]:
    """The children of a shown ``node``, each with whether its value is shown too."""
    if isinstance(node, _PASSING):
        return [(child, True) for child in _children(node)]
    if isinstance(node, _ast.comprehension):
        return [(node.iter, True), *((test, False) for test in node.ifs)]
    if isinstance(node, _ast.FormattedValue):
        return [
            (node.value, True),
            *(() if node.format_spec is None else [(node.format_spec, False)]),
        ]
    if isinstance(node, _ast.IfExp):
        return [(node.test, False), (node.body, True), (node.orelse, True)]
    if isinstance(node, _ast.BinOp) and isinstance(node.op, (_ast.Add, _ast.Mod)):
        return [(node.left, True), (node.right, True)]
    if isinstance(node, _ast.Call):
        func = node.func
        if (isinstance(func, _ast.Name) and func.id in _PASSING_FUNCTIONS) or (
            isinstance(func, _ast.Attribute) and func.attr in _PASSING_METHODS
        ):
            return [(func, False), *((arg, True) for arg in node.args), *_quiet(node.keywords)]
    return _quiet(_children(node))


def _quiet(nodes: list[Any]) -> list[tuple[Any, bool]]:
    return [(node, False) for node in nodes]


def displayed_slices(body: list[Any], last: Any) -> list[tuple[str, int | None, int | None]]:
    """The distinct ``(name, start, stop)`` slices shown by a cell, in source order.

    ``body`` is the cell's statements, ``last`` its displayed last expression (or None).
    A slice is shown when it is ``last``, or a positional argument of a ``print(...)``
    call, or passed on to one of them whole (``[h.title for h in hits[:5]]``,
    ``", ".join(names[:3])``, ``f"{rows[:2]}"``; see ``_passed_on``), but not when its
    items go elsewhere first (``len(hits[:5])``, ``all(...)``, ``llm_query(...)``,
    ``hits[:5][0]``). Code in a function, class or lambda is left out (it may not run;
    its names may be locals), and so are names that a ``for`` or a comprehension binds:
    their value after the cell is not the one each use saw.
    """
    found: list[tuple[int, int, tuple[str, int | None, int | None]]] = []
    loop_names: set[str] = set()
    stack: list[tuple[Any, bool]] = _quiet(body)
    if last is not None:
        stack.append((last, True))
    budget = MAX_NOTE_NODES
    while stack and budget > 0:
        budget -= 1
        node, shown = stack.pop()
        if isinstance(node, _LEAVES):
            continue
        if isinstance(node, _LOOPS):
            _target_names(node.target, loop_names)
        if isinstance(node, _ast.Subscript) and shown:
            key = _sliced_name(node)
            if key is not None:
                found.append((node.lineno, node.col_offset, key))
        if (
            isinstance(node, _ast.Call)
            and isinstance(node.func, _ast.Name)
            and node.func.id == "print"
        ):
            shown = True  # a print shows its arguments wherever it is
        stack.extend(_passed_on(node) if shown else _quiet(_children(node)))
    keys: list[tuple[str, int | None, int | None]] = []
    for _, _, key in sorted(found):
        if key not in keys and key[0] not in loop_names:
            keys.append(key)
    return keys


def slice_notes(
    slices: list[tuple[str, int | None, int | None]], namespace: dict[str, Any]
) -> list[str]:
    """A note for each slice of a list or tuple in ``namespace`` that left items out."""
    notes: list[str] = []
    for name, start, stop in slices:
        value: Any = namespace.get(name)
        kind = type(value)
        if issubclass(kind, list):
            size = list.__len__(value)
        elif issubclass(kind, tuple):
            size = tuple.__len__(value)
        else:  # str, bytes, arrays, a name not defined...: slicing them says nothing
            continue
        shown = len(range(size)[start:stop])
        if shown >= size:
            continue
        text = f"{name}[{'' if start is None else start}:{'' if stop is None else stop}]"
        if len(notes) == MAX_SLICE_NOTES:
            notes.append("[note: more sliced sequences also left items out]")
            break
        notes.append(
            f"[note: {text} showed {shown:,} of {size:,} items; {size - shown:,} not shown]"
        )
    return notes


def add_notes(text: str, total: int, notes: list[str], cap: int) -> tuple[str, int]:
    """``(text, total)`` of a capped stream with ``notes`` added as lines at its end.

    The notes are kept even when the stream ran past ``cap``: they take the place of its
    last kept characters, and ``total`` grows by what was added, so that the host's
    ``cut(text, total, cap)`` still counts exactly the characters of the cell's own
    output that were not kept. Notes longer than half of ``cap`` are left out.
    """
    body = "".join(f"{note}\n" for note in notes)
    if not body or len(body) > cap // 2:
        return text, total
    sep = "\n" if text and not text.endswith("\n") else ""
    if total + len(sep) + len(body) <= cap:  # all of it fits: then text is all there was
        return text + sep + body, total + len(sep) + len(body)
    body = body[:-1]  # cut() starts its own line
    prefix = text[: cap - len(body)]
    sep = ""
    if prefix and not prefix.endswith("\n"):
        prefix, sep = prefix[:-1], "\n"
    return prefix + sep + body, total + len(sep) + len(body)


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
            "search": self._search,
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

    def _search(
        self, pattern: str, text: Any = None, flags: int = 0, *, width: int = textops.SEARCH_WIDTH
    ) -> list[str]:
        """The passages of ``text`` (default: ``context``) where the regex ``pattern``
        matches, case ignored: the sentence around each match (see ``textops.search``)."""
        if text is None:
            text = self.namespace.get("context")
        hits = textops.search(pattern, text, flags, width=width)
        if not hits and " " in pattern.strip():  # the passages of its rarest word
            hits, note = textops.fallback(pattern, text, width)
            print(note)
        return hits

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
        tree: Any = None
        last: Any = None
        ran = False
        notes: list[str] = []
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            self.sources[filename] = code
            self._share_sources()
            tree = compile(code, filename, "exec", _ast.PyCF_ONLY_AST)
            if tree.body and isinstance(tree.body[-1], _ast.Expr):
                last = _ast.Expression(tree.body.pop().value)
            exec(compile(tree, filename, "exec"), self.namespace)
            if last is not None:
                value = eval(compile(last, filename, "eval"), self.namespace)
                if value is not None:
                    print(_short_repr(value, self.max_output_chars))
            ran = True
        except _Final:
            ran = True
        except BaseException as exc:  # the model's errors are data
            error = self._format_error(exc, filename)
        finally:
            sys.stdout, sys.stderr = old_out, old_err
            if ran:  # before the scaffold is bound again: the cell's own ``context``
                notes = self._slice_notes(tree, last)
            self.namespace.update(self.scaffold)
            self.namespace["__builtins__"] = builtins
        final = self.final
        if final is not None and len(final) > MAX_FINAL_CHARS:
            final = final[:MAX_FINAL_CHARS]
        output, output_chars = add_notes(out.getvalue(), out.total, notes, self.max_output_chars)
        return {
            "output": output,
            "output_chars": output_chars,
            "stderr": err.getvalue(),
            "stderr_chars": err.total,
            "error": error,
            "final": final,
        }

    def _slice_notes(self, tree: Any, last: Any) -> list[str]:
        """Notes on the cell's displayed slices that left items out; never raises."""
        try:
            slices = displayed_slices(tree.body, None if last is None else last.body)
            return slice_notes(slices, self.namespace) if slices else []
        except Exception:  # a note is a courtesy: it must never break a working cell
            return []

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


def load_context(path: str | None, kind: str, fd: Any = None) -> Any:
    """The context from its file, or from a descriptor the host passed (then closed)."""
    if kind == "none" or (path is None and not isinstance(fd, int)):
        return None
    source = fd if isinstance(fd, int) and path is None else path
    with open(source, encoding="utf-8", errors="replace") as f:  # type: ignore[arg-type]
        return protocol.loads(f.read()) if kind == "json" else f.read()


def close_other_fds(keep: tuple[int, ...]) -> None:
    """Close every descriptor but ``keep``: nothing a launcher left open (bubblewrap's
    set-up descriptors, a context's) reaches model code."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:  # no /proc here (the Landlock tier): every number between the kept
        start = 0
        for fd in [*sorted(set(keep)), os.sysconf("SC_OPEN_MAX")]:
            if fd > start:
                os.closerange(start, fd)
            start = fd + 1
        return
    for fd in fds:
        if fd not in keep:
            try:  # noqa: SIM105 - contextlib would cost the worker's start-up
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, already closed


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


# -- issue 15: what the worker sends stays within the host's limits ---------------------
FIT_FINAL_CHARS = 1024 * 1024
FIT_TEXT_CHARS = 100_000


def done_frame(done: dict[str, Any]) -> bytes:
    """The ``done`` frame; a result over the worker's frame limit is cut to fit (at most
    6 bytes a character: the answer to ``FIT_FINAL_CHARS``, each text to
    ``FIT_TEXT_CHARS``) and the error says so."""
    try:
        return protocol.encode(done, max_bytes=protocol.WORKER_FRAME_BYTES)
    except protocol.FrameError as exc:
        why = f"the cell's result was cut to fit a frame to the host ({exc})"
    fitted = dict(done)
    for key in ("output", "stderr", "error"):
        if isinstance(fitted.get(key), str):
            fitted[key] = fitted[key][:FIT_TEXT_CHARS]
    if isinstance(fitted.get("final"), str):
        fitted["final"] = fitted["final"][:FIT_FINAL_CHARS]
    fitted["error"] = why + (f"\n{fitted['error']}" if fitted.get("error") else "")
    return protocol.encode(fitted, max_bytes=protocol.WORKER_FRAME_BYTES)


# -- end of issue 15 ------------------------------------------------------------------


def main() -> int:
    # Keep private copies of the channel and point fds 0-2 elsewhere, so model code that
    # writes to fd 1 directly cannot corrupt the frame stream by accident.
    rx = os.fdopen(os.dup(0), "rb", buffering=0)
    tx = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - /dev/null now

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
            try:  # issue 15: a call over the limits fails in the cell, the host never sees it
                frame = protocol.encode(
                    {"type": "call", "id": call_id, "method": method, "params": params},
                    max_bytes=protocol.WORKER_FRAME_BYTES,
                    max_items=protocol.WORKER_FRAME_ITEMS,
                )
            except protocol.FrameError as exc:
                name = method if len(str(method)) <= 80 else protocol.shown(str(method))
                raise HostCallError(f"{name}: the call is too large: {exc}") from None
            tx.write(frame)
            tx.flush()
            reply = protocol.read_frame(rx)
        if reply is None:
            raise SystemExit(0)
        if reply.get("type") != "reply" or reply.get("id") != call_id:
            raise HostCallError("the host sent an unexpected reply")
        if not reply.get("ok"):
            raise HostCallError(str(reply.get("error", "call failed")))
        return reply.get("value")

    context = load_context(
        init.get("context_path"), init.get("context_kind", "none"), init.get("context_fd")
    )
    if sys.platform.startswith("linux"):
        close_other_fds((0, 1, 2, rx.fileno(), tx.fileno()))
    repl = Repl(
        context,
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
        tx.write(done_frame(done))
        tx.flush()


if __name__ == "__main__":
    sys.exit(main())
