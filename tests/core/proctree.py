"""Processes below a PID, read from /proc: how the tests check that no sandbox is left."""

from __future__ import annotations

from pathlib import Path


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...)."""
    children = _children()
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    """The PIDs in ``pids`` that still exist and are not zombies."""
    living = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            living.append(pid)
    return living


def sandbox_processes(pid: int) -> list[int]:
    """Every process below ``pid`` of a sandbox (its command line names worker.py): the
    Python worker, and the bubblewrap processes around it when there are some."""
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"worker.py" in cmdline:
            found.append(child)
    return found


def workers(pid: int) -> list[int]:
    """The Python worker processes below ``pid``: one per live sandbox."""
    found = []
    for child in sandbox_processes(pid):
        try:
            program = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if b"python" in program.rsplit(b"/", 1)[-1]:
            found.append(child)
    return found


def describe(pids: list[int]) -> list[str]:
    """``pid ppid state: command line`` of each process, for assertion messages."""
    lines = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        lines.append(f"{pid} {stat[1]} {stat[0]}: {cmd}")
    return lines
