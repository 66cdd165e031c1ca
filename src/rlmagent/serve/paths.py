"""Reading files a client names, only under directories the operator allowed.

``rlm mcp`` takes paths from its client (a coding agent, a desktop assistant: text a
model chose). A path is read only when its real location (every symlink resolved) is
inside one of the allowed directories, it is a regular file, no larger than the limit,
and it is UTF-8 text. Anything else is a :class:`PathRefused` that says which rule it
broke. Relative paths are taken from the first allowed directory. After opening, the
open file's own path (``/proc/self/fd``) is checked again, so a symlink swapped in
between the check and the open is caught too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_FILE_BYTES = 64 * 2**20
_SNIFF = 8192


class PathRefused(ValueError):
    """A path the client may not read, and why."""


@dataclass(frozen=True)
class AllowedDirs:
    """The directories files may be read from (real paths), and the size limit."""

    dirs: tuple[Path, ...]
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    @classmethod
    def of(
        cls, dirs: Sequence[str | Path], max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    ) -> AllowedDirs:
        real = []
        for d in dirs:
            path = Path(os.path.realpath(Path(d).expanduser()))
            if not path.is_dir():
                raise PathRefused(f"allowed directory {str(d)!r} is not a directory")
            real.append(path)
        if not real:
            raise PathRefused("no allowed directory was given")
        return cls(tuple(real), max_file_bytes)

    def _inside(self, path: Path) -> bool:
        return any(path == d or path.is_relative_to(d) for d in self.dirs)

    def resolve(self, name: str) -> Path:
        """The real path of ``name`` if it may be read; else :class:`PathRefused`."""
        if not isinstance(name, str) or not name or "\x00" in name:
            raise PathRefused("a path must be a non-empty string")
        given = Path(name).expanduser()
        if not given.is_absolute():
            given = self.dirs[0] / given
        real = Path(os.path.realpath(given))
        if not self._inside(real):
            literal = Path(os.path.normpath(given))
            if self._inside(literal):
                raise PathRefused(f"{name!r} is a symlink leading outside the allowed directories")
            raise PathRefused(
                f"{name!r} is outside the allowed directories ("
                + ", ".join(str(d) for d in self.dirs)
                + "); start the server with --allow-dir to allow more"
            )
        return real

    def read_text(self, name: str) -> str:
        """The UTF-8 text of an allowed regular file (see the module doc)."""
        real = self.resolve(name)
        try:
            fd = os.open(
                real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            )
        except FileNotFoundError:
            raise PathRefused(f"{name!r} does not exist") from None
        except OSError as exc:
            raise PathRefused(f"{name!r} cannot be opened: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
                raise PathRefused(f"{name!r} is {what}; name text files")
            opened = Path(f"/proc/self/fd/{fd}")
            if opened.exists() and not self._inside(Path(os.path.realpath(opened))):
                raise PathRefused(f"{name!r} is a symlink leading outside the allowed directories")
            if info.st_size > self.max_file_bytes:
                raise PathRefused(
                    f"{name!r} is {info.st_size:,} bytes, over the limit of {self.max_file_bytes:,}"
                )
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as f:
            data = f.read(self.max_file_bytes + 1)
        if len(data) > self.max_file_bytes:
            raise PathRefused(f"{name!r} is over the limit of {self.max_file_bytes:,} bytes")
        if b"\x00" in data[:_SNIFF]:
            raise PathRefused(f"{name!r} is a binary file, not text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PathRefused(
                f"{name!r} is not UTF-8 text (byte {exc.start}): a binary file?"
            ) from None
