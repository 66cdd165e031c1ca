"""ConsoleProgress: what a user sees in a terminal, in a pipe, and with --quiet."""

from __future__ import annotations

import io
import threading

import pytest
import synth
from rich.console import Console

from rlmagent import EventBus, FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent import events as ev
from rlmagent.console import ConsoleProgress, shorten
from rlmagent.types import AgentResult, SubCall, TokenUsage, Usage


def render(events: list[ev.Event], *, terminal: bool, quiet: bool = False) -> str:
    buf = io.StringIO()
    progress = ConsoleProgress(
        Console(file=buf, force_terminal=terminal, width=100, color_system="standard"),
        quiet=quiet,
    )
    for e in events:
        progress(e)
    progress.close()
    return buf.getvalue()


def test_plain_output_has_no_escape_codes_and_tells_the_story() -> None:
    out = render(synth.small_run(), terminal=False)
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0] == "RLM run: How many lines mention 'error'?"
    assert "model root-model, sub-calls sub-model" in lines
    assert sum(line.startswith("── turn") for line in lines) == 2  # the child's turn is not drawn
    assert "    answers = llm_batch([f'Count errors: {c}' for c in chunks])" in lines
    assert "  llm_batch b1: 3 prompts" in lines
    assert "  llm_batch b1: 2/3 done, 1 failed" in lines
    assert "  → cell 1 ran in 2.20s, 3 sub-calls, 1 failed" in lines
    assert "  │ ['10', '11', None]" in lines
    assert "  ✗ error: ZeroDivisionError: division by zero" in lines
    assert "  → cell 1 ran in 0.52s, 1 sub-call, FINAL" in lines
    assert "note: sandbox: subprocess without bubblewrap" in lines
    done = next(line for line in lines if line.startswith("done:"))
    assert "2 turns · 6 calls · 2,130 tokens · $0.0045" in done
    assert lines[-1] == "answer: 21"


def test_quiet_prints_only_the_answer() -> None:
    assert render(synth.small_run(), terminal=False, quiet=True) == "21\n"
    assert render(synth.small_run(), terminal=True, quiet=True) == "21\n"


def test_terminal_output_is_styled_with_live_bars() -> None:
    out = render(synth.small_run(), terminal=True)
    assert "\x1b[" in out  # colours and cursor movement
    assert "llm_batch b1" in out and "0/3" in out  # the bar was drawn when the batch began
    assert "━" in out
    assert "╭─ answer" in out and "│ 21" in out
    assert "ZeroDivisionError" in out


def test_long_code_is_shortened() -> None:
    code = "\n".join(f"x{i} = {i}" for i in range(40)) + "\n" + "y = '" + "z" * 300 + "'"
    text = shorten(code, 12)
    assert text.splitlines()[-1] == "… (29 more lines)"
    assert len(text.splitlines()) == 13
    assert shorten("a" * 300, 1, 50) == "a" * 49 + "…"
    events = [
        ev.RunStarted(
            run_id="r", question="q", context_info={}, model="m", sub_model="", settings={}
        ),
        ev.TurnStarted(run_id="r", turn=1),
        ev.CodeStarted(run_id="r", turn=1, cell=1, code=code),
    ]
    out = render(events, terminal=False)
    assert "    … (29 more lines)" in out and "x11 = 11" in out and "x12 = 12" not in out


def test_a_failed_run_shows_the_error_and_no_answer() -> None:
    events = [
        *synth.small_run(finish=False),
        ev.RunEnded(run_id="run-root", result=None, error="BudgetExceeded: 10 calls"),
    ]
    out = render(events, terminal=False)
    assert "run failed: BudgetExceeded: 10 calls" in out
    assert "answer:" not in out
    # without a result, the totals come from the events seen
    assert "2 turns · 6 calls" in out


def test_a_failed_run_with_a_partial_result_shows_no_answer() -> None:
    partial = AgentResult(content="", turns=2, usage=Usage())
    events = [
        *synth.small_run(finish=False),
        ev.RunEnded(run_id="run-root", result=partial, error="EngineError: down"),
    ]
    out = render(events, terminal=False)
    assert "run failed: EngineError: down" in out
    assert "answer:" not in out
    assert render(events, terminal=False, quiet=True) == ""


def test_summary_and_answer_can_be_left_to_the_caller() -> None:
    buf = io.StringIO()
    progress = ConsoleProgress(
        Console(file=buf, force_terminal=False), show_answer=False, show_summary=False
    )
    for e in synth.small_run():
        progress(e)
    out = buf.getvalue()
    assert "done:" not in out and "answer:" not in out
    assert "── turn 2" in out


