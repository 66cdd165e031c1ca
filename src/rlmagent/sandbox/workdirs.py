"""Temporary directories that a later process can tell are abandoned.

Each sandbox session keeps a copy of its context in a work directory, and each host
process keeps the compiled worker in another. Both are removed on close and at exit, but
a host killed with SIGKILL cannot remove them. So every such directory is created with an
exclusive ``flock`` on it, held by the creating process while the directory is in use
(the kernel drops the lock when the process dies, however it dies). The first sandbox of
every later process removes the directories of :data:`PREFIX` whose lock it can take.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

PREFIX = "rlmagent-"
"""Name prefix of every locked directory (no other program's directories are touched)."""

GRACE_S = 60.0
"""Directories younger than this are never removed: their creator may not hold the lock
yet (it takes it right after creating the directory)."""

_swept = False
_sweep_lock = threading.Lock()


class LockedDir:
    """A private (0700) directory under the temporary directory, locked while open."""

    def __init__(self, kind: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-"))
        try:
            self._fd: int | None = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            shutil.rmtree(self.path, ignore_errors=True)
            raise

    def remove(self) -> None:
        """Delete the directory, then release the lock. Safe to call twice."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sweep_abandoned(root: str | Path | None = None) -> list[Path]:
    """Remove this user's :data:`PREFIX` directories in ``root`` (default: the temporary
    directory) that are older than :data:`GRACE_S` and locked by no process."""
    root = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PREFIX):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if (
                not entry.is_dir(follow_symlinks=False)
                or st.st_uid != os.getuid()
                or time.time() - st.st_mtime < GRACE_S
            ):
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live process holds it
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
        finally:
            os.close(fd)
    return removed


def sweep_once() -> None:
    """:func:`sweep_abandoned` the first time this process calls it; never raises."""
    global _swept
    with _sweep_lock:
        if _swept:
            return
        _swept = True
    with contextlib.suppress(Exception):
        sweep_abandoned()
