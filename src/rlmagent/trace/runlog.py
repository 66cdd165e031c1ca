"""The run log: one trajectory per run in the user's data directory, and summaries of them.

:func:`new_run_path` names files by creation time, so :func:`latest_run` is the newest.
:func:`summarize_run` reads only the two ends of a finished run's file. A run written
elsewhere (``rlm run --trace PATH``) is kept as a link to that file (:func:`link_run`).
Empty files (a run rejected before it started) and links whose file is gone are not runs.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmagent.errors import UsageError
from rlmagent.trace.model import Trajectory, load_trajectory


def runs_dir(home: str | Path | None = None) -> Path:
    """Where runs are kept: ``<home>/runs``, by default in the user's data directory."""
    if home is None:
        import platformdirs

        home = platformdirs.user_data_dir("rlmagent", appauthor=False)
    return Path(home).expanduser() / "runs"


def new_run_path(directory: str | Path, *, link_to: str | Path | None = None) -> Path:
    """A fresh, time-ordered ``.jsonl`` path in ``directory`` (created if needed): an
    empty file, or with ``link_to`` a symbolic link to that file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    micros = int((now % 1) * 1_000_000)
    for n in range(1000):
        suffix = f"-{n}" if n else ""
        candidate = directory / f"{stamp}-{micros:06d}{suffix}.jsonl"
        try:
            if link_to is None:
                candidate.touch(exist_ok=False)
            else:
                os.symlink(Path(link_to).resolve(), candidate)
        except FileExistsError:
            continue
        return candidate
    raise UsageError(f"could not find a free run file name in {directory}")


def link_run(directory: str | Path, trace: str | Path) -> Path | None:
    """Keep a run written to ``trace`` in the run log as a link to it (``rlm runs`` lists
    it); None where it is not a run (empty) or links cannot be made here."""
    trace = Path(trace)
    if not _is_run(trace) or trace.resolve().parent == Path(directory).resolve():
        return None  # not a run, or already in the log
    try:
        return new_run_path(directory, link_to=trace)
    except OSError:  # no symbolic links on this file system
        return None


def discard_if_unused(path: str | Path) -> bool:
    """Remove a run-log file that no run wrote to (a rejected invocation); True if so."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            path.unlink()
            return True
    except FileNotFoundError:
        pass
    return False


def _is_run(path: Path) -> bool:
    """A file with something in it (links followed; a dangling link is not a run)."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One line of ``rlm runs``.

    ``status``: ``done`` (a confident answer), ``max_turns``, ``stalled``, ``budget``
    (ended without one: :func:`status_of`), ``cancelled``, ``error``, ``incomplete`` (no
    end on file: still running, or killed) or ``unreadable``. ``stop_reason`` is the
    run's own (None when the file has none)."""

    path: Path
    started_at: float
    question: str = ""
    answer: str | None = None
    turns: int = 0
    calls: int = 0
    tokens: int = 0
    cost_usd: float | None = None
    status: str = "incomplete"
    error: str | None = None
    models: tuple[str, ...] = field(default=())
    stop_reason: str | None = None


CONFIDENT = frozenset({"final", "final_repeated", "answer_without_final"})
"""Stop reasons of a run that ended with an answer it stands by (``types.STOP_REASONS``)."""


def status_of(stop_reason: str | None, error: str | None) -> str:
    """The ``rlm runs`` status of a finished run."""
    if stop_reason == "cancelled" or (error or "").startswith("CancelledError"):
        return "cancelled"
    if stop_reason == "budget" or (error or "").startswith("BudgetExceeded"):
        return "budget"
    if error:
        return "error"
    if stop_reason is None or stop_reason in CONFIDENT:
        return "done"
    return stop_reason


_TAIL_BYTES = 1 << 20


def _root_end_in_tail(path: Path) -> dict[str, Any] | None:
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - _TAIL_BYTES))
        tail = f.read()
    for raw in reversed(tail.split(b"\n")):
        if b'"RunEnded"' not in raw:
            continue
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if data.get("type") == "RunEnded" and data.get("parent_id") is None:
            return data
    return None


