"""The contexts a user has, for ``rlm run`` (and ``rlm chat``): files, directories, stdin.

``--context`` may be given more than once: a text file, ``-`` for stdin, or a directory
(each text file one document, keyed by its path relative to the directory, filtered by
``--include`` / ``--exclude`` globs, up to a size cap that is reported). Files are read
in ``--encoding`` (default UTF-8); a binary file or one that does not decode is a clear
message naming the file, never a traceback. An empty context is an error before any
model is called. Every problem is a :class:`~rlmagent.errors.UsageError`.
"""

from __future__ import annotations

import argparse
import codecs
import fnmatch
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from rlmagent.errors import UsageError

DEFAULT_ENCODING = "utf-8"
DEFAULT_DIR_CAP = 64 * 1024 * 1024
"""Most bytes of text one directory context loads (``--max-context-size``)."""
_SNIFF_BYTES = 8192
_READ_CHUNK = 1 << 20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)i?b?\s*$", re.I)
_NAMES_SHOWN = 5


class _Binary(UsageError):
    """The file holds a NUL byte: binary data, not text."""


class _Undecodable(UsageError):
    """The file does not decode in the encoding."""


class _Empty(UsageError):
    """The file holds nothing but whitespace."""


def add_context_options(parser: argparse.ArgumentParser) -> None:
    """``--context`` (repeatable), ``--include``, ``--exclude``, ``--max-context-size``,
    ``--encoding``."""
    parser.add_argument(
        "--context",
        "-c",
        metavar="PATH",
        action="append",
        default=None,
        help="a text file, a directory (each text file a document) or - for stdin; "
        "repeat for more contexts (the first is `context`, all are in `contexts`)",
    )
    parser.add_argument(
        "--include",
        metavar="GLOB",
        action="append",
        default=None,
        help="in a directory context, load only files whose relative path or name "
        "matches (repeatable; `*` also crosses /)",
    )
    parser.add_argument(
        "--exclude",
        metavar="GLOB",
        action="append",
        default=None,
        help="in a directory context, skip files whose relative path or name matches "
        "(repeatable); hidden files and directories are always skipped",
    )
    parser.add_argument(
        "--max-context-size",
        metavar="SIZE",
        type=parse_size,
        default=DEFAULT_DIR_CAP,
        help="most text one directory context loads, e.g. 500K, 64M (default 64M); "
        "the files left out are reported",
    )
    parser.add_argument(
        "--encoding",
        metavar="NAME",
        default=DEFAULT_ENCODING,
        help="text encoding of context files and stdin (default utf-8), e.g. latin-1",
    )


def parse_size(text: str) -> int:
    """``500K``, ``64M``, ``1G`` or a number of bytes."""
    match = _SIZE.match(text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500K, 64M, 1G)")
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
    return int(float(match.group(1)) * factor)


@dataclass
class Loaded:
    """The contexts by name, in order (the first is ``context``), and what to report."""

    contexts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def context(self) -> Any:
        """The first context (None without any): ``context`` in the REPL."""
        return next(iter(self.contexts.values()), None)


def load_contexts(args: argparse.Namespace, stdin: Any = None) -> Loaded:
    """Every ``--context`` of ``args``, checked and read; UsageError names what is wrong."""
    encoding = _check_encoding(args.encoding)
    loaded = Loaded()
    for value in args.context or []:
        context: Any
        if value == "-":
            name, context = "stdin", _read_stdin(stdin or sys.stdin, encoding)
        else:
            path = Path(value)
            name = value.rstrip("/") or value
            if path.is_dir():
                context = _read_dir(path, args, encoding, loaded.notes)
            elif path.is_file():
                context = _read_file(path, encoding)
            elif path.exists() and stat.S_ISFIFO(path.stat().st_mode):  # <(command)
                with open(path, "rb") as stream:
                    context = _check_stream(f"context {value!r}", stream, encoding, keep=True)
            elif path.exists():
                raise UsageError(f"context {value!r} is neither a file nor a directory")
            else:
                raise UsageError(f"context file {value!r} does not exist")
        if name in loaded.contexts:
            raise UsageError(f"context {name!r} is given twice")
        loaded.contexts[name] = context
    return loaded


def _check_encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise UsageError(f"unknown --encoding {name!r} (e.g. utf-8, latin-1, utf-16)") from None


def _hint(encoding: str) -> str:
    return (
        "give its encoding with --encoding (e.g. --encoding latin-1)"
        if encoding == "utf-8"
        else "check --encoding"
    )


def _decode_error(what: str, exc: UnicodeDecodeError, offset: int, encoding: str) -> UsageError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return _Undecodable(
        f"{what} is not valid {encoding} text (byte 0x{byte} at offset {offset + exc.start:,}): "
        f"{_hint(encoding)}"
    )


def _binary(head: bytes, encoding: str) -> int | None:
    """The offset of a NUL byte that marks UTF-8 (or ASCII-like) data as binary."""
    if encoding not in ("utf-8", "ascii", "latin-1", "cp1252", "iso8859-1"):
        return None  # UTF-16/32 text holds NUL bytes; its decoding decides
    at = head.find(b"\0")
    return at if at >= 0 else None


