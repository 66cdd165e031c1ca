"""The root loop's logic, driven by ScriptedEngine / FunctionEngine over the real sandbox."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from rlmagent import (
    Completion,
    ContextTypeError,
    EngineError,
    EventBus,
    FunctionEngine,
    RLMAgent,
    ScriptedEngine,
    TokenUsage,
    UsageError,
    function_tool,
)
from rlmagent.events import BatchEnded, SubCallEnded

CTX = "\n".join(f"row {i}: nothing here" for i in range(2000)) + "\nThe vault code is 4417.\n"


def agent(responses, **kw) -> RLMAgent:
    return RLMAgent(ScriptedEngine(responses), "root", **kw)


def test_first_message_describes_context_without_containing_it():
    engine = ScriptedEngine(["```repl\nFINAL(len(context))\n```"])
    big = "x" * 500_000 + "needle"
    result = RLMAgent(engine, "m").run("How long?", context=big)
    assert result.content == str(len(big))
    first = engine.calls[0]
    prompt_chars = sum(len(m["content"]) for m in first)
    assert "needle" not in json.dumps(first)
    assert "500,006 characters" in first[1]["content"]
    assert prompt_chars < 6000
    small = ScriptedEngine(["```repl\nFINAL(1)\n```"])
    RLMAgent(small, "m").run("How long?", context="x" * 600 + "needle")
    assert abs(sum(len(m["content"]) for m in small.calls[0]) - prompt_chars) < 400


def test_blocks_run_in_order_and_state_persists_across_turns():
    result = agent(
        [
            "```repl\nx = 2\n```\n```python\ny = x * 21\n```",
            "```py\nFINAL(y)\n```",
        ]
    ).run("q", context="c")
    assert result.content == "42"
    assert result.turns == 2
    assert [len(s.cells) for s in result.trajectory] == [2, 1]


def test_notebook_display_and_output_before_exception():
    result = agent(
        [
            "```repl\nprint('before')\n1 + 1\n```\n"
            "```repl\nprint('kept')\nraise ValueError('boom')\n```",
            "```repl\nFINAL('done')\n```",
        ]
    ).run("q", context="c")
    first, second = result.trajectory[0].cells
    assert first.result.output == "before\n2\n"
    assert second.result.output == "kept\n"
    assert "ValueError: boom" in second.result.error
    observation = result.trajectory[0].observation
    assert "kept" in observation and "ValueError: boom" in observation


def test_output_is_cut_with_a_note():
    result = agent(["```repl\nprint('a' * 5000)\n```", "FINAL(ok)"], max_output_chars=100).run(
        "q", context="c"
    )
    output = result.trajectory[0].cells[0].result.output
    assert output.startswith("a" * 100)
    assert "4,901 more characters cut" in output


def test_final_ends_the_cell_at_once():
    result = agent(["```repl\nFINAL('x')\nprint('never')\n```\n```repl\nprint('no')\n```"]).run(
        "q", context="c"
    )
    assert result.content == "x"
    assert len(result.trajectory[0].cells) == 1
    assert result.trajectory[0].cells[0].result.output == ""


def test_final_var_missing_name_is_an_error_the_model_sees():
    engine = ScriptedEngine(
        [
            "```repl\nFINAL_VAR('answer')\n```",
            "```repl\nanswer = 'Paris'\nFINAL_VAR('answer')\n```",
        ]
    )
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "Paris"
    assert "no variable named 'answer'" in engine.calls[1][-1]["content"]


def test_prose_final_after_code_is_accepted():
    result = agent(["```repl\nprint(1)\n```", 'The answer is FINAL("4417").']).run("q", context="c")
    assert result.content == "4417"
    assert result.stop_reason == "final"


def test_prose_final_var_is_looked_up_in_the_repl():
    result = agent(["```repl\nv = 'from repl'\n```", "FINAL_VAR(v)"]).run("q", context="c")
    assert result.content == "from repl"


def test_prose_final_before_any_code_is_never_the_answer():
    # repeating a FINAL does not make it an answer: code must look at the context first
    code = "```repl\nprint(context)\n```"
    engine = ScriptedEngine(["FINAL(guess)", "FINAL(guess)", code, "FINAL(c)"])
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "c"
    assert result.turns == 4
    assert "before running any code" in engine.calls[1][-1]["content"]
    assert "before running any code" in engine.calls[2][-1]["content"]


def test_plain_replies_before_any_code_are_never_the_answer():
    engine = ScriptedEngine(
        ["The context says 7.", "It is 7.", "```repl\nprint(context)\n```", "FINAL(7)"]
    )
    result = RLMAgent(engine, "m").run("q", context="7")
    assert result.content == "7" and result.stop_reason == "final"
    assert "no ```repl block" in engine.calls[1][-1]["content"]
    assert "No code has run yet" in engine.calls[2][-1]["content"]


def test_without_code_the_turn_limit_forces_a_final_turn():
    engine = ScriptedEngine(["It is 7.", "It is 7.", "FINAL(7)"])
    result = RLMAgent(engine, "m", max_turns=2).run("q", context="7")
    assert result.stop_reason == "max_turns" and result.content == "7"


def test_reply_with_code_and_prose_final_runs_the_code_first():
    engine = ScriptedEngine(
        [
            "First hop: FINAL(clue)\n```repl\nprint('looking')\n```",
            "```repl\nFINAL('real')\n```",
        ]
    )
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "real"


def test_no_code_reply_gets_one_reminder_then_is_the_answer():
    engine = ScriptedEngine(
        ["```repl\nprint(len(context))\n```", "I think it is Paris.", "```\nParis\n```"]
    )
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "Paris"
    assert "no ```repl block" in engine.calls[2][-1]["content"]
    assert result.stop_reason == "answer_without_final"


def test_reply_cut_by_token_limit_is_not_run():
    cut = Completion(
        content="```repl\nFINAL('half",
        model="m",
        finish_reason="length",
        usage=TokenUsage(10, 5),
    )
    engine = ScriptedEngine([cut, "```repl\nFINAL('whole')\n```"])
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "whole"
    assert result.trajectory[0].cells == ()
    assert "cut off by the token limit" in engine.calls[1][-1]["content"]


def test_max_turns_asks_once_more_without_code():
    engine = ScriptedEngine(["```repl\nx = 1\n```"] * 3 + ["FINAL(last word)"])
    result = RLMAgent(engine, "m", max_turns=3).run("q", context="c")
    assert result.content == "last word"
    assert result.max_turns_exceeded is True
    assert "No turns are left" in engine.calls[3][-1]["content"]
    assert result.turns == 4


def test_scaffold_names_are_restored_after_each_cell():
    result = agent(
        [
            "```repl\ncontext = None\nllm_query = 5\nFINAL_VAR = print\n```",
            "```repl\nprint(len(context), llm_query('hi'))\nx = 3\n```",
            "```repl\nFINAL_VAR('x')\n```",
        ],
        sub_engine=FunctionEngine(lambda m, model: "pong"),
    ).run("q", context="abc")
    assert result.trajectory[1].cells[0].result.output == "3 pong\n"
    assert result.content == "3"


def test_usage_counts_root_and_every_sub_call_per_model():
    sub = FunctionEngine(lambda m, model: "yes", price=(1.0, 2.0))
    root = ScriptedEngine(
        ["```repl\nprint(llm_batch(['a', 'b', 'c']))\nllm_query('d')\n```", "FINAL(x)"],
        price=(3.0, 4.0),
    )
    result = RLMAgent(root, "big", sub_engine=sub, sub_model="small").run("q", context="c")
    usage = result.usage
    assert usage.calls == 6
    assert usage.by_model["big"].calls == 2
    assert usage.by_model["small"].calls == 4
    assert usage.prompt_tokens == sum(m.prompt_tokens for m in usage.by_model.values())
    assert usage.cost_usd == pytest.approx(
        usage.by_model["big"].cost_usd + usage.by_model["small"].cost_usd
    )
    assert usage.cost_usd > 0
    calls = result.trajectory[0].cells[0].sub_calls
    assert [c.prompt for c in calls[:3]] == ["a", "b", "c"] or sorted(
        c.prompt for c in calls[:3]
    ) == ["a", "b", "c"]
    assert len(calls) == 4 and all(c.answer == "yes" and c.depth == 1 for c in calls)


def test_unknown_price_makes_cost_none():
    result = agent(["```repl\nFINAL('a')\n```"]).run("q", context="c")
    assert result.usage.cost_usd is None


def test_sub_calls_use_sub_settings():
    seen = []

    class Recorder(FunctionEngine):
        async def agenerate(self, messages, *, model, temperature=0.7, max_tokens=1024, **kw):
            seen.append((model, temperature, max_tokens))
            return await super().agenerate(messages, model=model)

    sub = Recorder(lambda m, model: "ok")
    agent(
        ["```repl\nllm_query('x')\n```", "FINAL(y)"],
        sub_engine=sub,
        sub_model="s",
        sub_temperature=0.1,
        sub_max_tokens=77,
    ).run("q", context="c")
    assert seen == [("s", 0.1, 77)]


def test_llm_batch_runs_concurrently_and_keeps_order():
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    release = threading.Event()

    def slow(messages, model):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
            if state["peak"] >= 8:
                release.set()
        release.wait(timeout=5)
        with lock:
            state["now"] -= 1
        return messages[-1]["content"].upper()

    prompts = [f"p{i}" for i in range(40)]
    code = f"out = llm_batch({prompts!r})\nprint(out == [p.upper() for p in {prompts!r}])"
    result = agent(
        [f"```repl\n{code}\n```", "FINAL(x)"],
        sub_engine=FunctionEngine(slow),
        max_concurrency=8,
    ).run("q", context="c")
    assert result.trajectory[0].cells[0].result.output == "True\n"
    assert state["peak"] == 8  # 8 in flight at once, never more


def test_failed_batch_item_is_an_error_string_not_a_failed_batch():
    def flaky(messages, model):
        if messages[-1]["content"] == "bad":
            raise RuntimeError("engine down")
        return "fine"

    bus = EventBus()
    ended = []
    bus.subscribe(ended.append, BatchEnded)
    result = agent(
        ["```repl\nprint(llm_batch(['ok', 'bad', 'ok']))\n```", "FINAL(x)"],
        sub_engine=FunctionEngine(flaky),
        bus=bus,
    ).run("q", context="c")
    output = result.trajectory[0].cells[0].result.output
    assert "'fine', 'Error: RuntimeError: engine down', 'fine'" in output
    assert ended[0].failures == 1


def test_failed_llm_query_raises_inside_the_repl():
    def down(messages, model):
        raise RuntimeError("no model")

    result = agent(
        [
            "```repl\ntry:\n    llm_query('x')\n"
            "except HostCallError as e:\n    print('caught', e)\n```",
            "FINAL(x)",
        ],
        sub_engine=FunctionEngine(down),
    ).run("q", context="c")
    assert "caught RuntimeError: no model" in result.trajectory[0].cells[0].result.output


def test_tools_appear_in_the_repl_and_the_prompt():
    def lookup(key: str) -> dict:
        """Look a key up in the host's table."""
        return {"key": key, "value": len(key)}

    engine = ScriptedEngine(["```repl\nr = lookup('abc')\nprint(r['value'])\n```", "FINAL(x)"])
    result = RLMAgent(engine, "m", tools=[function_tool(lookup)]).run("q", context="c")
    assert result.trajectory[0].cells[0].result.output == "3\n"
    assert "`lookup(key)`: Look a key up" in engine.calls[0][0]["content"]
    bare = ScriptedEngine(["```repl\nFINAL('a')\n```"])
    RLMAgent(bare, "m").run("q", context="c")
    assert "Tools" not in bare.calls[0][0]["content"]


