"""Both prompt profiles render with every combination of tools, depth, budget, sub-calls."""

from __future__ import annotations

import itertools

import pytest

from rlmagent import Budget, FunctionEngine, RLMAgent, ScriptedEngine, UsageError
from rlmagent.sandbox import InProcessSandbox
from rlmagent.settings import profile_for
from rlmagent.tools import function_tool


def lookup(key: str) -> str:
    """Look a key up in the host's table."""
    return key


def system_prompt(**kwargs) -> str:
    root = ScriptedEngine(["```repl\nFINAL('x')\n```"])
    RLMAgent(root, "m", sandbox=InProcessSandbox(), **kwargs).run("q", context="c")
    return root.calls[0][0]["content"]


@pytest.mark.parametrize(
    ("profile", "tools", "depth", "budget", "sub_calls"),
    list(
        itertools.product(("small", "capable"), (False, True), (1, 2), (False, True), (True, False))
    ),
)
def test_every_combination_renders(profile, tools, depth, budget, sub_calls) -> None:
    text = system_prompt(
        prompt_profile=profile,
        tools=[function_tool(lookup)] if tools else None,
        max_depth=depth,
        budget=Budget(max_calls=50) if budget else None,
        sub_calls=sub_calls,
    )
    assert "$" not in text and "`context`" in text and "FINAL_VAR" in text
    assert "chunks(text: str, max_chars: int)" in text
    assert ("`lookup(key)`: Look a key up" in text) is tools
    for name in ("llm_query", "llm_batch", "llm_filter", "llm_map", "llm_classify"):
        assert (f"`{name}(" in text) is sub_calls
    assert ("`rlm_query(" in text) is (sub_calls and depth > 1)
    assert ("Example 3, counting lines by category" in text) is (profile == "small" and sub_calls)
    assert ("Probe the structure first" in text) is (profile == "capable")
    assert ("Where meaning matters" in text) is (profile == "capable" and sub_calls)


def test_the_budget_never_changes_the_system_prompt() -> None:
    assert system_prompt() == system_prompt(budget=Budget(max_calls=50, max_seconds=60))


def test_the_profile_and_checks_follow_the_engine_unless_given() -> None:
    assert profile_for(FunctionEngine(lambda m, model: "")) == "capable"
    agent = RLMAgent(ScriptedEngine([]), "m")
    assert agent.settings.prompt_profile == "capable" and not agent.settings.check_answers
    small = RLMAgent(ScriptedEngine([]), "m", prompt_profile="small")
    assert small.settings.check_answers
    assert not RLMAgent(
        ScriptedEngine([]), "m", prompt_profile="small", check_answers=False
    ).settings.check_answers
    with pytest.raises(UsageError, match="prompt_profile must be one of small, capable"):
        RLMAgent(ScriptedEngine([]), "m", prompt_profile="tiny")
