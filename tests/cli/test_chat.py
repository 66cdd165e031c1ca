"""`rlm chat` in a pseudo-terminal (pyte draws the screen), and piped."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = r"""
import sys, time
from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.engines.registry import register_engine

def model(messages, name):
    question = messages[1]["content"].split("\n")[0]
    if "slow" in question:
        time.sleep(60)  # a root call that Ctrl-C cancels
    if any(m["role"] == "assistant" for m in messages):
        return "```repl\nFINAL(code)\n```"
    if "again" in question:
        return "```repl\nprint('seen', code, len(history))\n```"
    return "```repl\ncode = context.split('code is ')[1].split()[0]\nprint(code)\n```"

def factory(model_name, **options):
    engine = FunctionEngine(model)
    engine.model = model_name
    return engine

register_engine("chattest", factory)
sys.exit(main(["chat", "--model", "chattest:m", "--no-log", "--no-check", *sys.argv[1:]]))
"""


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("nothing here\nthe code is 4417\nmore\n")
    return path


def _controlling_terminal() -> None:
    """In the child, after setsid: the pty becomes its terminal, so that Ctrl-C written
    to it is a SIGINT, as in a real terminal."""
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A child process on a pseudo-terminal, its screen drawn by pyte."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pyte = pytest.importorskip("pyte", reason="terminal emulation needs `pyte` (test extra)")
        self.screen = pyte.Screen(120, 60)
        self.screen.set_mode(pyte.modes.LNM)
        self.stream = pyte.ByteStream(self.screen)
        master, slave = pty.openpty()
        self.master = master
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.seen = b""

    def _pump(self, timeout: float) -> None:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            self.seen += data
            self.stream.feed(data)

    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.screen.display)

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.seen.decode("utf-8", "replace"):
            assert time.monotonic() < deadline, f"never saw {needle!r}:\n{self.text()}"
            assert self.proc.poll() is None or needle in self.seen.decode(), self.text()
            self._pump(0.1)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        os.close(self.master)


def test_chat_on_a_terminal(tmp_path: Path, context_file: Path):
    env = {**os.environ, "RLMAGENT_HOME": str(tmp_path / "home"), "TERM": "xterm"}
    term = Terminal([sys.executable, "-c", DRIVER, "--context", str(context_file)], env)
    try:
        term.wait_for("rlm> ")
        term.send("what is the code?\r")
        term.wait_for("turns 2 · calls 2")
        assert "4417" in term.text()
        term.send("/vars\r")
        term.wait_for("code (str, 4 characters)")
        # Ctrl-C in the middle of a question cancels it and keeps the session
        term.send("a slow one\r")
        term.wait_for("RLM run: a slow one")
        time.sleep(0.5)
        term.send("\x03")
        term.wait_for("question cancelled; the session goes on")
        term.send("again?\r")
        term.wait_for("seen 4417 1")  # the variable of question 1, the history of 1 answer
        term.send("/cost\r")
        term.wait_for("2 questions answered")
        term.send("/contexts\r")
        term.wait_for("a str of 35 characters in 3 lines")
        term.send("\x04")  # Ctrl-D: the end
        assert term.proc.wait(30) == 0
        term._pump(0.2)
    finally:
        term.close()
    screen = term.text()
    assert "Traceback" not in screen
    history = (tmp_path / "home" / "chat_history").read_text()
    assert "what is the code?" in history and "again?" in history


def test_chat_reads_questions_from_a_pipe(context_file: Path, tmp_path: Path):
    env = {**os.environ, "RLMAGENT_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "-c", str(context_file), "--quiet"],
        input="what is the code?\n/vars\n/reset\n/vars\n/nope\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "4417",
        "code (str, 4 characters)",
        "a fresh REPL: variables and history are gone; the contexts stay",
        "(no variables yet)",
    ]
    assert "unknown command /nope" in proc.stderr
    assert not (tmp_path / "home" / "chat_history").exists()  # no terminal, no history


def test_chat_refuses_stdin_as_a_context(context_file: Path):
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "-c", "-"],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "reads its questions from stdin" in proc.stderr


def test_chat_json_lines_and_a_session_budget(context_file: Path, tmp_path: Path):
    env = {**os.environ, "RLMAGENT_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, "-c", str(context_file), "--json", "--session-calls", "3"],
        input="what is the code?\nagain?\n/cost\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    first = json.loads(lines[0])
    assert first["answer"] == "4417" and first["metadata"]["question"] == 1
    # the second question had 1 call left of the session's 3: the budget stopped it
    second = json.loads(lines[1])
    assert second["stop_reason"] == "budget"
    assert lines[2].startswith("2 questions answered · calls 3")
    assert lines[3] == "session budget: calls 3 of 3"
