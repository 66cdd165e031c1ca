"""Typed records of a trajectory: runs, turns, cells, sub-calls; grouping events into them.

:func:`build_trajectory` turns a flat event sequence into a :class:`Trajectory`. A
sub-call published between a cell's ``CodeStarted`` and ``CodeExecuted`` (same run)
belongs to that cell; a child run belongs to the sub-call whose id is its ``parent_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmagent import events as ev
from rlmagent.trace.jsonl import FORMAT, SCHEMA_VERSION, read_events
from rlmagent.types import Cell, Completion, ExecResult, ModelUsage, Step, SubCall, Usage

"""2: a ``SubCallEnded`` line leaves out the prompt its ``SubCallStarted`` line holds."""

# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class TraceBatch:
    """One ``llm_batch`` call. ``failures`` is None while it had not ended."""

    batch_id: str
    size: int
    started_at: float
    ended_at: float | None = None
    failures: int | None = None


@dataclass(frozen=True, slots=True)
class TraceCall:
    """One sub-call. While unfinished, ``call.answer`` is None and ``finished`` False.

    ``child_run_id`` names the child RLM run this call started (recursion), if any.
    """

    call: SubCall
    run_id: str
    finished: bool = True
    child_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class TraceTool:
    """One tool call made from the REPL."""

    name: str
    arguments: Mapping[str, Any]
    result: str | None
    error: str | None
    latency_s: float
    time: float


@dataclass(frozen=True, slots=True)
class TraceCell:
    """One code cell with its result (None while it ran) and what it called."""

    turn: int
    index: int
    code: str
    started_at: float
    ended_at: float | None = None
    result: ExecResult | None = None
    sub_calls: tuple[TraceCall, ...] = ()
    batches: tuple[TraceBatch, ...] = ()
    tools: tuple[TraceTool, ...] = ()

    @property
    def finished(self) -> bool:
        return self.result is not None


@dataclass(frozen=True, slots=True)
class TraceTurn:
    """One root turn: the model's reply (None while awaited), its cells, the observation."""

    turn: int
    started_at: float
    completion: Completion | None = None
    latency_s: float = 0.0
    cells: tuple[TraceCell, ...] = ()
    observation: str | None = None
    ended_at: float | None = None

    @property
    def reply(self) -> str:
        return self.completion.content if self.completion else ""


@dataclass(frozen=True, slots=True)
class TraceRun:
    """One (sub-)run: the root run, or a child RLM started by a sub-call."""

    run_id: str
    parent_id: str | None
    depth: int
    question: str
    model: str
    sub_model: str
    started_at: float
    context_info: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    turns: tuple[TraceTurn, ...] = ()
    ended_at: float | None = None
    answer: str | None = None
    usage: Usage | None = None
    error: str | None = None
    stop_reason: str | None = None
    """Why the run ended (:data:`rlmagent.types.STOP_REASONS`); None while it runs."""
    notices: tuple[str, ...] = ()
    loose_calls: tuple[TraceCall, ...] = ()
    """Sub-calls published outside any cell of this run."""

    @property
    def finished(self) -> bool:
        return self.ended_at is not None

    def sub_calls(self) -> Iterator[TraceCall]:
        """Every sub-call this run made directly (not those of its child runs)."""
        for turn in self.turns:
            for cell in turn.cells:
                yield from cell.sub_calls
        yield from self.loose_calls

    def steps(self) -> tuple[Step, ...]:
        """The run's turns as :class:`~rlmagent.types.Step` records (like AgentResult's)."""
        steps = []
        for turn in self.turns:
            completion = turn.completion or Completion(content="", model=self.model)
            cells = tuple(
                Cell(
                    code=c.code,
                    result=c.result or ExecResult(),
                    sub_calls=tuple(t.call for t in c.sub_calls),
                )
                for c in turn.cells
            )
            steps.append(
                Step(
                    turn=turn.turn,
                    reply=completion.content,
                    finish_reason=completion.finish_reason,
                    cells=cells,
                    observation=turn.observation or "",
                    usage=completion.usage,
                    latency_s=turn.latency_s,
                )
            )
        return tuple(steps)


