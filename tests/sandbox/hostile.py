"""Pieces of the issue-15 tests (the host survives any worker): a whole agent run whose
cells are the attack, on a given tier, and the host's memory around it."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from rlmagent import FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.sandbox import SubprocessSandbox
from rlmagent.types import AgentResult, ExecResult

MB = 1024**2

FIND_HOST = (
    "host = next(c.cell_contents for c in llm_query.__closure__\n"
    "            if hasattr(c.cell_contents, 'call_host')).call_host\n"
)
"""Model code that digs the worker's raw ``call_host`` out of a stub (no checks of ours)."""

PIPES = """
import fcntl, os, select, stat
def _pipes(mode):
    return [fd for fd in range(3, 256) if _mode(fd) == mode]
def _mode(fd):
    try:
        kind = os.fstat(fd).st_mode
    except OSError:
        return None
    if stat.S_ISFIFO(kind):
        return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    if stat.S_ISSOCK(kind):  # a channel socket: the sending end's peer does not send
        poll = select.poll()
        poll.register(fd, select.POLLRDHUP)
        return os.O_WRONLY if poll.poll(0) else os.O_RDONLY
    return None
def send_raw(frame):
    for fd in _pipes(os.O_WRONLY):
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]
def read_raw():
    fd = _pipes(os.O_RDONLY)[0]
    def exact(n):
        data = b""
        while len(data) < n:
            data += os.read(fd, n - len(data))
        return data
    return exact(int.from_bytes(exact(4), "big"))
"""
"""Model code writing raw frames to the channel (its pipes are the worker's own fds)."""


def run_cells(
    tier: str,
    *cells: str,
    sub: Any = None,
    **options: Any,
) -> AgentResult:
    """One agent run on ``tier`` whose root writes ``cells`` in turn, then FINAL('done')."""
    final = "```repl\nFINAL('done')\n```"
    root = ScriptedEngine([*(f"```repl\n{cell}\n```" for cell in cells), final, final])
    agent = RLMAgent(
        root,
        "m",
        sub_engine=sub or FunctionEngine(lambda messages, model: "ok"),
        sandbox=SubprocessSandbox(isolation=tier),
        max_turns=len(cells) + 2,
        check_answers=False,
        **options,
    )
    return agent.run("q", context="the context")


def cell(result: AgentResult, turn: int = 0) -> ExecResult:
    return result.trajectory[turn].cells[0].result


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def memory_growth(fn: Callable[[], Any]) -> tuple[Any, int | None, int | None]:
    """``fn()``, the host's peak RSS growth during it and the RSS it kept after it (bytes;
    None where the peak cannot be reset: no ``/proc/self/clear_refs``)."""
    before = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return fn(), None, None
    value = fn()
    return value, _status("VmHWM") - before, _status("VmRSS") - before


def retained_bytes(value: Any, seen: set[int] | None = None) -> int:
    """Bytes ``value`` holds (dataclasses, containers and strings, each object once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    else:
        children = []
    return size + sum(retained_bytes(child, seen) for child in children)


def can_measure() -> bool:
    return os.path.exists("/proc/self/clear_refs")