def test_bad_tool_and_bad_arguments_are_usage_errors():
    with pytest.raises(UsageError, match="reserved"):
        RLMAgent(ScriptedEngine([]), "m", tools=[function_tool(lambda: 1, name="context")])
    with pytest.raises(UsageError, match="max_turns"):
        RLMAgent(ScriptedEngine([]), "m", max_turns=0)
    with pytest.raises(UsageError, match="Engine"):
        RLMAgent(object(), "m")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, b"bytes", {1, 2}, object(), {"k": object()}])
def test_bad_context_is_rejected_before_any_model_call(bad):
    engine = ScriptedEngine(["FINAL(x)"])
    with pytest.raises(ContextTypeError, match="context"):
        RLMAgent(engine, "m").run("q", context=bad)
    assert engine.calls == []


def test_list_dict_and_path_contexts(tmp_path: Path):
    result = agent(["```repl\nFINAL(context[1]['b'])\n```"]).run("q", context=[1, {"b": "two"}])
    assert result.content == "two"
    result = agent(["```repl\nFINAL(sorted(context))\n```"]).run("q", context={"z": 1, "a": 2})
    assert result.content == "['a', 'z']"
    path = tmp_path / "ctx.txt"
    path.write_text(CTX, encoding="utf-8")
    engine = ScriptedEngine(
        ["```repl\nFINAL([l for l in context.splitlines() if 'vault' in l][0])\n```"]
    )
    result = RLMAgent(engine, "m").run("q", context=path)
    assert result.content == "The vault code is 4417."
    assert "2,001 lines" in engine.calls[0][1]["content"]
    with pytest.raises(ContextTypeError, match="not a readable file"):
        agent(["FINAL(x)"]).run("q", context=tmp_path / "missing.txt")


