"""End-to-end RLM runs on the real embedded model (slow: real inference on the CPU)."""

from __future__ import annotations

import pytest

from rlmagent import RLMAgent, ScriptedEngine
from rlmagent.demo import make_demo
from rlmagent.settings import LOCAL_ROOT_TEMPERATURE

pytest.importorskip("llama_cpp", reason="the local extra is not installed")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def engines():
    from rlmagent.engines import get_engine

    root, sub = get_engine("local:qwen2.5-coder-1.5b"), get_engine("local:qwen2.5-coder-1.5b")
    yield root, sub
    for engine in (root, sub):
        engine.close()


def test_local_root_and_sub_answer_the_demo(engines):
    root, sub = engines
    demo = make_demo(seed=3, chars=20_000)
    agent = RLMAgent(
        root, root.model, sub_engine=sub, sub_model=sub.model, temperature=LOCAL_ROOT_TEMPERATURE
    )
    result = agent.run(demo.question, context=demo.context)
    assert demo.answer in result.content, result.trajectory
    assert any(cell.result.output for step in result.trajectory for cell in step.cells)


def test_llm_query_from_the_repl_reaches_the_local_sub_model(engines):
    _, sub = engines
    demo = make_demo(seed=5, chars=4_000)
    code = (
        "answer = llm_query(context + chr(10) + chr(10) + "
        f"{demo.question!r} + ' Reply with the code only.')\n"
        "print(answer)"
    )
    root = ScriptedEngine([f"```repl\n{code}\n```", "```repl\nFINAL(answer)\n```"])
    agent = RLMAgent(root, "scripted", sub_engine=sub, sub_model=sub.model, sub_temperature=0.0)
    result = agent.run(demo.question, context=demo.context)
    assert demo.answer in result.content
    calls = result.trajectory[0].cells[0].sub_calls
    assert len(calls) == 1 and calls[0].usage.prompt_tokens > 500
