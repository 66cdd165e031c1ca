"""Issue 15, the trace: the JSONL writer encodes anything and never drops an event; a
failing bus subscriber is reported once, loudly, with what it lost.

A lone UTF-16 surrogate in a cell's output, a prompt or the answer made the writer's
strict encode fail, the bus turned that into a warning, and the cell's events were
missing from the file. Now every event published reaches the file and reads back.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter

import pytest

from rlmagent import EventBus
from rlmagent import events as ev
from rlmagent.trace import TraceWriter, Trajectory
from rlmagent.trace.jsonl import encode_line, read_events
from sandbox.helpers import TIERS
from sandbox.hostile import run_cells

SURROGATES = "lone \ud800 high, \udfff low"


@pytest.mark.parametrize("tier", TIERS)
def test_surrogates_in_output_prompts_and_answer_lose_no_event(tier, tmp_path):
    published: list[ev.Event] = []
    bus = EventBus()
    bus.subscribe(published.append)
    trace = tmp_path / "run.jsonl"
    code = f"s = {SURROGATES!r}\nprint(s)\nprint(llm_query('ask about ' + s))\nFINAL(s)"
    with warnings.catch_warnings():  # a subscriber that failed would warn: fail here
        warnings.filterwarnings("error", message="event subscriber")
        result = run_cells(tier, code, bus=bus, trace=trace)
    assert result.content == SURROGATES
    _, events, truncated, skipped = read_events(trace)
    assert not truncated and skipped == 0
    assert Counter(type(e).__name__ for e in events) == Counter(type(e).__name__ for e in published)
    loaded = Trajectory.load(trace).root
    (call,) = list(loaded.sub_calls())
    assert call.call.prompt == "ask about " + SURROGATES
    cell = loaded.turns[0].cells[0]
    assert cell.result is not None and cell.result.output == f"{SURROGATES}\nok\n"
    assert loaded.answer == SURROGATES


def test_anything_encodes_as_a_line():
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    cycle: dict = {}
    cycle["self"] = cycle
    line = encode_line({"type": "X", "c": cycle, "n": 10**5000, "o": BadRepr(), (1, 2): "k"})
    data = json.loads(line)
    assert data["c"] == {"self": "<cycle>"} and data["n"] == "<int of 16,610 bits>"
    assert data["o"] == "<BadRepr that cannot be shown>" and data["(1, 2)"] == "k"
    assert data["unencodable"].startswith(("ValueError", "RuntimeError", "TypeError"))
    assert encode_line({"s": "\ud800"}).encode("utf-8", "backslashreplace") == (
        b'{"s": "\\ud800"}\n'
    )


def test_an_event_that_cannot_be_converted_is_still_written(tmp_path):
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    path = tmp_path / "t.jsonl"
    with TraceWriter(path) as writer:
        writer(ev.Notice(run_id="r", message="before"))
        writer(ev.ToolCalled(run_id="r", name="t", arguments={"x": BadRepr()}, result=None))
        writer(ev.Notice(run_id="r", message="after"))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["type"] for x in lines] == ["header", "Notice", "ToolCalled", "Notice"]
    assert lines[2]["arguments"] == {"x": "<BadRepr that cannot be shown>"}


def test_a_failing_subscriber_is_reported_once_loudly_with_what_it_lost():
    bus = EventBus()
    seen: list[ev.Event] = []

    def broken(event: ev.Event) -> None:
        raise ValueError("boom")

    bus.subscribe(broken)
    bus.subscribe(seen.append)
    with pytest.warns(RuntimeWarning, match="failed on a TurnStarted event") as first:
        bus.publish(ev.TurnStarted(run_id="r", turn=1))
    assert len(first) == 1 and "ValueError: boom" in str(first[0].message)
    notices = [e for e in seen if isinstance(e, ev.Notice)]
    assert len(notices) == 1 and "failed on a TurnStarted event" in notices[0].message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not reported again
        for turn in (2, 3):
            bus.publish(ev.TurnStarted(run_id="r", turn=turn))
    assert [type(e).__name__ for e in seen].count("TurnStarted") == 3  # others still get it
    with pytest.warns(RuntimeWarning, match="missed 4 more event") as summary:
        bus.publish(ev.RunEnded(run_id="r", result=None))
    assert "Notice x1, RunEnded x1, TurnStarted x3" in str(summary[0].message)
    ((name, lost),) = bus.lost.items()
    assert "broken" in name and lost == {"TurnStarted": 3, "Notice": 1, "RunEnded": 1}
