"""Issue 15, the console: text from the sandbox is data, never a terminal command.

A cell's output, error and code, the answer and the notices are printed with every
character a terminal could act on shown as its escape (OSC 52 clipboard writes, title
changes, screen clears, CSI and C1 controls, bidirectional overrides, lone surrogates),
newlines and tabs kept, in terminal mode and in plain mode. Checked on what reaches the
console's file after a real run on every tier, and on synthetic events.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from rlmagent import EventBus, FunctionEngine
from rlmagent import events as ev
from rlmagent.cli import main
from rlmagent.console import ConsoleProgress, printable, printable_json
from rlmagent.engines import register_engine, unregister_engine
from rlmagent.types import AgentResult, ExecResult, Usage
from sandbox.helpers import TIERS
from sandbox.hostile import run_cells

PAYLOAD = (
    "clip\x1b]52;c;cm0gLXJmIH4=\x07 title\x1b]0;pwned\x1b\\ clear\x1b[2J\x1b[3J\x1b[H "
    "reset\x1bc c1\x9b31m osc8\x9d8;;http://x\x9c bell\x07 rtl\u202eevil cr\rover "
    "surrogate\ud800 tab\tend"
)
"""What a hostile cell prints: each piece alone would act on the user's terminal."""

ATTACKS = [
    "\x1b]52;",  # clipboard write
    "\x1b]0;pwned",  # title
    "\x1b[2J",  # clear screen
    "\x1b[3J",  # clear scrollback
    "\x1b[H reset",  # cursor home
    "\x1bc c1",  # full reset
    "\x9b",  # 8-bit CSI
    "\x9d",  # 8-bit OSC
    "\x07",  # bell (also ends OSC)
    "\u202e",  # right-to-left override
    "cr\rover",  # carriage return: overwrite the line (rich's own live display uses \r)
    "\ud800",  # a lone surrogate (cannot even be written as UTF-8)
]
"""The payload's pieces, as a terminal would get them (rich's own styling and redrawing
escapes, SGR colours and ``\r\x1b[2K``, are none of these)."""


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=terminal, width=200, color_system="standard")
    return console, buf


def assert_clean(out: str) -> None:
    for attack in ATTACKS:
        assert attack not in out, f"{attack!r} reached the terminal"
    assert "\\x1b]52;c;cm0gLXJmIH4=\\x07" in out  # shown, as data
    assert "\\u202eevil" in out and "\\ud800" in out


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_lines_and_tabs():
    text = printable(PAYLOAD + "\nsecond line\r\nthird")
    for attack in ATTACKS:
        assert attack not in text
    assert "tab\tend\nsecond line\nthird" in text
    assert printable(text) == text  # escaping twice changes nothing
    assert printable("plain ünïcödé ✓ 中文\n\tok") == "plain ünïcödé ✓ 中文\n\tok"


def test_printable_json_decodes_to_the_same_value():
    data = {"answer": PAYLOAD}
    text = printable_json(json.dumps(data, ensure_ascii=False))
    for attack in ATTACKS:
        assert attack not in text
    assert json.loads(text) == data


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "plain"])
def test_synthetic_events_print_clean(terminal):
    console, buf = _console(terminal)
    progress = ConsoleProgress(console)
    output = f"{PAYLOAD}\ncol1\tcol2\n"
    result = ExecResult(output=output, error=f"Traceback\nValueError: {PAYLOAD}")
    usage = Usage()
    for event in [
        ev.RunStarted(
            run_id="r", question=PAYLOAD, context_info={}, model="m", sub_model="", settings={}
        ),
        ev.TurnStarted(run_id="r", turn=1),
        ev.CodeStarted(run_id="r", turn=1, cell=1, code=f"print({PAYLOAD!r})\n# {PAYLOAD}"),
        ev.CodeExecuted(run_id="r", turn=1, cell=1, code="", result=result),
        ev.Notice(run_id="r", message=PAYLOAD),
        ev.RunEnded(run_id="r", result=AgentResult(content=PAYLOAD, turns=1, usage=usage)),
    ]:
        progress(event)
    progress.close()
    out = buf.getvalue()
    assert_clean(out)
    assert re.search("│ col1[\t ]+col2\n", out)  # tab and newline kept (rich expands tabs)


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "plain"])
@pytest.mark.parametrize("tier", TIERS)
def test_what_a_cell_prints_reaches_the_terminal_as_text(tier, terminal):
    console, buf = _console(terminal)
    progress = ConsoleProgress(console)
    bus = EventBus()
    bus.subscribe(progress)
    code = (
        f"payload = {PAYLOAD!r}\n"
        "print(payload)\n"
        "import sys\nprint(payload, file=sys.stderr)\n"
        "FINAL(payload)"
    )
    try:
        result = run_cells(tier, code, bus=bus)
    finally:
        progress.close()
    assert result.content == PAYLOAD  # the answer itself is the model's, untouched
    out = buf.getvalue()
    assert_clean(out)
    assert "│ clip\\x1b]52" in out  # the output line, escaped


@pytest.fixture
def hostile_provider():
    def root(messages, model):
        return f"```repl\nprint({PAYLOAD!r})\nFINAL({PAYLOAD!r})\n```"

    register_engine("hostile", lambda model, **kw: FunctionEngine(root), replace=True)
    yield "hostile:m"
    unregister_engine("hostile")


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_the_cli_prints_the_answer_as_text(
    capsys, tmp_path, monkeypatch, hostile_provider, as_json
):
    monkeypatch.setenv("RLMAGENT_HOME", str(tmp_path))
    args = ["run", "q", "--model", hostile_provider, "-q", *(["--json"] if as_json else [])]
    assert main(args) == 0
    out = capsys.readouterr().out
    for attack in ATTACKS:
        assert attack not in out, f"{attack!r} reached the terminal"
    if as_json:
        assert json.loads(out)["answer"] == PAYLOAD  # exact, through JSON escapes
    else:
        assert out == printable(PAYLOAD) + "\n"
    assert main(["runs", *(["--json"] if as_json else [])]) == 0
    listed = capsys.readouterr().out
    assert "clip\\x1b]52" in listed or '"answer"' in listed  # the run is listed, as text
    for attack in ATTACKS:
        assert attack not in listed, f"{attack!r} reached the terminal in rlm runs"
