"""The run log: file naming, listing and summaries."""

from __future__ import annotations

import json
from pathlib import Path

import synth

from rlmagent import events as ev
from rlmagent.trace import (
    TraceWriter,
    Trajectory,
    discard_if_unused,
    latest_run,
    link_run,
    list_runs,
    new_run_path,
    run_at,
    runs_dir,
    status_of,
    summarize_run,
)


def write(path: Path, events: list) -> Path:
    with TraceWriter(path) as writer:
        for e in events:
            writer(e)
    return path


def test_runs_dir_defaults_to_user_data_and_accepts_a_home(tmp_path: Path) -> None:
    assert runs_dir(tmp_path) == tmp_path / "runs"
    default = runs_dir()
    assert default.name == "runs" and "rlmagent" in str(default)


def test_new_run_paths_are_unique_and_time_ordered(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "runs"
    paths = [new_run_path(directory) for _ in range(50)]
    assert len(set(paths)) == 50
    assert all(p.exists() and p.suffix == ".jsonl" for p in paths)
    assert sorted(paths, key=lambda p: p.name) == paths
    assert latest_run(directory) is None  # empty files: no run wrote to them (yet)
    for p in paths:
        p.write_text("x\n", encoding="utf-8")
    assert latest_run(directory) == paths[-1]


def test_latest_run_of_an_empty_or_missing_dir_is_none(tmp_path: Path) -> None:
    assert latest_run(tmp_path / "nope") is None
    assert latest_run(tmp_path) is None
    assert list_runs(tmp_path / "nope") == []


def test_list_runs_summarises_done_partial_and_broken_runs(tmp_path: Path) -> None:
    events = synth.small_run()
    done = write(new_run_path(tmp_path), events)
    partial = write(new_run_path(tmp_path), events[:12])
    broken = new_run_path(tmp_path)
    broken.write_text("this is not a trajectory\n", encoding="utf-8")
    summaries = list_runs(tmp_path)
    assert [s.path for s in summaries] == [broken, partial, done]  # newest first
    s_broken, s_partial, s_done = summaries
    assert s_broken.status == "unreadable" and "not an rlmagent trajectory" in (
        s_broken.error or ""
    )
    assert s_done.status == "done"
    assert s_done.question == "How many lines mention 'error'?"
    assert s_done.answer == "21"
    assert (s_done.turns, s_done.calls, s_done.tokens) == (2, 6, 2130)
    assert s_done.cost_usd is not None and abs(s_done.cost_usd - 0.0045) < 1e-9
    assert s_done.models == ("root-model", "sub-model")
    assert s_done.started_at == synth.T0
    assert s_partial.status == "incomplete" and s_partial.answer is None
    assert s_partial.turns == 1 and s_partial.question == s_done.question
    assert len(list_runs(tmp_path, limit=2)) == 2


def test_summary_of_ends_agrees_with_a_full_read(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", synth.small_run())
    fast = summarize_run(path)
    traj = Trajectory.load(path)
    assert traj.root is not None
    assert fast.answer == traj.answer
    assert fast.turns == len(traj.root.turns)
    assert fast.calls == traj.usage.calls
    assert fast.tokens == traj.usage.total_tokens


def test_a_run_that_ended_in_error_is_marked(tmp_path: Path) -> None:
    events = [*synth.small_run(finish=False)]
    events.append(ev.RunEnded(run_id="run-root", result=None, error="EngineError: 503"))
    summary = summarize_run(write(tmp_path / "e.jsonl", events))
    assert summary.status == "error" and summary.error == "EngineError: 503"
    line = (tmp_path / "e.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    assert json.loads(line)["error"] == "EngineError: 503"


def test_files_not_named_by_the_log_sort_by_modification_time(tmp_path: Path) -> None:
    import os

    older = write(tmp_path / "zzz-mine.jsonl", synth.small_run())
    newer = write(tmp_path / "aaa-mine.jsonl", synth.small_run())
    os.utime(older, (1_000_000_000, 1_000_000_000))
    os.utime(newer, (1_100_000_000, 1_100_000_000))
    assert latest_run(tmp_path) == newer


def ended_with(stop_reason: str, error: str | None = None, content: str = "") -> list:
    """The synthetic run, ending with ``stop_reason`` (and ``error``) instead of FINAL."""
    from rlmagent.types import AgentResult, Usage

    events = [*synth.small_run(finish=False)]
    result = AgentResult(content=content, turns=3, usage=Usage(), stop_reason=stop_reason)
    events.append(ev.RunEnded(run_id="run-root", result=result, error=error))
    return events


def test_runs_without_a_confident_answer_say_why(tmp_path: Path) -> None:
    cases = {
        "max_turns": ended_with("max_turns", content="No idea"),
        "stalled": ended_with("stalled", content="7"),
        "budget": ended_with("budget", content="7"),
        "cancelled": ended_with("cancelled", "CancelledError: the run was cancelled"),
        "error": ended_with("error", "EngineError: the server said no"),
    }
    for status, events in cases.items():
        path = write(tmp_path / f"{status}.jsonl", events)
        fast, full = summarize_run(path), Trajectory.load(path).root
        assert full is not None
        assert fast.status == status, status  # from the file's two ends
        assert status_of(full.stop_reason, full.error) == status  # from a full read
        assert fast.stop_reason == full.stop_reason
    done = summarize_run(write(tmp_path / "done.jsonl", synth.small_run()))
    assert done.status == "done"


def test_a_cancelled_run_is_not_an_error_even_without_a_result() -> None:
    assert status_of(None, "CancelledError: the run was cancelled") == "cancelled"
    assert status_of(None, "BudgetExceeded: tokens") == "budget"
    assert status_of("final", None) == "done"
    assert status_of("answer_without_final", None) == "done"


def test_empty_files_and_dangling_links_are_not_runs(tmp_path: Path) -> None:
    real = write(new_run_path(tmp_path), synth.small_run())
    empty = new_run_path(tmp_path)  # a run rejected before it started
    elsewhere = write(tmp_path / "out" / "mine.jsonl", synth.small_run())
    link = link_run(tmp_path, elsewhere)
    assert link is not None and link.is_symlink() and link.parent == tmp_path
    assert [s.path for s in list_runs(tmp_path)] == [link, real]
    assert list_runs(tmp_path)[0].question == synth.small_run()[0].question
    assert run_at(tmp_path, 1) == link and run_at(tmp_path, 2) == real
    assert run_at(tmp_path, 3) is None and run_at(tmp_path, 0) is None
    elsewhere.unlink()  # the linked file is gone: so is the row
    assert [s.path for s in list_runs(tmp_path)] == [real]
    assert link_run(tmp_path, tmp_path / "missing.jsonl") is None
    assert link_run(tmp_path, real) is None  # already in the log: not listed twice
    assert discard_if_unused(empty) and not empty.exists()
    assert not discard_if_unused(real) and real.exists()
