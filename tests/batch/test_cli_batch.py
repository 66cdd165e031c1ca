"""``rlm batch``: the command line over the library, against loopback servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import MODEL, server, write_jobs

from rlmagent.cli import main


def test_rlm_batch_runs_a_jobs_file_under_a_batch_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 12, extra=["{oops"])
    out = tmp_path / "out.jsonl"
    with server(subs=1) as a, server(subs=1) as b:
        code = main(
            [
                "batch",
                str(jobs),
                "--out",
                str(out),
                "--model",
                MODEL,
                "--base-url",
                a.url,
                "--base-url",
                b.url,
                "--max-calls",
                "9",
                "--concurrency",
                "2",
                "--json",
            ]
        )
        made = len(a.requests) + len(b.requests)
        assert a.requests and b.requests  # both servers were used
    assert made <= 9
    assert code == 1  # some jobs ran out of budget, one line was bad
    summary = json.loads(capsys.readouterr().out)
    assert summary["total"] == 13 and summary["error"] == 1 and summary["calls"] == made
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 13
    bad = next(r for r in lines if r["id"] is None)
    assert bad["line"] == 13 and bad["error"].startswith("line 13: not JSON")


def test_rlm_batch_shows_progress_and_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 10)
    out = tmp_path / "out.jsonl"
    with server(subs=0) as srv:
        code = main(["batch", str(jobs), "-o", str(out), "--model", MODEL, "--base-url", srv.url])
        assert code == 0
        again = main(["batch", str(jobs), "-o", str(out), "--model", MODEL, "--base-url", srv.url])
    err = capsys.readouterr().err
    assert "batch: 10 done (10 ok, 0 failed, 0 budget)" in err  # a plain line (no terminal)
    assert "batch: 10 jobs: 10 ok · 0 failed · 0 budget" in err
    assert again == 0 and "0 jobs: 0 ok" in err and "10 skipped (done before)" in err


def test_rlm_batch_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "batch",
                str(tmp_path / "none.jsonl"),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--model",
                MODEL,
            ]
        )
        == 2
    )
    assert "is not a readable file" in capsys.readouterr().err
    jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
    assert main(["batch", str(jobs), "-o", str(tmp_path / "o.jsonl"), "--cache"]) == 2
    assert "no --trace or --cache" in capsys.readouterr().err


def test_a_batch_stopped_only_by_its_budget_exits_4(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 6)
    with server(subs=0) as srv:
        code = main(
            [
                "batch",
                str(jobs),
                "-o",
                str(tmp_path / "o.jsonl"),
                "--model",
                MODEL,
                "--base-url",
                srv.url,
                "--max-calls",
                "3",
                "--concurrency",
                "1",
                "-q",
            ]
        )
        assert len(srv.requests) <= 3
    assert code == 4


def test_the_live_bar_on_a_terminal() -> None:
    import io

    from rich.console import Console

    from rlmagent.batch import BatchEnded, BatchProgress, BatchSummary, JobEnded, JobStarted

    screen = io.StringIO()
    bar = BatchProgress(Console(file=screen, force_terminal=True, width=120), total=3)
    for i in range(3):
        bar(JobStarted(run_id=f"j{i}", job_id=f"j{i}"))
    usage = {"calls": 4, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.25}
    bar(JobEnded(run_id="j0", job_id="j0", result={"id": "j0", "status": "ok", "usage": usage}))
    bar(
        JobEnded(
            run_id="j1", job_id="j1", result={"id": "j1", "status": "error", "error": "boom\nmore"}
        )
    )
    assert (bar.tally.ok, bar.tally.error, bar.tally.running, bar.tally.calls) == (1, 1, 1, 4)
    bar(BatchEnded(run_id="batch", summary=BatchSummary(total=2, ok=1, error=1, calls=4)))
    shown = screen.getvalue()
    assert "job j1: boom" in shown and "more" not in shown  # the first line of an error
    assert "2 jobs: 1 ok · 1 failed" in shown
