"""Issue 15, records: what a cell sends to sub-calls is kept cut, so a run's host memory
stays bounded whatever the cell sends.

Sub-call prompts, answers and errors in ``AgentResult`` (``Cell.sub_calls``), in the
events and in the trace file keep at most ``RECORD_CHARS`` characters and their full
length; past ``RUN_RECORD_CHARS`` kept in a run, ``SHORT_RECORD_CHARS``. The model
always gets the whole answer. Every case runs on every tier, through ``RLMAgent.run``.
"""

from __future__ import annotations

import json

from rlmagent import EventBus, FunctionEngine, function_tool
from rlmagent import events as ev
from rlmagent.trace import Trajectory
from rlmagent.types import RECORD_CHARS, SHORT_RECORD_CHARS

from .hostile import MB, cell, memory_growth, retained_bytes, run_cells

PROMPT_CHARS = 15_000_000  # within a 16 MiB frame
CALLS = 12


def test_big_prompts_are_kept_cut_everywhere_and_the_host_keeps_little(tier, tmp_path):
    code = (
        f"p = 'x' * {PROMPT_CHARS}\n"
        f"answers = [llm_query(p + str(i)) for i in range({CALLS})]\n"
        "print(len(answers), answers[0])"
    )
    events: list[ev.Event] = []
    bus = EventBus()
    bus.subscribe(events.append, ev.SubCallStarted, ev.SubCallEnded)
    trace = tmp_path / "run.jsonl"
    result, peak, _ = memory_growth(lambda: run_cells(tier, code, bus=bus, trace=trace))
    assert cell(result).output == f"{CALLS} ok\n", cell(result).error
    calls = result.trajectory[0].cells[0].sub_calls
    assert len(calls) == CALLS
    for call in calls:
        assert call.prompt_chars == PROMPT_CHARS + len(str(calls.index(call)))
        assert call.prompt.startswith("x" * RECORD_CHARS)
        assert len(call.prompt) < RECORD_CHARS + 100 and "more characters not kept" in call.prompt
        assert call.answer == "ok" and call.answer_chars == 2
    started = [e for e in events if isinstance(e, ev.SubCallStarted)]
    assert len(started) == CALLS
    assert all(
        len(e.prompt) < RECORD_CHARS + 100 and e.prompt_chars > PROMPT_CHARS for e in started
    )
    assert trace.stat().st_size < 2 * MB  # the file holds each prompt once, cut
    loaded = [t.call for t in Trajectory.load(trace).root.sub_calls()]
    assert [c.prompt_chars for c in loaded] == [c.prompt_chars for c in calls]
    # whole, the prompts were 180 MB kept with the result (and as much in the events)
    assert retained_bytes(result) < 2 * MB
    assert retained_bytes(events) < 2 * MB
    if peak is not None:  # the host's peak: ~500 MB when every prompt was kept whole
        assert peak < 250 * MB, f"the host grew by {peak / MB:.0f} MB"


def test_the_model_gets_the_whole_answer_and_the_record_keeps_it_cut(tier):
    long = "a" * (RECORD_CHARS * 5)
    sub = FunctionEngine(lambda messages, model: long)
    result = run_cells(tier, "r = llm_query('q')\nprint(len(r), r == 'a' * len(r))", sub=sub)
    assert cell(result).output == f"{len(long)} True\n"
    (call,) = result.trajectory[0].cells[0].sub_calls
    assert call.answer_chars == len(long) and len(call.answer or "") < RECORD_CHARS + 100


def test_past_the_runs_allowance_records_keep_a_short_head(tier, monkeypatch):
    monkeypatch.setattr("rlmagent.host.RUN_RECORD_CHARS", 3 * RECORD_CHARS)
    code = f"answers = [llm_query(str(i) + 'y' * {RECORD_CHARS * 2}) for i in range(6)]"
    result = run_cells(tier, code)
    calls = result.trajectory[0].cells[0].sub_calls
    lengths = [len(c.prompt) for c in calls]
    assert all(n > RECORD_CHARS for n in lengths[:3]), lengths
    assert all(SHORT_RECORD_CHARS < n < SHORT_RECORD_CHARS + 100 for n in lengths[3:]), lengths
    assert all(c.prompt_chars == RECORD_CHARS * 2 + 1 for c in calls)


def test_the_window_guard_refuses_a_huge_prompt_and_nothing_is_kept(tier):
    sub = FunctionEngine(lambda messages, model: "ok", context_window=8192)
    code = f"try:\n    llm_query('x' * {PROMPT_CHARS})\nexcept Exception as exc:\n    print(exc)"
    result = run_cells(tier, code, sub=sub)
    seen = cell(result)
    assert "8,192-token window" in seen.output and "split the text with chunks" in seen.output
    assert result.trajectory[0].cells[0].sub_calls == ()


def test_tool_arguments_are_kept_cut_in_their_event(tier):
    seen: list[int] = []

    def count(text: str) -> int:
        """Its length."""
        seen.append(len(text))
        return len(text)

    events: list[ev.ToolCalled] = []
    bus = EventBus()
    bus.subscribe(events.append, ev.ToolCalled)
    tools = [function_tool(count)]
    result = run_cells(tier, "print(count('z' * 3_000_000))", tools=tools, bus=bus)
    assert cell(result).output == "3000000\n" and seen == [3_000_000]
    (event,) = events
    assert len(json.dumps(dict(event.arguments))) < RECORD_CHARS + 200
