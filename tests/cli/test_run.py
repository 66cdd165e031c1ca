"""`rlm run` and `rlm demo`, in-process, on engines registered at run time."""

from __future__ import annotations

import io
import json
import sys

import pytest

from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.demo import make_demo
from rlmagent.engines import register_engine, unregister_engine


def _grep_root(messages, model):
    """A root that greps for the word after 'the' in the question, then answers."""
    if len(messages) == 2:
        return "```repl\nhits = [l for l in context.splitlines() if 'code' in l]\nprint(hits)\n```"
    return "```repl\nFINAL(hits[0].split()[-1].rstrip('.'))\n```"


@pytest.fixture
def fake_provider():
    register_engine("fake", lambda model, **kw: FunctionEngine(_grep_root), replace=True)
    yield "fake:grep"
    unregister_engine("fake")


def test_run_prints_the_answer_and_usage(tmp_path, capsys, fake_provider):
    path = tmp_path / "ctx.txt"
    path.write_text("nothing\nthe code is 4417.\nmore\n")
    code = main(
        [
            "run",
            "What is the code?",
            "--context",
            str(path),
            "--model",
            fake_provider,
            "--no-log",
            "--quiet",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "4417\n"
    assert err == ""


def test_run_json_and_trace(tmp_path, capsys, fake_provider):
    path = tmp_path / "ctx.txt"
    path.write_text("the code is 99.\n")
    trace = tmp_path / "t.jsonl"
    code = main(
        ["run", "q", "-c", str(path), "--model", fake_provider, "--json", "--trace", str(trace)]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    payload = json.loads(out)
    assert payload["answer"] == "99"
    assert payload["turns"] == 2 and payload["usage"]["calls"] == 2
    assert trace.exists() and trace.read_text().count("\n") > 5


def test_run_reads_stdin(monkeypatch, capsys, fake_provider):
    monkeypatch.setattr(sys, "stdin", io.StringIO("x\nthe code is 7.\n"))
    assert main(["run", "q", "-c", "-", "--model", fake_provider, "--no-log", "-q"]) == 0
    assert capsys.readouterr().out == "7\n"


def test_unknown_provider_is_a_clear_error(capsys, tmp_path):
    assert main(["run", "q", "--model", "opnai:gpt", "--no-log"]) == 2
    err = capsys.readouterr().err
    assert "opnai" in err and "openai" in err


def test_missing_context_file_is_a_clear_error(capsys, fake_provider, tmp_path):
    code = main(
        ["run", "q", "-c", str(tmp_path / "nope.txt"), "--model", fake_provider, "--no-log"]
    )
    assert code == 2
    assert "nope.txt" in capsys.readouterr().err


def test_demo_on_a_fake_engine(capsys, fake_provider):
    demo = make_demo(0)
    assert main(["demo", "--model", fake_provider, "--no-log", "--json"]) in (0, 1)
    payload = json.loads(capsys.readouterr().out)
    assert payload["expected"] == demo.answer
    assert payload["correct"] is (demo.answer in payload["answer"])


def test_run_prompt_profile_and_answer_checks_from_the_command_line(
    tmp_path, capsys, fake_provider
):
    path = tmp_path / "ctx.txt"
    path.write_text("the code is 4417.\n")
    register_engine("reader", lambda model, **kw: FunctionEngine(lambda m, model: "4417"))
    base = ["run", "What is the code?", "-c", str(path), "--model", fake_provider, "--json"]
    base += ["--sub-model", "reader:r"]
    try:
        assert main([*base, "--no-log", "--prompt-profile", "small", "--check"]) == 0
    finally:
        unregister_engine("reader")
    checked = json.loads(capsys.readouterr().out)
    assert checked["answer"] == "4417" and checked["stop_reason"] == "final"
    assert checked["answer_checked"] is True and checked["usage"]["calls"] == 3  # + the check
    base = base[:-2]
    assert main([*base, "--no-log", "--prompt-profile", "small", "--no-check"]) == 0
    unchecked = json.loads(capsys.readouterr().out)
    assert unchecked["answer_checked"] is None and unchecked["usage"]["calls"] == 2
    with pytest.raises(SystemExit):
        main([*base, "--prompt-profile", "huge"])
