"""Answers that rest on evidence: the grounding rule, the support check, their costs."""

from __future__ import annotations

import pytest

from rlmagent import EventBus, FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.events import Notice, SubCallEnded
from rlmagent.evidence import (
    MAX_EVIDENCE_CHARS,
    evidence_excerpt,
    grounded,
    parse_support,
    support_prompt,
)

LOOKUP = "```repl\nprint([l for l in context.splitlines() if 'Heron' in l])\n```"
CONTEXT = "Blue Heron moved to hangar 4.\nThe launch code of Blue Heron is 7241.\n"


@pytest.mark.parametrize(
    ("value", "seen", "expected"),
    [
        ("7241", "the code is 7241.", True),
        ("9999", "the code is 7241.", False),
        ("1,250", "total: 1250 items", True),
        ("sections 3 and 17", "Which sections mention a storm? [3, 17]", True),
        ("Lisbon", "Ana lives in Porto", False),
        ('"Porto"', "Ana lives in porto", True),
        ("", "anything", True),
        ("the answer is 12 apples", "12 apples were sold", True),
    ],
)
def test_grounded(value: str, seen: str, expected: bool) -> None:
    assert grounded(value, seen) is expected


@pytest.mark.parametrize(
    ("reply", "answer", "supported"),
    [
        ("8017286", "8017286", True),
        ("The answer is 59.", "59", True),
        ("Oslo, Norway", "Oslo", True),
        ("12", "120", False),
        ("Oslo", "Marta Quill", False),
        ("NOT FOUND", "Oslo", None),
        ("", "Oslo", None),
    ],
)
def test_parse_support(reply: str, answer: str, supported: bool | None) -> None:
    assert parse_support(reply, answer).supported is supported


def test_the_support_prompt_keeps_the_latest_outputs_within_bounds() -> None:
    prompt = support_prompt("q?", "a", "old " * 5_000 + "NEWEST")
    assert "NEWEST" in prompt and "[...]" in prompt
    assert len(prompt) < 7_500


def test_the_support_prompt_shows_where_the_answer_appears_in_long_outputs() -> None:
    outputs = "filler " * 2_000 + "the code of Blue Heron is 8017286." + " filler" * 2_000
    excerpt = evidence_excerpt(outputs, "8017286")
    assert "the code of Blue Heron is 8017286." in excerpt
    assert len(excerpt) <= MAX_EVIDENCE_CHARS + 40
    assert evidence_excerpt("short", "x") == "short"


def judge(verdicts: list[str]) -> tuple[FunctionEngine, list[str]]:
    """A sub-engine answering support checks with ``verdicts`` in turn (and recording)."""
    prompts: list[str] = []

    def answer(messages, model):
        prompts.append(messages[-1]["content"])
        return verdicts[min(len(prompts), len(verdicts)) - 1]

    return FunctionEngine(answer), prompts


def test_a_supported_answer_is_checked_once_and_accepted() -> None:
    sub, asked = judge(["7241"])
    root = ScriptedEngine([LOOKUP, "```repl\nFINAL('7241')\n```"])
    result = RLMAgent(root, "m", sub_engine=sub, check_answers=True).run("code?", CONTEXT)
    assert result.content == "7241" and result.answer_checked is True
    assert len(asked) == 1 and "Proposed answer: 7241" in asked[0] and "code?" in asked[0]
    assert "7241" in asked[0].split("Question:")[0]  # the outputs the model saw
    assert result.usage.calls == 3  # two root turns and the check


def test_an_unsupported_answer_goes_back_twice_then_stands_unchecked() -> None:
    sub, asked = judge(["7241"])
    final = "```repl\nFINAL('4')\n```"
    root = ScriptedEngine([LOOKUP, final, final, final])
    bus = EventBus()
    notices: list[str] = []
    bus.subscribe(lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    result = RLMAgent(root, "m", sub_engine=sub, check_answers=True, bus=bus).run("code?", CONTEXT)
    assert result.content == "4" and result.answer_checked is False
    assert result.turns == 4 and len(asked) == 3
    told = [m[-1]["content"] for m in root.calls[2:4]]
    assert all("the outputs point to '7241', not '4'" in t for t in told)
    assert sum("answer check: not supported" in n for n in notices) == 2


def test_a_rejected_answer_can_be_corrected() -> None:
    sub, _ = judge(["7241"])
    root = ScriptedEngine([LOOKUP, "```repl\nFINAL('4')\n```", "```repl\nFINAL('7241')\n```"])
    result = RLMAgent(root, "m", sub_engine=sub, check_answers=True).run("code?", CONTEXT)
    assert result.content == "7241" and result.answer_checked is True


def test_an_unreadable_verdict_accepts_the_answer_with_no_verdict() -> None:
    sub, _ = judge(["NOT FOUND"])
    root = ScriptedEngine([LOOKUP, "```repl\nFINAL('7241')\n```"])
    result = RLMAgent(root, "m", sub_engine=sub, check_answers=True).run("code?", CONTEXT)
    assert result.content == "7241" and result.answer_checked is None


def test_an_invented_number_is_questioned_before_the_support_check() -> None:
    sub, asked = judge(["7241"])
    root = ScriptedEngine([LOOKUP, "FINAL(9999)", "```repl\nFINAL('7241')\n```"])
    result = RLMAgent(root, "m", sub_engine=sub, check_answers=True).run("code?", CONTEXT)
    assert result.content == "7241"
    assert "does not appear in any output" in root.calls[2][-1]["content"]
    assert len(asked) == 1  # the invented value never reached the support check


def test_checks_are_off_by_default_for_api_engines_and_cost_nothing() -> None:
    sub, asked = judge(["1"])
    bus = EventBus()
    calls: list[SubCallEnded] = []
    bus.subscribe(lambda e: calls.append(e) if isinstance(e, SubCallEnded) else None)
    root = ScriptedEngine([LOOKUP, "FINAL(9999)"])
    result = RLMAgent(root, "m", sub_engine=sub, bus=bus).run("code?", CONTEXT)
    assert result.content == "9999" and result.answer_checked is None
    assert asked == [] and calls == []