def _root_start_in_head(path: Path) -> dict[str, Any] | None:
    with path.open("rb") as f:
        for _ in range(4):
            raw = f.readline()
            if not raw:
                break
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
            if data.get("type") == "RunStarted" and data.get("parent_id") is None:
                return data
    return None


def summarize_run(path: str | Path) -> RunSummary:
    """A summary of one trajectory; reads only its ends when the run finished."""
    path = Path(path)
    mtime = path.stat().st_mtime
    try:
        start = _root_start_in_head(path)
        end = _root_end_in_tail(path) if start else None
        if start and end and start.get("run_id") == end.get("run_id"):  # else a session
            result = end.get("result") or {}
            usage = result.get("usage") or {}
            stop = result.get("stop_reason")
            return RunSummary(
                path=path,
                started_at=float(start.get("time", mtime)),
                question=str(start.get("question", "")),
                answer=result.get("content"),
                turns=int(result.get("turns", 0)),
                calls=int(usage.get("calls", 0)),
                tokens=int(usage.get("prompt_tokens", 0)) + int(usage.get("completion_tokens", 0)),
                cost_usd=usage.get("cost_usd"),
                status=status_of(stop, end.get("error")),
                error=end.get("error"),
                models=tuple(sorted(usage.get("by_model") or {})),
                stop_reason=stop,
            )
        traj = load_trajectory(path)
    except (OSError, UsageError, ValueError) as exc:
        return RunSummary(path=path, started_at=mtime, status="unreadable", error=str(exc))
    root = traj.root
    if root is None:
        return RunSummary(path=path, started_at=mtime, status="incomplete")
    if len(traj.questions) > 1:
        return _session_summary(path, traj)
    usage_obj = traj.usage
    return RunSummary(
        path=path,
        started_at=root.started_at,
        question=root.question,
        answer=root.answer,
        turns=len(root.turns),
        calls=usage_obj.calls,
        tokens=usage_obj.total_tokens,
        cost_usd=usage_obj.cost_usd,
        status=status_of(root.stop_reason, root.error) if root.finished else "incomplete",
        error=root.error,
        models=tuple(sorted(usage_obj.by_model)),
        stop_reason=root.stop_reason,
    )


def _session_summary(path: Path, traj: Trajectory) -> RunSummary:
    """A session's file: its questions counted, the last one's answer and status."""
    questions = traj.questions
    last = questions[-1]
    usage = traj.questions_usage()
    return RunSummary(
        path=path,
        started_at=questions[0].started_at,
        question=f"[session, {len(questions)} questions] {questions[0].question}",
        answer=last.answer,
        turns=sum(len(q.turns) for q in questions),
        calls=usage.calls,
        tokens=usage.total_tokens,
        cost_usd=usage.cost_usd,
        status=status_of(last.stop_reason, last.error) if last.finished else "incomplete",
        error=last.error,
        models=tuple(sorted(usage.by_model)),
        stop_reason=last.stop_reason,
    )


_RUN_NAME = re.compile(r"^\d{8}-\d{6}-\d{6}")


def _run_key(path: Path) -> str:
    # new_run_path names sort by creation time; other files by modification time
    match = _RUN_NAME.match(path.name)
    if match:
        return path.name
    mtime = path.stat().st_mtime
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(mtime)) + f"-{int(mtime % 1 * 1e6):06d}"


def _run_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.glob("*.jsonl") if _is_run(p)), key=_run_key)


def list_runs(directory: str | Path, limit: int | None = None) -> list[RunSummary]:
    """Summaries of the runs kept in ``directory``, newest first."""
    files = list(reversed(_run_files(Path(directory))))
    if limit is not None:
        files = files[:limit]
    return [summarize_run(p) for p in files]


def latest_run(directory: str | Path) -> Path | None:
    """The newest trajectory in ``directory``, or None when there is none."""
    files = _run_files(Path(directory))
    return files[-1] if files else None


def run_at(directory: str | Path, number: int) -> Path | None:
    """The trajectory on row ``number`` of ``rlm runs`` (1 = the newest), or None."""
    files = _run_files(Path(directory))
    return files[-number] if 1 <= number <= len(files) else None
