"""Batches on the local executor against the loopback chat server, real sandboxes."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from fakes import MODEL, root_requests, server, write_jobs

from rlmagent import Budget
from rlmagent.batch import BatchSettings, JobEnded, iter_batch, read_results, run_batch
from rlmagent.events import EventBus


def settings(url: str) -> BatchSettings:
    return BatchSettings(model=MODEL, base_urls=(url,), max_turns=3)


def test_forty_jobs_under_one_budget_never_make_one_call_too_many(tmp_path: Path) -> None:
    limit = 31  # each job: one root turn + one llm_query, and a final answer held back
    with server(subs=1) as srv:
        jobs = write_jobs(tmp_path / "jobs.jsonl", 40)
        out = tmp_path / "results.jsonl"
        report = run_batch(
            jobs,
            settings=settings(srv.url),
            concurrency=6,
            budget=Budget(max_calls=limit),
            out=out,
        )
        made = len(srv.requests)
    assert made <= limit
    assert made >= limit - 6  # the budget was used, not refused early
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in results) == sorted(f"j{i}" for i in range(40))
    statuses = [r["status"] for r in results]
    assert set(statuses) <= {"ok", "budget"}
    assert statuses.count("ok") >= 10
    ok = [r for r in results if r["status"] == "ok"]
    assert all(r["answer"] == f"WORD{r['id'][1:]}:1" for r in ok)
    not_started = [r for r in results if (r["error"] or "").startswith("not started")]
    assert not_started, "jobs that find the budget spent are reported as not started"
    assert report.summary.ok == len(ok) and report.summary.total == 40
    assert report.summary.calls == made


def test_a_rerun_skips_the_jobs_that_are_done(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    with server(subs=0) as srv:
        run_batch(write_jobs(tmp_path / "a.jsonl", 5), settings=settings(srv.url), out=out)
        assert root_requests(srv) == 5
        srv.reset()
        report = run_batch(write_jobs(tmp_path / "b.jsonl", 8), settings=settings(srv.url), out=out)
        assert root_requests(srv) == 3  # j5, j6, j7 only
    assert report.summary.skipped == 5 and report.summary.ok == 3
    assert sorted(r["id"] for r in read_results(out)) == sorted(f"j{i}" for i in range(8))


def test_bad_lines_are_reported_and_the_others_run(tmp_path: Path) -> None:
    extra = ['{"id": "x1", "question": ""}', "not json at all", '{"id": "j0", "question": "q?"}']
    events = []
    bus = EventBus()
    bus.subscribe(events.append, JobEnded)
    with server(subs=0) as srv:
        jobs = write_jobs(tmp_path / "jobs.jsonl", 4, extra=extra)
        report = run_batch(jobs, settings=settings(srv.url), bus=bus)
    by_line = {r.get("line"): r for r in report.results}
    assert [by_line[n]["status"] for n in (1, 2, 3, 4)] == ["ok"] * 4
    assert [by_line[n]["status"] for n in (5, 6, 7)] == ["error"] * 3
    assert by_line[6]["error"].startswith("line 6: not JSON")
    assert "appears twice" in by_line[7]["error"]
    assert report.summary.error == 3 and report.summary.ok == 4
    assert len(events) == 7 and sum(e.ran for e in events) == 4


def test_engine_failures_are_results_not_crashes(tmp_path: Path) -> None:
    # nothing listens on this port: every job fails, each with its own error line
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    dead = BatchSettings(
        model=MODEL, base_urls=("http://127.0.0.1:9/v1",), engine_options={"max_retries": 0}
    )
    report = run_batch(jobs, settings=dead)
    assert [r["status"] for r in report.results] == ["error"] * 3
    assert all("connection" in r["error"].lower() for r in report.results)


def test_stopping_a_batch_leaves_no_sandbox_behind(tmp_path: Path) -> None:
    from core.proctree import alive, describe, sandbox_processes

    release = threading.Event()
    started = threading.Semaphore(0)

    def hold(question: str) -> None:
        if "word" in question and not question.endswith("word0"):
            started.release()
            release.wait(30)

    before = set(sandbox_processes(os.getpid()))
    with server(subs=0, hook=hold) as srv:
        results = iter_batch(
            write_jobs(tmp_path / "jobs.jsonl", 6), settings=settings(srv.url), concurrency=3
        )
        first = next(results)  # j0 answers at once; two more are stuck in their first turn
        assert first["id"] == "j0"
        for _ in range(2):
            assert started.acquire(timeout=30)
        running = [p for p in sandbox_processes(os.getpid()) if p not in before]
        assert running, "the stuck jobs have sandboxes"
        results.close()  # what Ctrl-C does to the generator
        release.set()
    deadline = time.monotonic() + 10
    while alive(running) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(running), describe(alive(running))


def test_a_jobs_output_type_reaches_its_run(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    schema = {"type": "string", "pattern": "^WORD"}
    lines = [
        {"id": "t", "question": "what is word1", "context": "c", "output_type": schema},
        {
            "id": "u",
            "question": "what is word2",
            "context": "c",
            "output_type": {"type": "integer"},
        },
    ]
    jobs.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with server(subs=0) as srv:
        report = run_batch(jobs, settings=settings(srv.url))
    by_id = {r["id"]: r for r in report.results}
    assert by_id["t"]["status"] == "ok" and by_id["t"]["answer"] == "WORD1"
    assert by_id["u"]["status"] == "error"  # the model never wrote an integer
    assert "OutputTypeError" in by_id["u"]["error"] and "integer" in by_id["u"]["error"]


def test_jobs_after_the_batch_deadline_do_not_start(tmp_path: Path) -> None:
    release = threading.Event()

    def slow_first(question: str) -> None:
        if question.endswith("word0"):
            release.wait(1.5)  # j0 outlives the batch's 0.5 s

    with server(subs=0, hook=slow_first) as srv:
        report = run_batch(
            write_jobs(tmp_path / "jobs.jsonl", 4),
            settings=settings(srv.url),
            concurrency=1,
            budget=Budget(max_seconds=0.5),
        )
        release.set()
    by_id = {r["id"]: r for r in report.results}
    assert by_id["j0"]["status"] == "budget"  # cut at the deadline
    for later in ("j1", "j2", "j3"):
        assert by_id[later]["status"] == "budget"
        assert (
            by_id[later]["error"]
            == "not started: the batch budget is spent (seconds limit reached)"
        )