@dataclass(frozen=True, slots=True)
class Trajectory:
    """A run read back from a JSONL trajectory (see :func:`load_trajectory`).

    ``runs`` are in the order they started; the root run is the first without a parent.
    ``truncated`` is True when the file ended mid-line (the writer was killed);
    ``skipped`` counts lines that could not be read.
    """

    runs: tuple[TraceRun, ...]
    header: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    truncated: bool = False
    skipped: int = 0
    events: int = 0

    @classmethod
    def load(cls, path: str | Path) -> Trajectory:
        """Read ``path`` (a file written by :class:`TraceWriter`, whole or cut short)."""
        return load_trajectory(path)

    @classmethod
    def from_events(cls, events: Iterable[ev.Event]) -> Trajectory:
        """Build a trajectory from events in memory (as a bus subscriber saw them)."""
        return build_trajectory(list(events))

    @property
    def schema(self) -> int:
        return int(self.header.get("schema", SCHEMA_VERSION))

    @property
    def root(self) -> TraceRun | None:
        return next((r for r in self.runs if r.parent_id is None), None)

    @property
    def answer(self) -> str | None:
        return self.root.answer if self.root else None

    @property
    def questions(self) -> tuple[TraceRun, ...]:
        """The root runs in the order they started: a session's questions (one for a
        plain run)."""
        return tuple(r for r in self.runs if r.parent_id is None)

    def questions_usage(self) -> Usage:
        """The usage of every question summed model by model: each one's reported usage,
        or, for one that did not end, what its own turns and sub-calls on file add up to."""
        models: dict[str, ModelUsage] = {}
        for run in self.questions:
            usage = run.usage
            if usage is None:
                usage = Trajectory(runs=(run,)).computed_usage()
            for name, part in usage.by_model.items():
                models[name] = models[name].merge(part) if name in models else part
        return Usage.from_models(models)

    @property
    def complete(self) -> bool:
        """True when the root run ended and nothing was cut."""
        return self.root is not None and self.root.finished and not self.truncated

    def run(self, run_id: str) -> TraceRun:
        for r in self.runs:
            if r.run_id == run_id:
                return r
        raise KeyError(run_id)

    def sub_calls(self) -> Iterator[TraceCall]:
        """Every sub-call of every run."""
        for r in self.runs:
            yield from r.sub_calls()

    @property
    def usage(self) -> Usage:
        """The root's reported usage when it ended; else a sum over what is on file."""
        root = self.root
        if root is not None and root.usage is not None:
            return root.usage
        return self.computed_usage()

    def computed_usage(self) -> Usage:
        """Usage summed from root completions and leaf sub-calls (calls that started a
        child run are counted through the child's own completions)."""
        by_model: dict[str, ModelUsage] = {}

        def add(model: str, completion: Completion) -> None:
            by_model[model] = by_model.get(model, ModelUsage()).add(completion)

        for r in self.runs:
            for turn in r.turns:
                if turn.completion is not None:
                    add(turn.completion.model or r.model, turn.completion)
            for t in r.sub_calls():
                if not t.finished or t.child_run_id is not None:
                    continue
                c = t.call
                add(
                    c.model,
                    Completion(
                        content=c.answer or "",
                        model=c.model,
                        usage=c.usage,
                        cost_usd=c.cost_usd,
                        cached=c.cached,
                    ),
                )
        return Usage.from_models(by_model)


class _RunBuilder:
    def __init__(self, run_id: str, parent_id: str | None, depth: int, time_: float) -> None:
        self.info: dict[str, Any] = {
            "run_id": run_id,
            "parent_id": parent_id,
            "depth": depth,
            "question": "",
            "model": "",
            "sub_model": "",
            "started_at": time_,
        }
        self.turns: list[dict[str, Any]] = []
        self.open_cell: dict[str, Any] | None = None
        self.notices: list[str] = []
        self.loose: list[str] = []

    def turn(self, number: int, time_: float) -> dict[str, Any]:
        if not self.turns or self.turns[-1]["turn"] != number:
            self.turns.append({"turn": number, "started_at": time_, "cells": []})
        return self.turns[-1]


def _cell_record(event: ev.CodeStarted | ev.CodeExecuted) -> dict[str, Any]:
    return {
        "turn": event.turn,
        "index": event.cell,
        "code": event.code,
        "started_at": event.time,
        "calls": [],
        "batches": {},
        "tools": [],
    }


