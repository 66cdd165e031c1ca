"""llm_filter on the real embedded model, through a real run (slow: real inference)."""

from __future__ import annotations

import pytest

from rlmagent import RLMAgent, ScriptedEngine

pytest.importorskip("llama_cpp", reason="the local extra is not installed")

pytestmark = pytest.mark.slow

# 20 short lines; the six about food never say "food" (phrasing varied on purpose)
FOOD = [
    "We shared a huge bowl of ramen after the match.",
    "The bakery on the corner sells warm croissants at dawn.",
    "Grandma's lentil soup needs a pinch of cumin.",
    "I ordered a margherita pizza with extra basil.",
    "She sliced mangoes and sprinkled chili on them.",
    "Breakfast was scrambled eggs on toast.",
]
OTHER = [
    "The train to Lyon left twelve minutes late.",
    "He replaced the flat tyre on his bicycle.",
    "Our team won the chess tournament on Sunday.",
    "The printer on the third floor is out of toner.",
    "A thunderstorm knocked out power across the valley.",
    "She finally finished knitting the blue scarf.",
    "The museum opens a new exhibit about comets.",
    "My phone screen cracked when it fell.",
    "They painted the fence a pale green.",
    "The lecture on tax law ran over time.",
    "A stray cat sleeps on our porch every night.",
    "The bus drivers voted to strike next week.",
    "He tuned the guitar before the concert.",
    "Snow closed the mountain pass overnight.",
]


def test_llm_filter_finds_the_lines_about_food_on_the_local_model() -> None:
    from rlmagent.engines import get_engine

    sub = get_engine("local:qwen2.5-coder-1.5b")
    try:
        lines = [line for pair in zip(OTHER, FOOD + OTHER[6:], strict=False) for line in pair]
        lines = list(dict.fromkeys(lines + FOOD + OTHER))
        assert len(lines) == 20
        code = "kept = llm_filter(context.splitlines(), 'is about eating or a dish')\nprint(kept)"
        root = ScriptedEngine([f"```repl\n{code}\n```", "```repl\nFINAL_VAR('kept')\n```"])
        agent = RLMAgent(root, "m", sub_engine=sub, sub_model=sub.model, sub_temperature=0.0)
        result = agent.run("Which lines are about food?", context="\n".join(lines))
        kept = result.trajectory[0].cells[0].result.output
        found = [line for line in lines if line in kept]
        wrong = set(found) ^ set(FOOD)
        assert len(wrong) <= 2, f"kept {found}"  # 20 decisions, at most 2 mistakes
        assert len(result.trajectory[0].cells[0].sub_calls) >= 20
    finally:
        sub.close()