def test_engine_error_is_raised_after_the_trajectory_is_kept():
    engine = ScriptedEngine(["```repl\nprint('step one')\n```"])
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    with pytest.raises(EngineError, match="ran out") as info:
        RLMAgent(engine, "m", bus=bus).run("q", context="c")
    partial = info.value.partial
    assert partial is not None and partial.turns == 1
    assert partial.trajectory[0].cells[0].result.output == "step one\n"
    assert partial.stop_reason == "error"
    assert type(events[-1]).__name__ == "RunEnded" and events[-1].error


def test_events_cover_a_run_and_sub_calls_carry_depth():
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    agent(
        ["```repl\nllm_batch(['a', 'b'])\n```", "FINAL(x)"],
        bus=bus,
        sub_engine=FunctionEngine(lambda m, model: "s"),
    ).run("q", context="c")
    names = [type(e).__name__ for e in events]
    assert names[0] == "RunStarted" and names[-1] == "RunEnded"
    for name in (
        "TurnStarted",
        "RootCompletion",
        "CodeStarted",
        "CodeExecuted",
        "BatchStarted",
        "SubCallStarted",
        "SubCallEnded",
        "BatchEnded",
        "TurnEnded",
    ):
        assert name in names
    ends = [e for e in events if isinstance(e, SubCallEnded)]
    assert {e.call.depth for e in ends} == {1}
    assert len({e.run_id for e in events}) == 1


