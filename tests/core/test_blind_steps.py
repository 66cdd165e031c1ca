"""Steps a small root takes blind: sub-calls whose prompt holds none of the context
(:mod:`rlmagent.sourcing`); and what the small profile's observations leave out."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.sandbox import InProcessSandbox
from rlmagent.sourcing import (
    MAX_PROMPTS,
    MIN_CONTEXT_CHARS,
    blind_note,
    blind_prompts,
    context_text,
    holds_context,
)

CONTEXT = "".join(
    f"Record {i}: the harbour crane {i} was inspected by Ines Moura.\n" for i in range(80)
)
NOTE = "prompt holds no text of `context`"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def agent(root: ScriptedEngine, profile: str, sub: FunctionEngine | None = None) -> RLMAgent:
    return RLMAgent(
        root,
        "m",
        sub_engine=sub,
        sandbox=InProcessSandbox(),
        prompt_profile=profile,
        check_answers=False,
    )


def test_small_profile_observations_carry_no_budget_line() -> None:
    from rlmagent.budget import Budget

    for profile, shown in (("small", False), ("capable", True)):
        root = ScriptedEngine([repl("print('x')"), repl("FINAL('done')")])
        runner = RLMAgent(
            root, "m", sandbox=InProcessSandbox(), prompt_profile=profile,
            check_answers=False, budget=Budget(max_calls=10),
        )  # fmt: skip
        result = runner.run("q?", context=CONTEXT)
        assert ("Budget left" in result.trajectory[0].observation) is shown
        assert result.content == "done"


def test_small_profile_runs_every_block_of_a_reply() -> None:
    reply = repl("x = 6") + "\n" + repl("y = x * 7") + "\n" + repl("FINAL(y)")
    result = agent(ScriptedEngine([reply]), "small").run("q?", context=CONTEXT)
    assert result.content == "42" and len(result.trajectory[0].cells) == 3


def test_capable_profile_runs_every_block_of_a_reply() -> None:
    reply = repl("print('first')") + "\n" + repl("print('second')")
    root = ScriptedEngine([reply, repl("FINAL('done')")])
    result = agent(root, "capable").run("q?", context=CONTEXT)
    assert [c.result.output for c in result.trajectory[0].cells] == ["first\n", "second\n"]
    assert "did not run" not in root.calls[1][-1]["content"]


def _run_sub(code: str, context: object) -> tuple[str, list[str]]:
    prompts: list[str] = []

    def sub(messages, model):
        prompts.append(messages[-1]["content"])
        return "an answer"

    root = ScriptedEngine([repl(code), repl("FINAL('ok')")])
    result = agent(root, "small", FunctionEngine(sub)).run(
        "Who inspected crane 7?", context=context
    )
    return result.trajectory[0].cells[0].result.output, prompts


def test_a_query_without_any_context_is_called_and_then_pointed_out() -> None:
    output, prompts = _run_sub("print(llm_query('Who inspected crane 7?'))", CONTEXT)
    assert prompts == ["Who inspected crane 7?"]  # the call is made; only a note is added
    assert output.startswith("an answer\n") and NOTE in output


def test_a_query_holding_lines_of_the_context_gets_no_note() -> None:
    code = "hits = search('crane 7 ')\nprint(llm_query('Who? ' + ' '.join(hits)))"
    output, prompts = _run_sub(code, CONTEXT)
    assert "Record 7" in prompts[0] and "note" not in output


def test_a_batch_says_how_many_prompts_were_blind() -> None:
    code = "print(llm_batch(['Who inspected crane 7?', 'Summarise: ' + context[:400]]))"
    output, _ = _run_sub(code, CONTEXT)
    assert "llm_batch: 1 of 2 prompts looked at hold no text of `context`" in output


def test_a_file_context_is_read_for_the_check(tmp_path: Path) -> None:
    path = tmp_path / "records.txt"
    path.write_text(CONTEXT, encoding="utf-8")
    output, _ = _run_sub("print(llm_query('Who inspected crane 7?'))", path)
    assert NOTE in output
    output, _ = _run_sub("print(llm_query(context[:300]))", path)
    assert "note" not in output


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Who inspected crane 7?", False),
        ("Answer from: Record 12: the harbour crane 12 was inspected", True),
        ("Record 3", True),  # shorter than a piece: compared whole
        ("", False),
        ("x" * 5_000 + CONTEXT[1000:1040], True),  # the piece is found late in the prompt
    ],
)
def test_holds_context(prompt: str, expected: bool) -> None:
    assert holds_context(prompt, CONTEXT) is expected


def test_only_text_contexts_of_a_checked_size_are_compared() -> None:
    assert context_text(CONTEXT) == CONTEXT
    assert context_text("short") is None and len("short") < MIN_CONTEXT_CHARS
    assert context_text(["a list"] * 1000) is None
    assert context_text(Path("/nonexistent/file.txt")) is None
    assert blind_prompts(["anything"], None) == 0
    assert blind_prompts(["blind question?"] * 20, CONTEXT) == MAX_PROMPTS
    assert blind_note("llm_query", 1, 1).startswith("[note: llm_query: prompt holds no text")
