"""The data the viewer page renders: a :class:`~rlmagent.trace.Trajectory` as plain JSON.

The page does no grouping of its own: runs hold turns, turns hold cells, cells hold
indices into one flat ``calls`` list (the timeline draws that list). Usage is summed
here, per turn (the root completion plus every sub-call its cells made, child runs
included) and in total. Texts are kept whole; the page shortens them for display.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rlmagent.trace import TraceCall, TraceRun, Trajectory
from rlmagent.types import Usage, add_costs, to_dict

PAYLOAD_VERSION = 1


class _Acc:
    """Calls, tokens and cost; cost becomes unknown (None) once any part is unknown."""

    def __init__(self) -> None:
        self.calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost: float | None = 0.0

    def add(self, prompt: int, completion: int, cost: float | None, calls: int = 1) -> None:
        self.calls += calls
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost = add_costs(self.cost, cost)

    def merge(self, other: _Acc) -> None:
        self.add(other.prompt_tokens, other.completion_tokens, other.cost, other.calls)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost,
        }


def _usage_json(usage: Usage) -> dict[str, Any]:
    data = to_dict(usage)
    data["by_model"] = {k: to_dict(v) for k, v in usage.by_model.items()}
    return data


class _Builder:
    def __init__(self, traj: Trajectory) -> None:
        self.traj = traj
        self.calls: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        self.runs = {r.run_id: r for r in traj.runs}
        self._run_usage: dict[str, _Acc] = {}

    def call(self, t: TraceCall) -> int:
        c = t.call
        if c.call_id in self.index:
            return self.index[c.call_id]
        self.index[c.call_id] = len(self.calls)
        self.calls.append(
            {
                "id": c.call_id,
                "run": t.run_id,
                "prompt": c.prompt,
                "answer": c.answer,
                "model": c.model,
                "depth": c.depth,
                "pt": c.usage.prompt_tokens,
                "ct": c.usage.completion_tokens,
                "cost": c.cost_usd,
                "start": c.started_at,
                "latency": c.latency_s,
                "error": c.error,
                "cached": c.cached,
                "batch": c.batch_id,
                "done": t.finished,
                "child": t.child_run_id,
            }
        )
        return self.index[c.call_id]

    def call_usage(self, t: TraceCall) -> _Acc:
        acc = _Acc()
        if t.child_run_id is not None and t.child_run_id in self.runs:
            acc.merge(self.run_usage(self.runs[t.child_run_id]))
        elif t.finished:
            acc.add(t.call.usage.prompt_tokens, t.call.usage.completion_tokens, t.call.cost_usd)
        return acc

    def run_usage(self, run: TraceRun) -> _Acc:
        if run.run_id not in self._run_usage:
            acc = _Acc()
            for turn in run.turns:
                if turn.completion is not None:
                    u = turn.completion.usage
                    acc.add(u.prompt_tokens, u.completion_tokens, turn.completion.cost_usd)
            for t in run.sub_calls():
                acc.merge(self.call_usage(t))
            self._run_usage[run.run_id] = acc
        return self._run_usage[run.run_id]

    def run(self, run: TraceRun) -> dict[str, Any]:
        turns = []
        for turn in run.turns:
            usage = _Acc()
            completion = turn.completion
            if completion is not None:
                u = completion.usage
                usage.add(u.prompt_tokens, u.completion_tokens, completion.cost_usd)
            cells = []
            for cell in turn.cells:
                for t in cell.sub_calls:
                    usage.merge(self.call_usage(t))
                r = cell.result
                cells.append(
                    {
                        "index": cell.index,
                        "code": cell.code,
                        "start": cell.started_at,
                        "end": cell.ended_at,
                        "done": cell.finished,
                        "output": r.output if r else "",
                        "stderr": r.stderr if r else "",
                        "error": r.error if r else None,
                        "final": r.final if r else None,
                        "duration": r.duration_s if r else None,
                        "timed_out": r.timed_out if r else False,
                        "state_lost": r.state_lost if r else False,
                        "calls": [self.call(t) for t in cell.sub_calls],
                        "batches": [to_dict(b) for b in cell.batches],
                        "tools": [to_dict(x) for x in cell.tools],
                    }
                )
            turns.append(
                {
                    "turn": turn.turn,
                    "start": turn.started_at,
                    "end": turn.ended_at,
                    "reply": turn.reply,
                    "answered": completion is not None,
                    "finish_reason": completion.finish_reason if completion else None,
                    "model": completion.model if completion else run.model,
                    "pt": completion.usage.prompt_tokens if completion else 0,
                    "ct": completion.usage.completion_tokens if completion else 0,
                    "cost": completion.cost_usd if completion else None,
                    "latency": turn.latency_s,
                    "observation": turn.observation,
                    "cells": cells,
                    "usage": usage.to_json(),
                }
            )
        return {
            "id": run.run_id,
            "parent": run.parent_id,
            "depth": run.depth,
            "question": run.question,
            "model": run.model,
            "sub_model": run.sub_model,
            "context": dict(run.context_info),
            "settings": dict(run.settings),
            "start": run.started_at,
            "end": run.ended_at,
            "answer": run.answer,
            "error": run.error,
            "stop_reason": run.stop_reason,
            "notices": list(run.notices),
            "finished": run.finished,
            "usage": _usage_json(run.usage) if run.usage is not None else None,
            "computed_usage": self.run_usage(run).to_json(),
            "turns": turns,
            "loose": [self.call(t) for t in run.loose_calls],
        }


def build_payload(traj: Trajectory, *, title: str | None = None) -> dict[str, Any]:
    """Everything the page needs, JSON-able."""
    builder = _Builder(traj)
    runs = [builder.run(r) for r in traj.runs]
    starts = [r.started_at for r in traj.runs] + [c["start"] for c in builder.calls if c["start"]]
    ends = [r.ended_at for r in traj.runs if r.ended_at is not None]
    ends += [c["start"] + c["latency"] for c in builder.calls if c["start"]]
    for run in runs:
        for turn in run["turns"]:
            ends += [t for t in (turn["start"], turn["end"]) if t is not None]
            ends += [c["end"] for c in turn["cells"] if c["end"] is not None]
    root = traj.root
    header: Mapping[str, Any] = traj.header
    # a session's file holds one root run per question, in the order they were asked
    questions = list(traj.questions)
    session = len(questions) > 1
    default_title = root.question if root else "rlmagent run"
    if session:
        default_title = f"Session: {len(questions)} questions"
    return {
        "version": PAYLOAD_VERSION,
        "title": title or default_title,
        "questions": [r.run_id for r in questions],
        "generated": time.time(),
        "source": traj.path,
        "schema": traj.schema,
        "writer": header.get("rlmagent"),
        "complete": traj.complete and (not session or all(r.finished for r in questions)),
        "truncated": traj.truncated,
        "skipped": traj.skipped,
        "events": traj.events,
        "t0": min(starts) if starts else 0.0,
        "t1": max(ends) if ends else 0.0,
        "root": root.run_id if root else None,
        "usage": _usage_json(traj.questions_usage() if session else traj.usage),
        "runs": runs,
        "calls": builder.calls,
    }