def _check_stream(what: str, stream: BinaryIO, encoding: str, keep: bool) -> str:
    """Decode ``stream`` incrementally (the text if ``keep``); UsageError if it is binary,
    does not decode, or holds nothing but whitespace."""
    decoder = codecs.getincrementaldecoder(encoding)()
    parts: list[str] = []
    offset = 0
    blank = True
    first = True
    while True:
        chunk = stream.read(_READ_CHUNK)
        if first:
            first = False
            nul = _binary(chunk[:_SNIFF_BYTES], encoding)
            if nul is not None:
                raise _Binary(
                    f"{what} looks binary (a NUL byte at offset {nul:,}), not text: "
                    "give a text file, or its encoding with --encoding"
                )
        try:
            text = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise _decode_error(what, exc, offset, encoding) from None
        offset += len(chunk)
        blank = blank and not text.strip()
        if keep:
            parts.append(text)
        if not chunk:
            break
    if blank:
        raise _Empty(f"{what} is empty: there is nothing to answer the question from")
    return "".join(parts)


def _read_file(path: Path, encoding: str) -> Any:
    """A checked text file: the Path itself when it is UTF-8 (the sandbox copies it),
    else its decoded text."""
    try:
        with open(path, "rb") as f:
            text = _check_stream(f"context file {str(path)!r}", f, encoding, encoding != "utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read context file {str(path)!r}: {exc.strerror}") from None
    return path if encoding == "utf-8" else text


def _read_stdin(stdin: Any, encoding: str) -> str:
    buffer = getattr(stdin, "buffer", None)
    if buffer is not None:
        return _check_stream("stdin", buffer, encoding, keep=True)
    text = stdin.read()  # already text (a test's StringIO)
    if not text.strip():
        raise UsageError("stdin is empty: there is nothing to answer the question from")
    return text


def _matches(rel: str, patterns: list[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _files(root: Path) -> list[tuple[str, Path]]:
    """Every non-hidden file under ``root``, by relative path, in path order."""
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        base = Path(directory)
        for name in sorted(files):
            if not name.startswith("."):
                path = base / name
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


@dataclass
class _Scan:
    """What loading one directory found, for its note."""

    docs: dict[str, str] = field(default_factory=dict)
    total: int = 0
    over: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    empty: int = 0
    undecodable: bool = False


def _read_dir(root: Path, args: argparse.Namespace, encoding: str, notes: list[str]) -> dict:
    """Each text file under ``root`` (globs applied) as ``{relative path: text}``, in path
    order while they fit in ``--max-context-size`` bytes (a file that does not fit is
    left out, the next ones still tried); binary and undecodable files are skipped; the
    note says what was loaded and what was not."""
    include, exclude = args.include or [], args.exclude or []
    cap: int = args.max_context_size
    scan = _Scan()
    for rel, path in _files(root):
        if (include and not _matches(rel, include)) or _matches(rel, exclude):
            continue
        try:
            size = path.stat().st_size
        except OSError as exc:
            scan.skipped.append(f"{rel} ({exc.strerror})")
            continue
        if not path.is_file():
            scan.skipped.append(f"{rel} (not a regular file)")
        elif scan.total + size > cap:
            scan.over.append((rel, size))
        else:
            _read_one(rel, path, encoding, scan)
    where = f"context directory {str(root)!r}"
    if not scan.docs:
        if scan.over:
            why = f"every text file is larger than the {_human(cap)} cap (--max-context-size)"
        else:
            why = "no text file" + (" matched --include/--exclude" if include or exclude else "")
        extra = f"; skipped: {_names(scan.skipped)}" if scan.skipped else ""
        raise UsageError(f"{where} is empty: {why}{extra}")
    notes.append(_note(where, scan, cap, encoding))
    return scan.docs


def _read_one(rel: str, path: Path, encoding: str, scan: _Scan) -> None:
    try:
        with open(path, "rb") as f:
            text = _check_stream(rel, f, encoding, keep=True)
    except _Empty:
        scan.empty += 1
    except _Binary:
        scan.skipped.append(f"{rel} (binary)")
    except _Undecodable:
        scan.skipped.append(f"{rel} (not {encoding})")
        scan.undecodable = True
    except OSError as exc:
        scan.skipped.append(f"{rel} ({exc.strerror})")
    else:
        scan.docs[rel] = text
        scan.total += path.stat().st_size


def _note(where: str, scan: _Scan, cap: int, encoding: str) -> str:
    note = f"{where}: {len(scan.docs):,} files, {_human(scan.total)} loaded"
    if scan.over:
        left = sum(size for _, size in scan.over)
        note += (
            f"; {len(scan.over):,} files ({_human(left)}) left out by the {_human(cap)} cap "
            f"(--max-context-size): {_names([rel for rel, _ in scan.over])}"
        )
    if scan.skipped:
        note += f"; {len(scan.skipped):,} not text, skipped: {_names(scan.skipped)}"
        if scan.undecodable:
            note += f" ({_hint(encoding)})"
    if scan.empty:
        note += f"; {scan.empty:,} empty files skipped"
    return note


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_NAMES_SHOWN])
    return shown + (f" and {len(items) - _NAMES_SHOWN} more" if len(items) > _NAMES_SHOWN else "")


def _human(size: int) -> str:
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"
