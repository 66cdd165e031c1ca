"""The results file of a batch: one JSON object a line, appended as results arrive.

Only the driver writes it, one whole line at a time, flushed (and synced to disk every
:data:`SYNC_EVERY` lines and at the end), so a killed worker can never leave half a
line. A driver killed mid-write can: reopening the file cuts a torn last line off before
appending. A rerun with the same file skips the jobs whose latest line is ``ok``; jobs
that failed, ran out of budget or were cancelled run again, and their new line is
appended: the last line of an id is its result (:func:`latest`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from rlmagent.errors import UsageError

DONE_STATUSES = frozenset({"ok"})
"""Statuses a rerun does not run again."""

SYNC_EVERY = 64
"""Lines written between two fsyncs (every line is flushed at once)."""


def read_results(path: str | Path) -> Iterator[dict[str, Any]]:
    """The result objects of a results file, in order; lines that are not JSON objects
    (a torn last line) are skipped."""
    file = Path(path)
    if not file.exists():
        return
    with file.open(encoding="utf-8", errors="replace") as handle:
        for text in handle:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                yield data


def latest(path: str | Path) -> dict[str, dict[str, Any]]:
    """The last result of each job id in a results file."""
    found: dict[str, dict[str, Any]] = {}
    for data in read_results(path):
        if isinstance(data.get("id"), str):
            found[data["id"]] = data
    return found


def done_ids(path: str | Path) -> set[str]:
    """Ids whose latest result is done (``ok``): what a rerun skips."""
    return {i for i, data in latest(path).items() if data.get("status") in DONE_STATUSES}


def _cut_torn_tail(file: Path) -> None:
    """Drop a last line without its newline (a write the driver never finished)."""
    size = file.stat().st_size
    if size == 0:
        return
    with file.open("rb+") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return
        step, end = 4096, size
        while end > 0:  # find the last newline, reading backwards
            start = max(0, end - step)
            handle.seek(start)
            chunk = handle.read(end - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                handle.truncate(start + cut + 1)
                return
            end = start
        handle.truncate(0)


class ResultsWriter:
    """Appends result lines to ``path`` (created with its folder if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UsageError(f"results path {str(self.path)!r} is a directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            _cut_torn_tail(self.path)
        self._handle: TextIO | None = self.path.open("a", encoding="utf-8")
        self._unsynced = 0
        self.written = 0

    def write(self, result: dict[str, Any]) -> None:
        if self._handle is None:
            raise UsageError("the results file is closed")
        line = json.dumps(result, ensure_ascii=False, default=str)
        self._handle.write(line + "\n")
        self._handle.flush()
        self.written += 1
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY:
            os.fsync(self._handle.fileno())
            self._unsynced = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