def build_trajectory(
    events: list[ev.Event],
    *,
    header: Mapping[str, Any] | None = None,
    path: str | None = None,
    truncated: bool = False,
    skipped: int = 0,
) -> Trajectory:
    """Group a flat event sequence into runs, turns, cells and sub-calls.

    Sub-calls published between a cell's CodeStarted and CodeExecuted (same run) belong
    to that cell; a child run belongs to the sub-call whose id is its ``parent_id``.
    """
    runs: dict[str, _RunBuilder] = {}
    calls: dict[str, dict[str, Any]] = {}  # call_id -> {"call", "run_id", "finished", "child"}

    def run_of(e: ev.Event) -> _RunBuilder:
        if e.run_id not in runs:
            runs[e.run_id] = _RunBuilder(e.run_id, e.parent_id, e.depth, e.time)
        return runs[e.run_id]

    def attach(e: ev.Event, call_id: str) -> None:
        r = run_of(e)
        if r.open_cell is not None:
            r.open_cell["calls"].append(call_id)
        else:
            r.loose.append(call_id)

    for e in events:
        r = run_of(e)
        if isinstance(e, ev.RunStarted):
            r.info.update(
                question=e.question,
                model=e.model,
                sub_model=e.sub_model,
                context_info=dict(e.context_info),
                settings=dict(e.settings),
                started_at=e.time,
            )
            if e.parent_id in calls:
                calls[e.parent_id]["child"] = e.run_id
        elif isinstance(e, ev.RunEnded):
            r.info.update(ended_at=e.time, error=e.error)
            if e.result is not None:
                r.info.update(answer=e.result.content, usage=e.result.usage)
                r.info.update(stop_reason=e.result.stop_reason)
        elif isinstance(e, ev.TurnStarted):
            r.turn(e.turn, e.time)
        elif isinstance(e, ev.RootCompletion):
            r.turn(e.turn, e.time).update(completion=e.completion, latency_s=e.latency_s)
        elif isinstance(e, ev.TurnEnded):
            r.turn(e.turn, e.time).update(observation=e.observation, ended_at=e.time)
        elif isinstance(e, ev.CodeStarted):
            r.open_cell = _cell_record(e)
            r.turn(e.turn, e.time)["cells"].append(r.open_cell)
        elif isinstance(e, ev.CodeExecuted):
            cell = r.open_cell
            if cell is None or (cell["turn"], cell["index"]) != (e.turn, e.cell):
                cell = _cell_record(e)
                cell["started_at"] = e.time - e.result.duration_s
                r.turn(e.turn, e.time)["cells"].append(cell)
            cell.update(result=e.result, ended_at=e.time, code=e.code)
            r.open_cell = None
        elif isinstance(e, ev.SubCallStarted):
            calls[e.call_id] = {
                "call": SubCall(
                    call_id=e.call_id,
                    prompt=e.prompt,
                    prompt_chars=e.prompt_chars,
                    answer=None,
                    model=e.model,
                    depth=e.depth + 1,
                    started_at=e.time,
                    batch_id=e.batch_id,
                ),
                "run_id": e.run_id,
                "finished": False,
                "child": None,
            }
            attach(e, e.call_id)
        elif isinstance(e, ev.SubCallEnded):
            record = calls.get(e.call.call_id)
            if record is None:
                record = calls[e.call.call_id] = {"run_id": e.run_id, "child": None}
                attach(e, e.call.call_id)
            record.update(call=e.call, finished=True)
        elif isinstance(e, ev.BatchStarted | ev.BatchEnded):
            holder = r.open_cell["batches"] if r.open_cell is not None else {}
            batch = holder.setdefault(
                e.batch_id, {"batch_id": e.batch_id, "size": e.size, "started_at": e.time}
            )
            if isinstance(e, ev.BatchEnded):
                batch.update(ended_at=e.time, failures=e.failures)
        elif isinstance(e, ev.ToolCalled) and r.open_cell is not None:
            r.open_cell["tools"].append(
                TraceTool(e.name, dict(e.arguments), e.result, e.error, e.latency_s, e.time)
            )
        elif isinstance(e, ev.Notice):
            r.notices.append(e.message)

    def freeze_call(call_id: str) -> TraceCall:
        c = calls[call_id]
        return TraceCall(
            call=c["call"], run_id=c["run_id"], finished=c["finished"], child_run_id=c["child"]
        )

    def freeze_cell(c: dict[str, Any]) -> TraceCell:
        return TraceCell(
            turn=c["turn"],
            index=c["index"],
            code=c["code"],
            started_at=c["started_at"],
            ended_at=c.get("ended_at"),
            result=c.get("result"),
            sub_calls=tuple(freeze_call(i) for i in c["calls"]),
            batches=tuple(TraceBatch(**b) for b in c["batches"].values()),
            tools=tuple(c["tools"]),
        )

    frozen = []
    for r in runs.values():
        turns = tuple(
            TraceTurn(
                turn=t["turn"],
                started_at=t["started_at"],
                completion=t.get("completion"),
                latency_s=t.get("latency_s", 0.0),
                cells=tuple(freeze_cell(c) for c in t["cells"]),
                observation=t.get("observation"),
                ended_at=t.get("ended_at"),
            )
            for t in r.turns
        )
        frozen.append(
            TraceRun(
                **r.info,
                turns=turns,
                notices=tuple(r.notices),
                loose_calls=tuple(freeze_call(i) for i in r.loose),
            )
        )
    return Trajectory(
        runs=tuple(frozen),
        header=dict(header or {"schema": SCHEMA_VERSION, "format": FORMAT}),
        path=path,
        truncated=truncated,
        skipped=skipped,
        events=len(events),
    )


def load_trajectory(path: str | Path) -> Trajectory:
    """Read a trajectory file (complete or cut short) into a :class:`Trajectory`."""
    header, events, truncated, skipped = read_events(path)
    return build_trajectory(
        events, header=header, path=str(path), truncated=truncated, skipped=skipped
    )
