"""JSONL trajectories: write a run as it happens, read it back, keep a log of runs.

A trajectory file holds one JSON object a line. The first line is a header::

    {"type": "header", "format": "rlmagent.trajectory", "schema": 1, "created": ...}

and every further line is one event of :mod:`rlmagent.events`, serialised with
:func:`rlmagent.types.to_dict` plus its class name in ``"type"``. :class:`TraceWriter`
is a bus subscriber that writes and flushes one line per event, so a run killed midway
leaves a valid file up to the kill; :meth:`Trajectory.load` reads whole or partial files
back into typed records (runs, turns, cells, sub-calls, final answer, usage).

Two deliberate departures from the raw events keep files small and safe:

* ``RunEnded.result.trajectory`` is not written (it repeats every step and sub-call
  already on file); :meth:`TraceRun.steps` rebuilds it from the events.
* Any mapping key that looks like a secret (``api_key``, ``authorization``, ...) has its
  value replaced by ``"[redacted]"``. The agent never puts keys in events; this is a
  second line of defence.

The run log keeps one trajectory per run in the user's data directory
(:func:`runs_dir`, :func:`new_run_path`, :func:`list_runs`, :func:`latest_run`,
:func:`run_at`; :func:`link_run` for a run written elsewhere).
"""

from __future__ import annotations

from rlmagent.trace.jsonl import (
    REDACTED,
    TraceWriter,
    decode,
    event_from_dict,
    event_to_dict,
    iter_events,
)
from rlmagent.trace.model import (
    FORMAT,
    SCHEMA_VERSION,
    TraceBatch,
    TraceCall,
    TraceCell,
    TraceRun,
    TraceTool,
    TraceTurn,
    Trajectory,
    build_trajectory,
    load_trajectory,
)
from rlmagent.trace.runlog import (
    RunSummary,
    discard_if_unused,
    latest_run,
    link_run,
    list_runs,
    new_run_path,
    run_at,
    runs_dir,
    status_of,
    summarize_run,
)

__all__ = [
    "FORMAT",
    "REDACTED",
    "SCHEMA_VERSION",
    "RunSummary",
    "TraceBatch",
    "TraceCall",
    "TraceCell",
    "TraceRun",
    "TraceTool",
    "TraceTurn",
    "TraceWriter",
    "Trajectory",
    "build_trajectory",
    "decode",
    "discard_if_unused",
    "event_from_dict",
    "event_to_dict",
    "iter_events",
    "latest_run",
    "link_run",
    "list_runs",
    "load_trajectory",
    "new_run_path",
    "run_at",
    "runs_dir",
    "status_of",
    "summarize_run",
]
