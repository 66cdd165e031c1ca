"""Jobs of a batch: what one line of a jobs file holds, read line by line.

A job line is a JSON object::

    {"id": "q1", "question": "...", "context": "the text itself"}
    {"id": "q2", "question": "...", "context_path": "docs/q2.txt", "output_type": {...}}

``id`` (a string or an integer, unique in the file), ``question`` (a non-empty string),
at most one of ``context`` (text) and ``context_path`` (a file read where the job runs;
a relative path is taken from the jobs file's folder), and an optional ``output_type``
(a JSON Schema object, for runs that take typed answers). Unknown keys are an error, so
a misspelled ``contxt`` is not silently a job without context. A line that is not such
an object becomes a :class:`JobError` naming its line number; the other lines still run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmagent.errors import UsageError

JOB_KEYS = frozenset({"id", "question", "context", "context_path", "output_type"})
MAX_ID_CHARS = 200
"""The longest job id accepted (ids are written to every result line)."""


@dataclass(frozen=True, slots=True)
class Job:
    """One question of a batch. ``context_path`` is read where the job runs."""

    id: str
    question: str
    context: str | None = None
    context_path: str | None = None
    output_type: Mapping[str, Any] | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or len(self.id) > MAX_ID_CHARS:
            raise UsageError(f"a job id must be a non-empty string of at most {MAX_ID_CHARS} chars")
        if not isinstance(self.question, str) or not self.question.strip():
            raise UsageError(f"job {self.id!r}: the question must be a non-empty string")
        if self.context is not None and self.context_path is not None:
            raise UsageError(f"job {self.id!r}: give context or context_path, not both")
        if self.context is not None and not isinstance(self.context, str):
            raise UsageError(f"job {self.id!r}: context must be a string")
        if self.context_path is not None and not isinstance(self.context_path, str):
            raise UsageError(f"job {self.id!r}: context_path must be a string")
        if self.output_type is not None and not isinstance(self.output_type, Mapping):
            raise UsageError(f"job {self.id!r}: output_type must be a JSON Schema object")

    def load_context(self) -> str | Path | None:
        """The context to run on: the text, or the path (checked here, where it runs)."""
        if self.context_path is None:
            return self.context
        path = Path(self.context_path)
        if not path.is_file():
            raise UsageError(f"job {self.id!r}: context_path {self.context_path!r} is not a file")
        return path

    def to_dict(self) -> dict[str, Any]:
        """The job as a JSON-able dict (what a Ray task receives)."""
        return {
            "id": self.id,
            "question": self.question,
            "context": self.context,
            "context_path": self.context_path,
            "output_type": None if self.output_type is None else dict(self.output_type),
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        return cls(
            id=data["id"],
            question=data["question"],
            context=data.get("context"),
            context_path=data.get("context_path"),
            output_type=data.get("output_type"),
            line=data.get("line"),
        )


@dataclass(frozen=True, slots=True)
class JobError:
    """A jobs-file line that is not a job: its line number, its id if one was read, why."""

    line: int
    message: str
    id: str | None = None


def job_from_object(data: Any, *, line: int | None = None, base: Path | None = None) -> Job:
    """A :class:`Job` from a decoded JSON object, or a :class:`UsageError` saying why not."""
    if not isinstance(data, dict):
        raise UsageError(f"a job must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - JOB_KEYS)
    if unknown:
        raise UsageError(
            f"unknown key(s) {', '.join(map(repr, unknown))}; a job has "
            + ", ".join(sorted(JOB_KEYS))
        )
    raw_id = data.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise UsageError(f"'id' must be a string or an integer, got {raw_id!r:.60}")
    path = data.get("context_path")
    if isinstance(path, str) and base is not None and not Path(path).is_absolute():
        path = str(base / path)
    return Job(
        id=str(raw_id),
        question=data.get("question"),  # type: ignore[arg-type]  # checked by Job
        context=data.get("context"),
        context_path=path,
        output_type=data.get("output_type"),
        line=line,
    )


def parse_lines(lines: Iterable[str], *, base: Path | None = None) -> Iterator[Job | JobError]:
    """Jobs from JSONL lines (blank lines skipped); bad lines and repeated ids are
    :class:`JobError` values, in file order, so one bad line stops nothing."""
    seen: set[str] = set()
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        job_id = None
        try:
            data = json.loads(text)
            if isinstance(data, dict) and isinstance(data.get("id"), str | int):
                job_id = str(data["id"])
            job = job_from_object(data, line=number, base=base)
        except (ValueError, UsageError) as exc:
            reason = f"not JSON ({exc})" if isinstance(exc, ValueError) else str(exc)
            yield JobError(number, f"line {number}: {reason}", job_id)
            continue
        if job.id in seen:
            yield JobError(number, f"line {number}: job id {job.id!r} appears twice", job.id)
            continue
        seen.add(job.id)
        yield job


def read_jobs(path: str | Path) -> Iterator[Job | JobError]:
    """The jobs of a JSONL file, read lazily (see :func:`parse_lines`)."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"jobs file {str(file)!r} is not a readable file")
    with file.open(encoding="utf-8", errors="replace") as handle:
        yield from parse_lines(handle, base=file.resolve().parent)


def as_jobs(jobs: Iterable[Any]) -> Iterator[Job | JobError]:
    """Jobs given in Python: :class:`Job` values, dicts of a job line, or (id, question,
    context) tuples. A bad item is a :class:`JobError` numbered from 1."""
    seen: set[str] = set()
    for number, item in enumerate(jobs, 1):
        try:
            if isinstance(item, Job | JobError):
                job = item
            elif isinstance(item, tuple):
                if len(item) != 3:
                    raise UsageError("a job tuple is (id, question, context)")
                context = item[2]
                job = Job(
                    id=str(item[0]),
                    question=item[1],
                    context=context if not isinstance(context, Path) else None,
                    context_path=str(context) if isinstance(context, Path) else None,
                    line=number,
                )
            else:
                job = job_from_object(item, line=number)
        except UsageError as exc:
            yield JobError(number, f"job {number}: {exc}")
            continue
        if isinstance(job, Job):
            if job.id in seen:
                yield JobError(number, f"job {number}: job id {job.id!r} appears twice", job.id)
                continue
            seen.add(job.id)
        yield job
