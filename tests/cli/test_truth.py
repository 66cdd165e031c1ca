"""The CLI tells the truth: exit codes, one stderr line for a run without a confident
answer, the run log's statuses and rows, and errors said once. In-process, on engines
registered at run time, with the real sandbox and run log."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.cli import main
from rlmagent.engines import register_engine, unregister_engine
from rlmagent.errors import EngineError
from rlmagent.prompts import render

LOOK = "```repl\nprint(len(context))\n```"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RLMAGENT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def provider() -> Iterator[Callable[[Callable], str]]:
    """``provider(fn)``: a model spec whose engine answers with ``fn(messages, model)``."""
    names: list[str] = []

    def add(fn: Callable) -> str:
        name = f"truth{len(names)}"
        register_engine(name, lambda model, **kw: FunctionEngine(fn), replace=True)
        names.append(name)
        return f"{name}:m"

    yield add
    for name in names:
        unregister_engine(name)


def script(*replies: str) -> Callable:
    """Replies in order, the last one repeated."""
    seen: list[int] = []

    def fn(messages, model):
        seen.append(1)
        return replies[min(len(seen), len(replies)) - 1]

    return fn


def rlm(home: Path, tmp_path: Path, model: str, *extra: str) -> list[str]:
    context = tmp_path / "ctx.txt"
    context.write_text("the code is 4417.\n", encoding="utf-8")
    return ["run", "What is the code?", "-c", str(context), "--model", model, *extra]


def runs_json(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["runs", "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_a_confident_answer_exits_0_and_is_done(home, tmp_path, capsys, provider) -> None:
    model = provider(script(LOOK, "```repl\nFINAL('4417')\n```"))
    assert main(rlm(home, tmp_path, model)) == 0
    out, err = capsys.readouterr()
    assert out == "4417\n" and "confident" not in err
    assert runs_json(capsys)[0]["status"] == "done"


def test_the_turn_limit_is_exit_3_one_stderr_line_and_its_own_status(
    home, tmp_path, capsys, provider
) -> None:
    model = provider(script(LOOK, LOOK + "\n```repl\nprint(1)\n```", "I think it is 4417"))
    assert main(rlm(home, tmp_path, model, "--max-turns", "2", "-q")) == 3
    out, err = capsys.readouterr()
    assert out == "I think it is 4417\n"
    assert err.count("\n") == 1 and "no confident answer" in err
    assert "the turn limit (2, --max-turns) came before a FINAL" in err
    row = runs_json(capsys)[0]
    assert row["status"] == "max_turns" and row["stop_reason"] == "max_turns"


def test_json_says_whether_the_answer_is_confident(home, tmp_path, capsys, provider) -> None:
    model = provider(script(LOOK, "no idea"))
    assert main(rlm(home, tmp_path, model, "--max-turns", "1", "--json")) == 3
    payload = json.loads(capsys.readouterr().out)
    assert payload["confident"] is False and payload["stop_reason"] == "max_turns"


def test_the_forced_final_turn_never_answers_with_our_own_prompt(
    home, tmp_path, capsys, provider
) -> None:
    def echo(messages, model):  # a small root that repeats what it is told
        last = messages[-1]["content"]
        return last if last.startswith("No turns are left") else LOOK

    model = provider(echo)
    assert main(rlm(home, tmp_path, model, "--max-turns", "1", "-q")) == 3
    out, err = capsys.readouterr()
    forced = render("final_turn", question="What is the code?")
    assert out == "" and "rlm: no answer:" in err
    agent = RLMAgent(ScriptedEngine([LOOK, forced]), "m", max_turns=1)
    result = agent.run("What is the code?", context="c")
    assert result.content == "" and result.stop_reason == "max_turns"  # not "answer"
    echoed = ScriptedEngine([LOOK, forced.splitlines()[0] + " Paris"])
    agent = RLMAgent(echoed, "m", max_turns=1)
    assert agent.run("What is the code?", context="c").content == "Paris"


def test_a_stalled_run_is_told_then_stopped_and_says_so(home, tmp_path, capsys, provider) -> None:
    seen: list[str] = []

    def same(messages, model):
        seen.append(messages[-1]["content"])
        return LOOK if len(seen) < 5 else "4417 I guess"

    model = provider(same)
    assert main(rlm(home, tmp_path, model, "--max-turns", "10", "-q")) == 3
    assert "You ran this same code before" in seen[2]  # told after the second run of it
    assert "same code several times" in seen[4]  # then asked for the answer early
    assert "same code with the same output" in capsys.readouterr().err
    assert runs_json(capsys)[0]["status"] == "stalled"


def test_a_budget_that_runs_out_is_exit_4(home, tmp_path, capsys, provider) -> None:
    model = provider(script(LOOK))
    code = main(rlm(home, tmp_path, model, "--max-calls", "2", "-q"))
    assert code == 4
    err = capsys.readouterr().err
    assert "budget" in err and err.count("\n") == 1
    assert runs_json(capsys)[0]["status"] == "budget"


def test_an_engine_error_is_said_once(home, tmp_path, capsys, provider) -> None:
    def broken(messages, model):
        raise EngineError("the server said 503 twice", provider="truth", model=model)

    model = provider(broken)
    assert main(rlm(home, tmp_path, model)) == 1  # with the live display on stderr
    err = capsys.readouterr().err
    assert err.count("the server said 503 twice") == 1
    assert "rlm: EngineError: the server said 503 twice" in err
    assert runs_json(capsys)[0]["status"] == "error"


def test_ctrl_c_is_exit_130_and_the_run_is_cancelled_not_an_error(
    home, tmp_path, capsys, provider
) -> None:
    def interrupt(messages, model):  # Ctrl-C while the model "thinks"
        if len(messages) > 2:
            os.kill(os.getpid(), signal.SIGINT)
            threading.Event().wait(5)
        return "```repl\nFINAL_VAR('x')\n```" if len(messages) > 2 else "```repl\nx = 1\n```"

    model = provider(interrupt)
    assert main(rlm(home, tmp_path, model)) == 130
    err = capsys.readouterr().err
    assert "rlm: interrupted" in err and "failed" not in err and "CancelledError" not in err
    row = runs_json(capsys)[0]
    assert row["status"] == "cancelled" and row["stop_reason"] == "cancelled"


@pytest.mark.parametrize(
    "bad",
    [["--max-turns", "0"], ["--max-concurrency", "0"], ["--max-calls", "-1"]],
    ids=["turns", "concurrency", "calls"],
)
def test_a_rejected_invocation_leaves_no_run_behind(bad, home, tmp_path, capsys, provider) -> None:
    model = provider(script(LOOK, "```repl\nFINAL('4417')\n```"))
    assert main(rlm(home, tmp_path, model)) == 0
    capsys.readouterr()
    assert main(rlm(home, tmp_path, model, *bad)) == 2
    assert "rlm: error:" in capsys.readouterr().err
    assert main(rlm(home, tmp_path, model, "-c", str(tmp_path / "missing.txt"))) == 2
    assert len(list((home / "runs").iterdir())) == 1  # no empty file, no unreadable row
    rows = runs_json(capsys)
    assert [r["status"] for r in rows] == ["done"]
    assert main(["view", "--no-open"]) == 0  # a bare `rlm view` opens the good run
    assert capsys.readouterr().out.strip() == str(Path(rows[0]["path"]).with_suffix(".html"))


def test_view_n_opens_row_n_of_runs_and_trace_runs_are_listed(
    home, tmp_path, capsys, provider
) -> None:
    for code in ("11", "22", "33"):
        model = provider(script(LOOK, f"```repl\nFINAL('{code}')\n```"))
        assert main(rlm(home, tmp_path, model, "-q")) == 0
    traced = tmp_path / "mine" / "traced.jsonl"
    model = provider(script(LOOK, "```repl\nFINAL('44')\n```"))
    assert main(rlm(home, tmp_path, model, "-q", "--trace", str(traced))) == 0
    rows = runs_json(capsys)
    assert [r["answer"] for r in rows] == ["44", "33", "22", "11"]
    assert Path(rows[0]["path"]).resolve() == traced.resolve()  # the --trace run, kept
    assert main(["view", "3", "--no-open"]) == 0
    page = Path(capsys.readouterr().out.strip())
    assert page == Path(rows[2]["path"]).with_suffix(".html") and page.is_file()
    assert main(["view", "9", "--no-open"]) == 2
    assert "no run 9 in" in capsys.readouterr().err
    assert main(["view", str(traced), "-o", str(tmp_path / "t.html"), "--no-open"]) == 0


def test_the_missing_api_key_names_the_variable_and_the_flag(
    home, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(rlm(home, tmp_path, "openai:gpt-4o-mini", "-q")) == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY" in err and "--api-key-env" in err
    assert main(rlm(home, tmp_path, "openai:gpt-4o-mini", "--api-key-env", "MY_KEY")) == 2
    assert "--api-key-env MY_KEY: the environment variable MY_KEY is not set" in (
        capsys.readouterr().err
    )
    assert not (home / "runs").exists() or not list((home / "runs").iterdir())
