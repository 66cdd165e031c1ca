"""The Sandbox protocol and what every sandbox shares: context staging and limits.

A :class:`Sandbox` is a reusable configuration; :meth:`Sandbox.start` launches one
persistent REPL (a :class:`Session`) holding ``context``. Model code calls back into the
host through ``handler(name, params)`` for ``llm_query``, ``llm_batch`` and tools.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rlmagent.errors import ContextTypeError, UsageError
from rlmagent.types import ExecResult

CHUNKS_DOC = (
    "`chunks(text: str, max_chars: int) -> list[str]`: `text` split into pieces of at "
    "most `max_chars` characters, cut at line ends (a longer line is cut every "
    "`max_chars`); `''.join(chunks(text, n)) == text`."
)
"""The prompt's line for the REPL's built-in ``chunks`` (see ``textops.chunks``)."""
SEARCH_DOC = (
    "`search(pattern: str, text=context) -> list[str]`: the sentences of `text` where "
    "the regular expression `pattern` matches (case ignored), each cut to 300 "
    "characters around the match, in order."
)
"""The prompt's line for the REPL's built-in ``search`` (see ``textops.search``)."""

Handler = Callable[[str, dict[str, Any]], Any]
"""Host side of a REPL function call: ``handler(name, {"args": [...], "kwargs": {...}})``."""

DEFAULT_CELL_TIMEOUT_S = 120.0
DEFAULT_CPU_SECONDS = 600
DEFAULT_MEMORY_BYTES = 4 * 1024**3
DEFAULT_TOTAL_MEMORY_BYTES = 4 * 1024**3
DEFAULT_FILE_SIZE_BYTES = 1024**3
DEFAULT_DISK_BYTES = 512 * 1024**2
DEFAULT_OPEN_FILES = 256
DEFAULT_PROCESSES = 64


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandbox worker (each a named ``DEFAULT_*`` constant).

    - ``cell_timeout_s``: wall-clock time a cell may run, not counting time spent
      waiting for the host (sub-calls, tools); then every process of the cell is killed.
    - ``cpu_seconds``: CPU time of the worker per cell (``RLIMIT_CPU``, then SIGKILL).
    - ``memory_bytes``: address space of each process (``RLIMIT_AS``).
    - ``total_memory_bytes``: resident memory of all the sandbox's processes together
      (measured every 50 ms; over it, they are all killed: see ``sandbox/memwatch.py``).
    - ``file_size_bytes``: largest file a process may write (``RLIMIT_FSIZE``).
    - ``disk_bytes``: total bytes the sandbox may keep written (its bounded tmpfs; the
      bubblewrap tier only: the plain tier has no such bound).
    - ``open_files``: file descriptors per process (``RLIMIT_NOFILE``).
    - ``processes``: processes and threads the sandbox may run at once
      (``RLIMIT_NPROC``, counted in the sandbox's own user namespace under bubblewrap).

    The output kept per cell is the ``max_output_chars`` given to ``Sandbox.start``.
    """

    cell_timeout_s: float = DEFAULT_CELL_TIMEOUT_S
    cpu_seconds: int = DEFAULT_CPU_SECONDS
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    total_memory_bytes: int = DEFAULT_TOTAL_MEMORY_BYTES
    file_size_bytes: int = DEFAULT_FILE_SIZE_BYTES
    open_files: int = DEFAULT_OPEN_FILES
    disk_bytes: int = DEFAULT_DISK_BYTES
    processes: int = DEFAULT_PROCESSES

    def __post_init__(self) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise UsageError(f"Limits.{name} must be a positive number, not {value!r}")


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """A host function shown inside the REPL (``llm_query``, a tool...)."""

    name: str
    doc: str = ""


@runtime_checkable
class Session(Protocol):
    """One running REPL. State persists across :meth:`execute` calls until :meth:`close`.

    ``isolation`` names the tier the session runs in. ``fallback_reason`` says why it is
    not the stronger tier that was asked for (``SubprocessSandbox(isolation="auto")``
    without a working bubblewrap), and is None when nothing fell back: the strong tier
    ran, or the tier was pinned. Sessions that predate it may lack the attribute: read it
    with ``getattr(session, "fallback_reason", None)``.
    """

    isolation: str
    fallback_reason: str | None = None

    def execute(self, code: str) -> ExecResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Sandbox(Protocol):
    """Launches sessions. ``isolation`` names what it isolates (see each docstring)."""

    @property
    def isolation(self) -> str: ...

    def start(
        self,
        context: Any,
        handler: Handler,
        *,
        functions: Sequence[FunctionSpec] = (),
        max_output_chars: int = 10_000,
    ) -> Session: ...


def check_context(context: Any) -> Any:
    """Validate a context value; raise :class:`ContextTypeError` naming what is wrong."""
    if context is None or isinstance(context, str):
        return context
    if isinstance(context, Path):
        if not context.is_file():
            raise ContextTypeError(f"context path {str(context)!r} is not a readable file")
        return context
    if isinstance(context, list | dict):
        try:
            json.dumps(context, allow_nan=False, check_circular=True)
        except (TypeError, ValueError) as exc:
            raise ContextTypeError(
                f"a list/dict context must be JSON-like (str, numbers, bools, None, lists, "
                f"dicts with str keys): {exc}"
            ) from None
        return context
    raise ContextTypeError(
        f"context must be str, list, dict or pathlib.Path, not {type(context).__name__}"
    )


def stage_context(context: Any, workdir: Path) -> tuple[str | None, str]:
    """Write ``context`` once into ``workdir``; return (file name, kind) for the worker."""
    if context is None:
        return None, "none"
    if isinstance(context, Path):
        target = workdir / "context.txt"
        shutil.copyfile(context, target)  # a copy: model code may write to its own
        return target.name, "text"
    if isinstance(context, str):
        target = workdir / "context.txt"
        step = 1 << 20
        with open(target, "w", encoding="utf-8", errors="surrogatepass") as f:
            for i in range(0, len(context), step):
                f.write(context[i : i + step])
        return target.name, "text"
    target = workdir / "context.json"
    with open(target, "w", encoding="utf-8") as f:
        json.dump(context, f, ensure_ascii=False)
    return target.name, "json"


def cut(text: str, total: int, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a note when anything was cut."""
    total = max(total, len(text))
    if total <= limit:
        return text
    return f"{text[:limit]}\n[... {total - limit:,} more characters cut]"
