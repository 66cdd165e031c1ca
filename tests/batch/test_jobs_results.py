"""Job lines and results files: what is a job, what is reported, what a rerun skips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlmagent.batch import Job, JobError, ResultsWriter, done_ids, latest, parse_lines, read_jobs
from rlmagent.batch.jobs import as_jobs
from rlmagent.errors import UsageError


def test_good_and_bad_lines_keep_their_line_numbers(tmp_path: Path) -> None:
    lines = [
        '{"id": "a", "question": "q?", "context": "text"}',
        "",
        "{not json",
        '{"id": 7, "question": "q?", "context_path": "docs/a.txt"}',
        '{"id": "b", "question": "   "}',
        '{"id": "c", "question": "q?", "contxt": "typo"}',
        '{"id": "a", "question": "again"}',
        '["a", "list"]',
        '{"id": "d", "question": "q?", "context": "x", "context_path": "y"}',
        '{"id": true, "question": "q?"}',
        '{"id": "e", "question": "q?", "output_type": {"type": "integer"}}',
    ]
    items = list(parse_lines(lines, base=tmp_path))
    jobs = [i for i in items if isinstance(i, Job)]
    errors = {i.line: i for i in items if isinstance(i, JobError)}
    assert [j.id for j in jobs] == ["a", "7", "e"]
    assert jobs[1].context_path == str(tmp_path / "docs/a.txt")  # from the file's folder
    assert jobs[2].output_type == {"type": "integer"}
    assert sorted(errors) == [3, 5, 6, 7, 8, 9, 10]
    assert "not JSON" in errors[3].message and errors[3].message.startswith("line 3:")
    assert "question" in errors[5].message and errors[5].id == "b"
    assert "'contxt'" in errors[6].message
    assert "appears twice" in errors[7].message
    assert "JSON object" in errors[8].message
    assert "not both" in errors[9].message
    assert "'id'" in errors[10].message


def test_jobs_given_in_python(tmp_path: Path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("hello")
    items = list(
        as_jobs(
            [
                ("1", "q one?", "ctx"),
                {"id": "2", "question": "q?"},
                ("3", "q?", path),
                ("4",),
                Job("1", "dup?"),
            ]
        )
    )
    assert [type(i).__name__ for i in items] == ["Job", "Job", "Job", "JobError", "JobError"]
    assert items[2].load_context() == path
    assert Job.from_dict(items[0].to_dict()) == items[0]


def test_a_missing_context_file_is_the_jobs_error_where_it_runs(tmp_path: Path) -> None:
    job = Job("x", "q?", context_path=str(tmp_path / "missing.txt"))
    with pytest.raises(UsageError, match=r"missing\.txt"):
        job.load_context()
    with pytest.raises(UsageError, match="not a readable file"):
        list(read_jobs(tmp_path / "nope.jsonl"))


def test_results_file_cuts_a_torn_tail_and_knows_what_is_done(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "results.jsonl"
    with ResultsWriter(out) as writer:
        writer.write({"id": "a", "status": "ok"})
        writer.write({"id": "b", "status": "error"})
        writer.write({"id": "c", "status": "budget"})
    with out.open("a") as handle:
        handle.write('{"id": "d", "status": "o')  # a driver killed mid-write
    assert done_ids(out) == {"a"}
    with ResultsWriter(out) as writer:
        writer.write({"id": "b", "status": "ok"})
    lines = out.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a", "b", "c", "b"]  # all valid
    assert latest(out)["b"]["status"] == "ok"
    assert done_ids(out) == {"a", "b"}
