"""Ctrl-C typed on a real pseudo-terminal during `rlm run`: exit 130, and the screen
(read with pyte) ends with the CLI's own line, no traceback and no "run failed".

The root is scripted (registered in the child process) and its cell sleeps, so the
keypress lands while a cell runs in the real sandbox. The same on the local model, at
five moments, is benchmarks/bench_ctrl_c.py.
"""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import sys
import textwrap
import time
from pathlib import Path

import pyte
import pytest

CHILD = textwrap.dedent(
    """
    import sys
    from rlmagent import ScriptedEngine
    from rlmagent.cli import main
    from rlmagent.engines import register_engine

    reply = sys.argv[1]
    register_engine("ptyroot", lambda model, **kw: ScriptedEngine([reply] * 3))
    sys.exit(main(sys.argv[2:]))
    """
)
SLEEP = "```repl\nimport time\ntime.sleep(120)\n```"


def type_ctrl_c_during_the_cell(tmp_path: Path, reply: str) -> tuple[int, list[str]]:
    trace = tmp_path / "t.jsonl"
    context = tmp_path / "ctx.txt"
    context.write_text("some text\n", encoding="utf-8")
    argv = [sys.executable, "-c", CHILD, reply, "run", "q", "-c", str(context)]
    argv += ["--model", "ptyroot:s", "--trace", str(trace), "--no-log"]
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "LINES": "30"}
    pid, fd = pty.fork()
    if pid == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(argv[0], argv, env)
    screen = pyte.Screen(100, 30)
    stream = pyte.ByteStream(screen)
    sent = None
    deadline = time.monotonic() + 120
    status = None
    while status is None and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            with contextlib.suppress(OSError):
                stream.feed(os.read(fd, 65536))
        if sent is None and trace.exists() and '"CodeStarted"' in trace.read_text("utf-8"):
            time.sleep(0.3)  # the cell is running in the sandbox
            os.write(fd, b"\x03")
            sent = time.monotonic()
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("rlm did not exit within 120 s" + (" of Ctrl-C" if sent else ""))
    while select.select([fd], [], [], 0.2)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        stream.feed(chunk)
    os.close(fd)
    assert sent is not None, "the cell never started"
    assert os.WIFEXITED(status), f"killed by signal {os.WTERMSIG(status)}"
    lines = [line.rstrip() for line in screen.display if line.strip()]
    return os.WEXITSTATUS(status), lines


def test_ctrl_c_during_a_cell_exits_130_with_one_line(tmp_path: Path) -> None:
    code, lines = type_ctrl_c_during_the_cell(tmp_path, SLEEP)
    assert code == 130
    assert lines[-1] == "rlm: interrupted (no answer yet)"
    shown = "\n".join(lines)
    assert "Traceback" not in shown and "failed" not in shown and "CancelledError" not in shown


def test_ctrl_c_prints_the_last_final_value_it_had(tmp_path: Path) -> None:
    code, lines = type_ctrl_c_during_the_cell(tmp_path, "FINAL(42)\n" + SLEEP)
    assert code == 130
    assert lines[-2:] == ["rlm: interrupted; the model's last FINAL value:", "42"]
