"""The CLI's recursion, budget and cache flags, in-process on an engine registered at run time."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.engines import register_engine, unregister_engine

CALLS: list[str] = []
_lock = threading.Lock()


def _model(messages, model):
    with _lock:
        CALLS.append(model)
    if len(messages) == 1:
        return "sub answer"
    question = messages[1]["content"]
    if "child question" in question:
        return "```repl\nFINAL(context.upper())\n```"
    if len(messages) > 2:
        return "FINAL(the answer)"
    if "recurse" in question:
        return "```repl\nprint(rlm_query('child question', context='abc'))\n```"
    if "batch" in question:
        return "```repl\nprint(llm_batch(['a', 'b', 'c', 'd', 'e']))\n```"
    return "```repl\nprint(len(context or ''))\n```"


@pytest.fixture
def provider():
    CALLS.clear()
    register_engine("limits", lambda model, **kw: FunctionEngine(_model), replace=True)
    yield "limits:m"
    unregister_engine("limits")


def run_json(capsys, *argv: str) -> tuple[int, dict | None, str]:
    code = main(["run", *argv, "--no-log", "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def test_max_calls_stops_the_run_with_one_final_answer(capsys, provider):
    code, data, _ = run_json(capsys, "batch please", "--model", provider, "--max-calls", "2")
    assert code == 4  # the budget stopped it: the answer is not a confident one
    assert data["answer"] == "the answer"
    assert data["usage"]["calls"] == 2 and len(CALLS) == 2
    assert data["stop_reason"] == "budget"
    assert data["budget_limit"] == "calls"


def test_a_budget_with_no_room_for_an_answer_exits_4(capsys, provider):
    code = main(["run", "q", "--model", provider, "--no-log", "--quiet", "--max-tokens", "300"])
    out, err = capsys.readouterr()
    assert code == 4 and out == ""
    assert "the budget ran out" in err and "max_tokens=300" in err
    assert CALLS == []


def test_max_cost_with_an_unpriced_engine_is_a_usage_error(capsys, provider):
    code = main(["run", "q", "--model", provider, "--no-log", "--quiet", "--max-cost", "0.5"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "no price for model 'm'" in err
    assert CALLS == []


def test_max_depth_starts_child_runs(capsys, provider):
    code, data, _ = run_json(capsys, "recurse please", "--model", provider, "--max-depth", "2")
    assert code == 0 and data["answer"] == "the answer"
    assert data["usage"]["calls"] == 3  # root turn 1, the child's turn, root turn 2
    code, data, _ = run_json(capsys, "recurse please", "--model", provider)
    assert data["usage"]["calls"] == 3 and CALLS.count("m") == 6  # depth 1: a plain call


def test_cache_path_makes_a_rerun_free(tmp_path, capsys, provider):
    path = tmp_path / "c.sqlite"
    argv = ("q", "--model", provider, "--temperature", "0", "--cache", str(path))
    code, first, _ = run_json(capsys, *argv)
    assert code == 0 and len(CALLS) == 2
    code, second, _ = run_json(capsys, *argv)
    assert code == 0 and len(CALLS) == 2  # no engine call the second time
    assert second["answer"] == first["answer"] == "the answer"
    assert second["usage"]["cached_calls"] == 2


def test_cache_alone_uses_the_user_cache_dir(tmp_path, capsys, provider, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    code = main(
        ["run", "q", "--model", provider, "--temperature", "0", "--no-log", "--quiet", "--cache"]
    )
    assert code == 0 and capsys.readouterr().out == "the answer\n"
    path = tmp_path / "xdg" / "rlmagent" / "completions.sqlite"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM completions").fetchone()[0] == 2