def test_arun_works_inside_an_event_loop_and_run_refuses():
    async def main():
        a = agent(["```repl\nFINAL(7)\n```"])
        result = await a.arun("q", context="c")
        with pytest.raises(UsageError, match="arun"):
            agent(["FINAL(1)"]).run("q")
        return result

    assert asyncio.run(main()).content == "7"


def test_async_function_engine():
    async def answer(messages, model):
        await asyncio.sleep(0)
        return "```repl\nFINAL('async')\n```"

    assert RLMAgent(FunctionEngine(answer), "m").run("q", context="c").content == "async"


def test_final_after_unseen_output_in_the_same_reply_needs_confirmation():
    engine = ScriptedEngine(
        [
            "```repl\nprint('the code is 7219')\n```\nThe REPL shows: basement\n"
            "```repl\nFINAL('basement')\n```",
            "```repl\nFINAL('7219')\n```",
        ]
    )
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "7219"
    second = engine.calls[1]
    assert "the code is 7219" in second[-1]["content"]
    assert "before you had seen the output" in second[-1]["content"]
    assert "The REPL shows" not in second[-2]["content"]


def test_final_in_a_later_block_is_accepted_when_earlier_blocks_showed_nothing():
    result = agent(["```repl\nx = 5\n```\n```repl\nFINAL(x)\n```"]).run("q", context="c")
    assert result.content == "5" and result.turns == 1


def test_unseen_final_repeated_is_accepted():
    reply = "```repl\nprint('hits')\n```\n```repl\nFINAL('same')\n```"
    engine = ScriptedEngine([reply, reply])
    result = RLMAgent(engine, "m").run("q", context="c")
    assert result.content == "same" and result.turns == 2


def test_the_forced_final_turn_never_returns_our_prompt_text():
    engine = ScriptedEngine(["```repl\nprint(1)\n```", "No turns are left. Paris"])
    result = RLMAgent(engine, "m", max_turns=1).run("q", context="c")
    assert result.stop_reason == "max_turns" and result.content == "Paris"


def test_a_root_that_repeats_the_same_cell_is_asked_for_its_answer_early():
    same = "```repl\nprint(len(context))\n```"
    engine = ScriptedEngine([same, same, same, same, "FINAL(1)"])
    result = RLMAgent(engine, "m", max_turns=10).run("q", context="c")
    assert result.stop_reason == "stalled" and result.content == "1"
    assert result.turns == 5 and "same code several times" in engine.calls[4][-1]["content"]
    assert "You ran this same code before" in engine.calls[2][-1]["content"]
