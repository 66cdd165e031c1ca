"""TraceWriter and Trajectory.load: format, round trip, secrets, partial files."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import synth

from rlmagent import events as ev
from rlmagent.errors import UsageError
from rlmagent.trace import (
    REDACTED,
    SCHEMA_VERSION,
    TraceWriter,
    Trajectory,
    event_to_dict,
    iter_events,
)


def write(path: Path, events: list[ev.Event]) -> Path:
    with TraceWriter(path) as writer:
        for e in events:
            writer(e)
    return path


def test_header_then_one_json_object_per_event(tmp_path: Path) -> None:
    events = synth.small_run()
    path = write(tmp_path / "t.jsonl", events)
    lines = path.read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header["type"] == "header"
    assert header["format"] == "rlmagent.trajectory"
    assert header["schema"] == SCHEMA_VERSION
    body = [json.loads(line) for line in lines[1:]]
    assert [d["type"] for d in body] == [type(e).__name__ for e in events]
    assert all(d["run_id"] in ("run-root", "run-child") for d in body)


def test_round_trip_gives_back_equal_events(tmp_path: Path) -> None:
    events = synth.small_run()
    back = list(iter_events(write(tmp_path / "t.jsonl", events)))
    assert len(back) == len(events)
    for original, read in zip(events, back, strict=True):
        if isinstance(original, ev.RunStarted) and "api_key" in original.context_info:
            expected = dataclasses.replace(
                original, context_info={**original.context_info, "api_key": REDACTED}
            )
        elif isinstance(original, ev.RunEnded) and original.result is not None:
            # the result's trajectory is not written: the events already hold it
            result = dataclasses.replace(original.result, trajectory=())
            expected = dataclasses.replace(original, result=result)
        else:
            expected = original
        assert read == expected, type(original).__name__


def test_each_sub_call_prompt_is_written_once(tmp_path: Path) -> None:
    events = synth.small_run()
    lines = write(tmp_path / "t.jsonl", events).read_text(encoding="utf-8").splitlines()
    ended = [d for d in map(json.loads, lines[1:]) if d["type"] == "SubCallEnded"]
    assert len(ended) == 4 and all("prompt" not in d["call"] for d in ended)
    prompts = {e.call.call_id: e.call.prompt for e in events if isinstance(e, ev.SubCallEnded)}
    read = {
        e.call.call_id: e.call.prompt
        for e in iter_events(tmp_path / "t.jsonl")
        if isinstance(e, ev.SubCallEnded)
    }
    assert read == prompts and prompts["c3"] == "Sum 10 and 11"


def test_an_end_without_its_start_on_file_keeps_its_prompt(tmp_path: Path) -> None:
    (end,) = [e for e in synth.small_run() if isinstance(e, ev.SubCallEnded)][-1:]
    path = write(tmp_path / "t.jsonl", [end])
    assert json.loads(path.read_text().splitlines()[1])["call"]["prompt"] == "Sum 10 and 11"
    (back,) = iter_events(path)
    assert back == end


def test_schema_1_files_still_load(tmp_path: Path) -> None:
    """Schema 1 wrote every sub-call's prompt on both its lines."""
    events = synth.small_run()
    header = {"type": "header", "format": "rlmagent.trajectory", "schema": 1}
    lines = [header, *(event_to_dict(e) for e in events)]
    path = tmp_path / "old.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in lines), encoding="utf-8")
    traj = Trajectory.load(path)
    assert traj.schema == 1 and traj.complete and traj.skipped == 0
    assert {t.call.call_id: t.call.prompt for t in traj.sub_calls()} == {
        e.call.call_id: e.call.prompt for e in events if isinstance(e, ev.SubCallEnded)
    }


def test_secret_looking_keys_are_never_written(tmp_path: Path) -> None:
    event = ev.RunStarted(
        run_id="r",
        question="q",
        context_info={"api_key": "sk-AAAA"},
        model="m",
        sub_model="m",
        settings={
            "engine": {"OPENAI_API_KEY": "sk-BBBB", "headers": {"Authorization": "Bearer CCCC"}},
            "client_secret": "DDDD",
            "max_tokens": 100,
            "prompt_tokens": 7,
        },
    )
    path = write(tmp_path / "t.jsonl", [event])
    text = path.read_text(encoding="utf-8")
    for secret in ("sk-AAAA", "sk-BBBB", "CCCC", "DDDD"):
        assert secret not in text
    settings = json.loads(text.splitlines()[1])["settings"]
    assert settings["max_tokens"] == 100 and settings["prompt_tokens"] == 7
    assert settings["engine"]["OPENAI_API_KEY"] == REDACTED
    assert settings["engine"]["headers"]["Authorization"] == REDACTED


