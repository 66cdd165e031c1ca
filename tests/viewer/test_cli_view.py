"""``rlm view`` and ``rlm runs``, called in-process (and once as a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import synth  # tests/trace/synth.py, loaded by this directory's conftest

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.cli import main
from rlmagent.trace import TraceWriter, new_run_path, runs_dir


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RLMAGENT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def log_run(home: Path, events: list) -> Path:
    path = new_run_path(runs_dir(home))
    with TraceWriter(path) as writer:
        for e in events:
            writer(e)
    return path


def real_run(home: Path, question: str) -> Path:
    path = new_run_path(runs_dir(home))
    root = ScriptedEngine(
        ["```repl\nx = llm_query('say 7')\nprint(x)\n```", "FINAL(7)", "FINAL(7)"]
    )
    sub = FunctionEngine(lambda messages, model: "7")
    RLMAgent(root, "root-m", sub_engine=sub, sub_model="sub-m", trace=path).run(question)
    return path


def test_runs_lists_newest_first(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log_run(home, synth.small_run())
    real_run(home, "What does the sub-model say?")
    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "What does the sub-model say?" in line)
    second = next(i for i, line in enumerate(lines) if "How many lines mention" in line)
    assert first < second
    assert "2,130" in lines[second] and "$0.0045" in lines[second] and "done" in lines[second]
    assert "2 run(s) in" in err


def test_runs_json(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = log_run(home, synth.small_run())
    partial = log_run(home, synth.small_run()[:8])
    assert main(["runs", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["path"] for r in rows] == [str(partial), str(done)]
    assert rows[1]["answer"] == "21" and rows[1]["tokens"] == 2130 and rows[1]["calls"] == 6
    assert rows[0]["status"] == "incomplete"
    assert main(["runs", "--json", "-n", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_runs_when_there_are_none(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs"]) == 0
    assert f"no runs in {home / 'runs'}" in capsys.readouterr().err


def test_view_without_arguments_writes_the_newest_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_run(home, synth.small_run())
    newest = real_run(home, "What does the sub-model say?")
    assert main(["view", "--no-open"]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(newest.with_suffix(".html"))
    page = Path(out).read_text(encoding="utf-8")
    assert "What does the sub-model say?" in page


def test_view_a_given_trace_to_a_given_file(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = log_run(home, synth.small_run())
    out = tmp_path / "pages" / "x.html"
    assert main(["view", str(trace), "-o", str(out), "--title", "Errors"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert "<title>RLM · Errors</title>" in out.read_text(encoding="utf-8")


def test_view_errors_are_named(
    tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["view"]) == 2
    assert "no runs in" in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such trace file" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n', encoding="utf-8")
    assert main(["view", str(bad)]) == 2
    assert "not an rlmagent trajectory" in capsys.readouterr().err


def test_view_opens_the_page_in_the_users_browser(tmp_path: Path, home: Path) -> None:
    trace = log_run(home, synth.small_run())
    opened = tmp_path / "opened.txt"
    fake_browser = tmp_path / "browser.sh"  # $BROWSER is how users name their browser
    fake_browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n', encoding="utf-8")
    fake_browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(fake_browser)}
    code = "import sys; from rlmagent.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "view", str(trace), "--open"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert opened.read_text(encoding="utf-8").strip() == trace.with_suffix(".html").as_uri()