def test_unknown_cost_is_said_so() -> None:
    call = SubCall(call_id="c", prompt="p", answer="a", model="m", depth=1, cost_usd=None)
    events = [
        ev.RunStarted(
            run_id="r", question="q", context_info={}, model="m", sub_model="", settings={}
        ),
        ev.SubCallEnded(run_id="r", call=call),
        ev.RunEnded(run_id="r", result=None, error="stopped"),
    ]
    assert "cost unknown" in render(events, terminal=False)


def test_sub_calls_from_many_threads_are_all_counted() -> None:
    buf = io.StringIO()
    progress = ConsoleProgress(Console(file=buf, force_terminal=True, width=100))
    bus = EventBus()
    bus.subscribe(progress)
    bus.publish(
        ev.RunStarted(
            run_id="r", question="q", context_info={}, model="m", sub_model="", settings={}
        )
    )
    bus.publish(ev.BatchStarted(run_id="r", batch_id="b", size=800))

    def work(k: int) -> None:
        for i in range(100):
            call = SubCall(
                call_id=f"{k}-{i}", prompt="p", answer="a", model="m", depth=1, batch_id="b",
                usage=TokenUsage(prompt_tokens=3, completion_tokens=2), cost_usd=0.0,
            )  # fmt: skip
            bus.publish(ev.SubCallEnded(run_id="r", call=call))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bus.publish(ev.BatchEnded(run_id="r", batch_id="b", size=800, failures=0))
    bus.publish(ev.RunEnded(run_id="r", result=None, error="x"))
    progress.close()
    assert "800 calls · 4,000 tokens" in buf.getvalue()
    assert "llm_batch b: 800/800 done" in buf.getvalue()


def test_a_real_run_on_scripted_engines() -> None:
    root = ScriptedEngine(
        [
            "Split it.\n```repl\nparts = [context[i:i+10] for i in range(0, len(context), 10)]\n"
            'ans = llm_batch(["Count x in: " + p for p in parts])\nprint(ans)\n```',
            "FINAL(10)",
            "FINAL(10)",
        ]
    )
    sub = FunctionEngine(lambda messages, model: str(messages[-1]["content"].count("x")))
    buf = io.StringIO()
    bus = EventBus()
    progress = ConsoleProgress(Console(file=buf, force_terminal=False, width=100))
    bus.subscribe(progress)
    agent = RLMAgent(root, "root-m", sub_engine=sub, sub_model="sub-m", bus=bus)
    result = agent.run("How many x?", context="abcx" * 10)
    progress.close()
    out = buf.getvalue()
    assert "\x1b" not in out
    assert "llm_batch" in out and "4/4 done" in out
    assert "  │ ['3', '4', '3', '4']" in out  # x in each prompt ('Count x in: ' has one)
    assert result.content == "10"
    assert out.splitlines()[-1] == f"answer: {result.content}"
    assert f"{result.usage.calls} calls" in out


def test_what_a_terminal_shows() -> None:
    pyte = pytest.importorskip("pyte", reason="terminal emulation needs `pyte` (test extra)")
    buf = io.StringIO()
    progress = ConsoleProgress(Console(file=buf, force_terminal=True, width=100, height=40))
    screen = pyte.Screen(100, 40)
    screen.set_mode(pyte.modes.LNM)  # a terminal's newline also returns the carriage
    stream = pyte.Stream(screen)

    def shown() -> list[str]:
        stream.feed(buf.getvalue())
        buf.seek(0)
        buf.truncate()
        return [line.rstrip() for line in screen.display if line.strip()]

    events = synth.small_run()
    batch_started = next(i for i, e in enumerate(events) if isinstance(e, ev.BatchStarted))
    for e in events[: batch_started + 1]:
        progress(e)
    during = shown()
    # the live part: a status line (turn, calls, tokens, cost, time) and the batch's bar
    assert during[-2].startswith("turn 1 · 1 calls · 980 tokens · $0.0020")
    assert during[-1].startswith("llm_batch b1") and "━" in during[-1]
    assert during[-1].split()[-2] == "0/3"
    for e in events[batch_started + 1 :]:
        progress(e)
    progress.close()
    after = shown()
    assert after[-3:] == ["╭─ answer ─╮", "│ 21       │", "╰──────────╯"]
    assert "  llm_batch b1: 2/3 done, 1 failed" in after
    assert "x = llm_query('Sum 10 and 11')" in after
    # the live lines were taken away at the end
    assert not any(line.startswith(("turn 2 ·", "llm_batch b1 ")) for line in after)