def test_each_event_is_on_disk_before_the_next(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    writer = TraceWriter(path)
    for n, e in enumerate(synth.small_run(), start=1):
        writer(e)
        # read through a separate handle while the writer is still open
        assert len(path.read_bytes().splitlines()) == n + 1
    writer.close()
    writer.close()  # twice is fine
    writer(synth.small_run()[0])  # dropped after close
    assert len(path.read_bytes().splitlines()) == len(synth.small_run()) + 1


def test_concurrent_publishers_write_whole_lines(tmp_path: Path) -> None:
    bus = ev.EventBus()
    writer = TraceWriter(tmp_path / "t.jsonl")
    bus.subscribe(writer)
    long_prompt = "p" * 20_000  # long lines make interleaving likely without the lock

    def publish(k: int) -> None:
        for i in range(200):
            bus.publish(
                ev.SubCallStarted(run_id="r", call_id=f"{k}-{i}", prompt=long_prompt, model="m")
            )

    threads = [threading.Thread(target=publish, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    lines = (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()
    ids = {json.loads(line)["call_id"] for line in lines[1:]}
    assert len(lines) == 1 + 6 * 200
    assert len(ids) == 6 * 200


def test_load_groups_a_complete_run(tmp_path: Path) -> None:
    traj = Trajectory.load(write(tmp_path / "t.jsonl", synth.small_run()))
    assert traj.complete and not traj.truncated and traj.skipped == 0
    assert traj.schema == SCHEMA_VERSION
    assert [r.run_id for r in traj.runs] == ["run-root", "run-child"]
    root = traj.root
    assert root is not None and root.question.startswith("How many lines")
    assert root.context_info["api_key"] == REDACTED
    assert traj.answer == "21"
    assert root.notices == ("sandbox: subprocess without bubblewrap",)
    assert [t.turn for t in root.turns] == [1, 2]
    turn1, turn2 = root.turns
    assert turn1.reply.startswith("Let me look")
    assert turn1.completion is not None and turn1.completion.usage.prompt_tokens == 900
    assert [c.index for c in turn1.cells] == [1, 2]
    batch_cell, error_cell = turn1.cells
    assert [t.call.call_id for t in batch_cell.sub_calls] == ["c0", "c1", "c2"]
    assert [t.call.answer for t in batch_cell.sub_calls] == ["10", "11", None]
    assert batch_cell.sub_calls[2].call.error == "EngineError: HTTP 500"
    assert all(t.finished for t in batch_cell.sub_calls)
    (batch,) = batch_cell.batches
    assert (batch.batch_id, batch.size, batch.failures) == ("b1", 3, 1)
    assert error_cell.sub_calls == ()
    assert error_cell.result is not None and "ZeroDivisionError" in (error_cell.result.error or "")
    (call,) = turn2.cells[0].sub_calls
    assert call.child_run_id == "run-child"
    child = traj.run("run-child")
    assert (child.parent_id, child.depth, child.answer) == ("c3", 1, "21")
    # usage: the root's report when it ended; the computed sum counts the same calls
    assert traj.usage.calls == 6 and traj.usage.total_tokens == 2130
    computed = traj.computed_usage()
    assert computed.calls == 2 + 1 + 3  # root turns, child turn, leaf sub-calls
    assert computed.by_model["root-model"].prompt_tokens == 1900


def test_steps_rebuild_what_the_agent_reports(tmp_path: Path) -> None:
    traj = Trajectory.load(write(tmp_path / "t.jsonl", synth.small_run()))
    assert traj.root is not None
    steps = traj.root.steps()
    assert [s.turn for s in steps] == [1, 2]
    assert steps[0].cells[0].result.output == "['10', '11', None]\n"
    assert [c.call_id for c in steps[0].cells[0].sub_calls] == ["c0", "c1", "c2"]
    assert steps[1].cells[0].result.final == "21"
    assert steps[0].observation.startswith("['10'")


def test_from_events_matches_load(tmp_path: Path) -> None:
    events = synth.small_run()
    loaded = Trajectory.load(write(tmp_path / "t.jsonl", events))
    in_memory = Trajectory.from_events(events)
    assert len(in_memory.runs) == len(loaded.runs)
    assert in_memory.root is not None and loaded.root is not None
    assert in_memory.root.steps() == loaded.root.steps()
    assert in_memory.events == loaded.events == len(events)


def test_every_cut_of_the_file_loads(tmp_path: Path) -> None:
    full = write(tmp_path / "t.jsonl", synth.small_run()).read_bytes()
    newline_offsets = [i + 1 for i, b in enumerate(full) if b == ord("\n")]
    header_end = newline_offsets[0]
    cut = tmp_path / "cut.jsonl"
    for size in range(header_end, len(full) + 1, 7):
        cut.write_bytes(full[:size])
        traj = Trajectory.load(cut)
        complete_lines = sum(1 for off in newline_offsets if off <= size)
        mid_line = size not in newline_offsets
        # a cut inside a line drops that line, unless it happens to be valid JSON already
        assert traj.events in (complete_lines - 1, complete_lines)
        if traj.events == complete_lines - 1:
            assert traj.truncated == mid_line
        assert traj.skipped == 0
        # only the last line's own newline may be missing from a complete file
        assert traj.complete == (size >= len(full) - 1)


def test_a_partial_run_shows_what_was_under_way(tmp_path: Path) -> None:
    events = synth.small_run()
    # stop just after the three sub-calls of the batch started
    stop = next(
        i for i, e in enumerate(events) if isinstance(e, ev.SubCallStarted) and e.call_id == "c2"
    )
    traj = Trajectory.load(write(tmp_path / "t.jsonl", events[: stop + 1]))
    root = traj.root
    assert root is not None and not root.finished and not traj.complete
    (cell,) = root.turns[0].cells
    assert not cell.finished and cell.result is None
    assert [t.finished for t in cell.sub_calls] == [False, False, False]
    assert cell.sub_calls[0].call.prompt.startswith("Count errors: chunk 0")
    assert cell.batches[0].failures is None
    assert traj.answer is None
    assert traj.usage.calls == 1  # only the first root completion is known


def test_a_writer_killed_midway_leaves_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "killed.jsonl"
    script = f"""
import sys, time
from rlmagent import events as ev
from rlmagent.trace import TraceWriter
bus = ev.EventBus()
bus.subscribe(TraceWriter({str(path)!r}))
bus.publish(ev.RunStarted(run_id="r", question="q", context_info={{}}, model="m",
                          sub_model="m", settings={{}}))
for i in range(100000):
    bus.publish(ev.SubCallStarted(run_id="r", call_id=str(i), prompt="x" * 5000, model="m"))
    print(i, flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 300:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    traj = Trajectory.load(path)
    root = traj.root
    assert root is not None and not root.finished
    calls = list(root.sub_calls())
    assert len(calls) >= 300
    assert [t.call.call_id for t in calls] == [str(i) for i in range(len(calls))]


def test_malformed_middle_line_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", synth.small_run())
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(3, "{not json\n")
    lines.insert(4, json.dumps({"type": "NoSuchEvent", "run_id": "x"}) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    traj = Trajectory.load(path)
    assert traj.skipped == 2 and traj.complete and traj.answer == "21"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty or no header"),
        ('{"hello": 1}\n', "no header line"),
        ("plain text\n", "empty or no header"),
        (
            json.dumps({"type": "header", "format": "rlmagent.trajectory", "schema": 99}) + "\n",
            "schema 99",
        ),
    ],
)
def test_files_that_are_not_trajectories_are_named(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message) as info:
        Trajectory.load(path)
    assert str(path) in str(info.value)


def test_values_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    event = ev.Notice(run_id="r", message="m")
    data = event_to_dict(event)
    assert data["type"] == "Notice" and data["message"] == "m"
    odd = ev.RunStarted(
        run_id="r",
        question="q",
        context_info={"path": Path("/x/y"), "kinds": {"b", "a"}, "obj": object},
        model="m",
        sub_model="m",
        settings={},
    )
    traj = Trajectory.load(write(tmp_path / "t.jsonl", [odd]))
    assert traj.root is not None
    info = traj.root.context_info
    assert info["path"] == "/x/y" and info["kinds"] == ["a", "b"]
    assert "object" in info["obj"]
