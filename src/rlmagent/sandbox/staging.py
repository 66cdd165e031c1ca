"""The worker's own code, as every tier gets it: compiled once, kept in host memory,
checked against that copy before each start.

The worker (``worker.py`` and its companions ``protocol.py`` and ``textops.py``) is
compiled once per host process and the six files (sources and bytecode) are kept in
memory. A worker of one tier must not be able to change what a later worker runs,
whatever the tier (a cell of the plain tier, run as the host's user, can write to any
directory of that user):

- the bubblewrap tier gets the files from memory (``--ro-bind-data``): nothing on the
  host's disk is trusted, and no host path appears in its mount table;
- the other tiers run from a staged directory that :func:`staged_worker` compares with
  the in-memory copy before every start (names, bytes, file types): a planted module, a
  rewritten file or a replaced directory is thrown away and staged afresh.

The launcher also never puts that directory first on ``sys.path`` (it is appended, and
removed once the worker is imported), so a planted module cannot shadow the standard
library even between the check and the start.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import py_compile
import stat
import tempfile
import threading
from pathlib import Path

from rlmagent.sandbox.workdirs import LockedDir

DEFAULT_WORKER = Path(__file__).with_name("worker.py")
COMPANIONS = ("protocol.py", "textops.py")
"""The modules the worker imports from its own directory, staged with it."""
PYCACHE = "__pycache__"

LAUNCH = (
    "import os, sys; d = os.path.dirname(sys.argv[1]); sys.path.append(d); "
    "import worker; sys.path.remove(d); sys.exit(worker.main())"
)
"""Imports the worker (its bytecode is ready) instead of running it as a script (compiled
from source every time), with its directory last on ``sys.path``. The worker's path stays
on the command line, for ``ps``."""

_lock = threading.Lock()
_code: dict[Path, dict[str, bytes] | None] = {}
_staged: dict[Path, LockedDir] = {}


def worker_files(worker: Path) -> dict[str, bytes] | None:
    """``{relative path: bytes}`` of the compiled worker (sources and bytecode), made once
    per process; None where it cannot be compiled (then the worker runs from source)."""
    with _lock:
        if worker not in _code:
            _code[worker] = _compile(worker)
        return _code[worker]


def _compile(worker: Path) -> dict[str, bytes] | None:
    files: dict[str, bytes] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="rlmagent-compile-") as scratch:
            for source in (worker, *(worker.with_name(n) for n in COMPANIONS)):
                data = source.read_bytes()
                copy = Path(scratch) / source.name
                copy.write_bytes(data)
                cfile = importlib.util.cache_from_source(str(copy))
                py_compile.compile(
                    str(copy),
                    cfile=cfile,
                    doraise=True,
                    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
                )
                files[source.name] = data
                files[f"{PYCACHE}/{Path(cfile).name}"] = Path(cfile).read_bytes()
    except (OSError, py_compile.PyCompileError):
        return None
    return files


def staged_worker(worker: Path) -> Path | None:
    """A directory holding exactly the compiled worker, checked against the in-memory copy
    now (restaged if anything differs); None if the worker cannot be staged."""
    files = worker_files(worker)
    if files is None:
        return None
    with _lock:
        staged = _staged.get(worker)
        if staged is not None and not matches(staged.path, files):
            staged.remove()
            staged = None
        if staged is None:
            staged = _stage(files)
            if staged is None:
                _staged.pop(worker, None)
                return None
            _staged[worker] = staged
        return staged.path


def _stage(files: dict[str, bytes]) -> LockedDir | None:
    try:
        locked = LockedDir("worker")
    except OSError:
        return None
    atexit.register(locked.remove)
    try:
        (locked.path / PYCACHE).mkdir()
        for name, data in files.items():
            target = locked.path / name
            target.write_bytes(data)
            target.chmod(0o644)
        for path in (locked.path, locked.path / PYCACHE):
            path.chmod(0o755)  # readable by a sandbox's unprivileged user
    except OSError:
        locked.remove()
        return None
    return locked


def matches(directory: Path, files: dict[str, bytes]) -> bool:
    """Whether ``directory`` holds exactly ``files`` (no more, no links, same bytes)."""
    try:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            return False
        expected = {name.split("/")[0] for name in files}
        if set(os.listdir(directory)) != expected:
            return False
        if set(os.listdir(directory / PYCACHE)) != {
            name.split("/")[1] for name in files if "/" in name
        }:
            return False
        for name, data in files.items():
            path = directory / name
            if not stat.S_ISREG(os.lstat(path).st_mode) or path.read_bytes() != data:
                return False
        return stat.S_ISDIR(os.lstat(directory / PYCACHE).st_mode)
    except OSError:
        return False


def worker_command(python: str, worker: str, staged: bool) -> list[str]:
    """How to start the worker at ``worker`` (a path as the worker will see it)."""
    if staged:
        return [python, "-I", "-S", "-B", "-c", LAUNCH, worker]
    return [python, "-I", "-S", "-B", worker]
