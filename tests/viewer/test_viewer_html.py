"""The generated page without a browser: self-contained, safe embedding, the payload."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import synth  # tests/trace/synth.py, loaded by this directory's conftest

from rlmagent import events as ev
from rlmagent.errors import UsageError
from rlmagent.trace import Trajectory
from rlmagent.types import ExecResult, SubCall
from rlmagent.viewer import build_payload, embed_json, render_html, write_html


def page_data(page: str) -> dict:
    match = re.search(
        r'<script type="application/json" id="rlm-data">(.*?)</script>', page, re.DOTALL
    )
    assert match is not None
    return json.loads(match.group(1))


def hostile_run() -> list[ev.Event]:
    """A run whose texts try to break out of the page."""
    nasty = "</script><script>window.pwned=1</script><!-- {{js}} & \u2028 \u2029 </SCRIPT>"
    call = SubCall(call_id="c", prompt=nasty, answer=nasty, model="m", depth=1)
    return [
        ev.RunStarted(
            run_id="r", question=nasty, context_info={}, model="m", sub_model="m", settings={}
        ),
        ev.TurnStarted(run_id="r", turn=1),
        ev.CodeStarted(run_id="r", turn=1, cell=1, code=nasty),
        ev.SubCallStarted(run_id="r", call_id="c", prompt=nasty, model="m"),
        ev.SubCallEnded(run_id="r", call=call),
        ev.CodeExecuted(run_id="r", turn=1, cell=1, code=nasty, result=ExecResult(output=nasty)),
    ]


def test_texts_cannot_escape_the_data_script(write_trace: Callable[..., Path]) -> None:
    page = render_html(Trajectory.load(write_trace(hostile_run())))
    # exactly the page's own two scripts close, and no text turns into markup
    assert page.count("</script>") == 2
    assert "<script>window.pwned" not in page
    assert "<!--" not in page
    assert "</SCRIPT>" not in page
    data = page_data(page)
    nasty = hostile_run()[0].question  # type: ignore[attr-defined]
    assert data["runs"][0]["question"] == nasty
    assert data["calls"][0]["prompt"] == nasty
    assert data["runs"][0]["turns"][0]["cells"][0]["output"] == nasty
    assert "<title>RLM · &lt;/script&gt;" in page


def test_embed_json_round_trips() -> None:
    value = {"a": "<b>&</b>", "n": [1, 2.5, None, True], "u": "\u2028é"}
    assert json.loads(embed_json(value)) == value
    assert not set("<>&") & set(embed_json(value))


def test_the_page_fetches_nothing(write_trace: Callable[..., Path]) -> None:
    page = render_html(Trajectory.load(write_trace(synth.small_run())))
    head, _, rest = page.partition('id="rlm-data">')
    code = head + rest.split("</script>", 1)[1]  # the page without its data
    assert "default-src 'none'" in head  # the browser itself refuses any request
    for needle in ("http://", "https://", "//cdn", "@import", "url(", " src=", " href="):
        assert needle not in code, needle


def test_payload_groups_and_sums(write_trace: Callable[..., Path]) -> None:
    traj = Trajectory.load(write_trace(synth.small_run()))
    data = build_payload(traj)
    assert data["complete"] is True and data["root"] == "run-root"
    assert [c["id"] for c in data["calls"]] == ["c0", "c1", "c2", "c3"]
    root, child = data["runs"]
    turn1, turn2 = root["turns"]
    assert [c["index"] for c in turn1["cells"]] == [1, 2]
    assert turn1["cells"][0]["calls"] == [0, 1, 2]
    assert turn1["cells"][1]["error"].endswith("division by zero")
    # turn 1: its reply (900 + 80) and three leaf sub-calls
    sub_tokens = sum(c["pt"] + c["ct"] for c in data["calls"][:3])
    assert turn1["usage"]["calls"] == 4
    assert turn1["usage"]["prompt_tokens"] + turn1["usage"]["completion_tokens"] == (
        980 + sub_tokens
    )
    # turn 2: its reply and the child run behind call c3 (counted once, through the child)
    assert data["calls"][3]["child"] == "run-child"
    assert turn2["usage"]["calls"] == 2
    assert turn2["usage"]["prompt_tokens"] == 1000 + 50
    assert child["parent"] == "c3" and child["answer"] == "21"
    assert data["usage"]["calls"] == 6 and data["t1"] >= data["t0"] + 4.5


def test_write_html_beside_the_trace_or_where_asked(
    write_trace: Callable[..., Path], tmp_path: Path
) -> None:
    trace = write_trace(synth.small_run())
    assert write_html(trace) == trace.with_suffix(".html")
    out = write_html(trace, tmp_path / "sub" / "page.html", title="My run")
    assert "<title>RLM · My run</title>" in out.read_text(encoding="utf-8")
    in_memory = Trajectory.from_events(synth.small_run())
    with pytest.raises(UsageError, match="needs `out`"):
        write_html(in_memory)
    assert (
        page_data(write_html(in_memory, tmp_path / "m.html").read_text("utf-8"))["source"] is None
    )


def test_a_partial_trace_renders(write_trace: Callable[..., Path]) -> None:
    events = synth.small_run()[:10]  # one of the batch's three sub-calls has ended
    data = page_data(render_html(Trajectory.load(write_trace(events))))
    assert data["complete"] is False
    assert [c["done"] for c in data["calls"]] == [False, True, False]
    assert data["runs"][0]["answer"] is None


def ended(stop_reason: str, error: str | None = None) -> list[ev.Event]:
    from rlmagent.types import AgentResult, Usage

    result = AgentResult(content="7", turns=3, usage=Usage(), stop_reason=stop_reason)
    end = ev.RunEnded(run_id="run-root", result=result, error=error)
    return [*synth.small_run(finish=False), end]


@pytest.mark.parametrize("stop_reason", ["final", "max_turns", "stalled", "budget", "cancelled"])
def test_the_payload_says_how_the_run_ended(
    stop_reason: str, write_trace: Callable[..., Path]
) -> None:
    error = "CancelledError: the run was cancelled" if stop_reason == "cancelled" else None
    data = build_payload(Trajectory.load(write_trace(ended(stop_reason, error))))
    root = next(r for r in data["runs"] if r["id"] == data["root"])
    assert root["stop_reason"] == stop_reason and data["complete"] is True
