"""Sessions: many questions in one REPL (ScriptedEngine / FunctionEngine, real sandbox)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from rlmagent import Budget, BudgetExceeded, EventBus, FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.errors import UsageError
from rlmagent.events import CodeStarted, Event, RootCompletion
from rlmagent.sandbox import Limits, SubprocessSandbox

LOGS = "\n".join(f"2026-11-{d:02d} user{d % 4} login" for d in range(1, 29)) + "\n"


def repl(code: str) -> str:
    return f"```repl\n{code}\n```"


def first_user(call: list[dict[str, str]]) -> str:
    return call[1]["content"]


def test_a_variable_of_question_one_is_read_in_question_two_by_the_same_worker():
    engine = ScriptedEngine(
        [
            repl(
                "import os\nusers = sorted({l.split()[1] for l in context.splitlines()})\n"
                "pid1 = os.getpid()\nprint(users)"
            ),
            repl("FINAL(len(users))"),
            repl("import os\nprint(users, pid1 == os.getpid())"),
            repl("FINAL(', '.join(users))"),
        ]
    )
    with RLMAgent(engine, "m").session(context=LOGS) as session:
        first = session.ask("How many users?")
        pid = session.worker_pid
        second = session.ask("Which ones?")
        assert session.worker_pid == pid
    assert first.content == "4"
    assert second.content == "user0, user1, user2, user3"
    assert second.trajectory[0].cells[0].result.output.endswith("True\n")
    # question 2's first message lists what question 1 left in the REPL
    opening = first_user(engine.calls[2])
    assert "users (list, 4 items)" in opening and "pid1 (int)" in opening
    assert first.metadata["session_id"] == second.metadata["session_id"] == session.id
    assert [first.metadata["question"], second.metadata["question"]] == [1, 2]


def test_history_holds_the_earlier_questions_and_answers():
    engine = ScriptedEngine(
        [
            repl("FINAL(context.count('login'))"),
            repl("print([(h['question'], h['answer'], h['stop_reason']) for h in history])"),
            repl("FINAL(int(history[-1]['answer']) // 2)"),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(context=LOGS) as session:
        session.ask("How many logins?")
        result = session.ask("And half of those?")
        assert [(e.question, e.answer) for e in session.history] == [
            ("How many logins?", "28"),
            ("And half of those?", "14"),
        ]
    assert result.content == "14"
    output = result.trajectory[0].cells[0].result.output
    assert output == "[('How many logins?', '28', 'final')]\n"
    opening = first_user(engine.calls[1])
    assert "1. Q: How many logins?\n   A: 28" in opening


def test_add_context_puts_a_document_in_contexts_and_the_first_message():
    engine = ScriptedEngine(
        [
            repl("FINAL(sorted(contexts))"),
            repl(
                "FINAL([len(contexts['logs']), contexts['teams']['user1'],\n"
                "       context == contexts['logs']])"
            ),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(contexts={"logs": LOGS}) as session:
        assert session.ask("Which contexts?").content == "['logs']"
        session.add_context("teams", {"user1": "blue", "user2": "red"})
        with pytest.raises(UsageError, match="already has a context named 'teams'"):
            session.add_context("teams", "again")
        assert session.contexts == ("logs", "teams")
        result = session.ask("What team is user1 in?")
    assert result.content == f"[{len(LOGS)}, 'blue', True]"
    opening = first_user(engine.calls[1])
    assert "`contexts['logs']` (also `context`)" in opening
    assert "`contexts['teams']`: a dict" in opening


def test_a_worker_killed_between_questions_is_replaced_with_the_contexts_restored():
    engine = ScriptedEngine(
        [
            repl("rows = context.splitlines()\nFINAL(len(rows))"),
            repl("print(len(contexts['extra']), len(context), 'rows' in globals())"),
            repl("FINAL('ok')"),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(context=LOGS) as session:
        session.ask("How many rows?")
        session.add_context("extra", "x" * 10_000)
        old = session.worker_pid
        assert old is not None
        os.kill(old, signal.SIGKILL)
        result = session.ask("Still there?")
        assert session.worker_pid not in (None, old)
    assert result.trajectory[0].cells[0].result.output == f"10000 {len(LOGS)} False\n"
    opening = first_user(engine.calls[1])
    assert "worker was killed" in opening and "these variables are lost: rows" in opening


def test_a_worker_killed_during_a_question_names_the_lost_variables():
    engine = ScriptedEngine(
        [
            repl("total = 41\nprint(total)"),
            repl("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
            repl("print(contexts['context'][:10], 'total' in globals())"),
            repl("FINAL('done')"),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(context=LOGS) as session:
        result = session.ask("Crash?")
        assert [v.name for v in session.variables] == []
    error = result.trajectory[1].cells[0].result.error
    assert result.trajectory[1].cells[0].result.state_lost
    assert "Variables lost: total." in error
    assert result.trajectory[2].cells[0].result.output == f"{LOGS[:10]} False\n"


def test_budget_per_question_and_per_session():
    engine = FunctionEngine(lambda messages, model: repl("x = 1\nprint(x)"))
    agent = RLMAgent(engine, "m", check_answers=False)
    with agent.session(context=LOGS, budget=Budget(max_calls=5)) as session:
        # the question's own limit: 2 calls (one turn, then the final answer)
        first = session.ask("q1", budget=Budget(max_calls=2))
        assert first.stop_reason == "budget" and first.budget_limit == "calls"
        assert first.usage.calls == 2
        # what is left of the session's (3) is smaller than the question's (10)
        second = session.ask("q2", budget=Budget(max_calls=10))
        assert second.usage.calls == 3 and second.budget["limits"]["calls"] == 3
        assert session.spent()["calls"] == 5
        with pytest.raises(BudgetExceeded, match="the session's budget is spent") as info:
            session.ask("q3")
        assert info.value.limit_name == "calls"
        assert session.usage.calls == 5


def test_cancelling_a_question_keeps_the_session_and_its_variables():
    release = threading.Event()
    bus = EventBus()
    events: list[Event] = []
    bus.subscribe(events.append)

    async def model(messages, name):
        question = messages[1]["content"]
        if "slow" in question:
            if any(m["role"] == "assistant" for m in messages):
                await asyncio.sleep(3600)  # the root call that gets cancelled
            return repl("kept = 7\nprint(kept)")
        return repl("FINAL(kept * 6)")

    agent = RLMAgent(FunctionEngine(model), "m", bus=bus, check_answers=False)

    async def main() -> tuple[str, int | None, int | None]:
        with agent.session(context=LOGS) as session:
            task = asyncio.create_task(session.aask("slow question"))
            deadline = time.monotonic() + 60
            while not any(isinstance(e, RootCompletion) for e in events):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
            pid = session.worker_pid
            assert session.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not session.busy
            result = await session.aask("quick question")
            return result.content, pid, session.worker_pid

    content, before, after = asyncio.run(main())
    release.set()
    assert content == "42"
    assert before == after


def test_a_cell_that_will_not_end_is_killed_on_cancel_and_the_next_question_is_told():
    bus = EventBus()
    sleeping = threading.Event()
    bus.subscribe(lambda e: "sleep(" in e.code and sleeping.set(), CodeStarted)

    openings: list[str] = []

    def model(messages, name):
        question = messages[1]["content"]
        openings.append(question)
        if "sleep" in question:
            if any(m["role"] == "assistant" for m in messages):
                return repl("import time\ntime.sleep(600)")
            return repl("before = 1\nprint(before)")
        return repl("print('before' in globals())\nFINAL(len(contexts))")

    sandbox = SubprocessSandbox(limits=Limits(cell_timeout_s=60))  # a failure ends soon
    agent = RLMAgent(FunctionEngine(model), "m", bus=bus, check_answers=False, sandbox=sandbox)
    with agent.session(context=LOGS) as session:
        old = []

        def cancel_when_sleeping() -> None:
            if sleeping.wait(60):
                old.append(session.worker_pid)
                time.sleep(0.3)  # the cell is in time.sleep(600) now
                session.cancel()

        thread = threading.Thread(target=cancel_when_sleeping)
        thread.start()
        with pytest.raises(asyncio.CancelledError):
            session.ask("sleep please")
        thread.join()
        result = session.ask("what now?")
        assert session.worker_pid != old[0]
    assert result.content == "1"
    assert result.trajectory[0].cells[0].result.output == "False\n"
    assert "these variables are lost: before" in openings[-1]


def test_one_question_at_a_time_and_a_closed_session_says_so():
    gate = threading.Event()

    def model(messages, name):
        gate.wait(30)
        return repl("FINAL(1)")

    session = RLMAgent(FunctionEngine(model), "m", check_answers=False).session(context="c")
    worker = threading.Thread(target=session.ask, args=("first",))
    worker.start()
    deadline = time.monotonic() + 30
    while not session.busy:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(UsageError, match="already running"):
        session.ask("second")
    gate.set()
    worker.join()
    session.close()
    session.close()  # idempotent
    assert session.closed
    with pytest.raises(UsageError, match=r"session \w+ is closed"):
        session.ask("third")
    with pytest.raises(UsageError, match="closed"):
        session.add_context("x", "y")


def test_session_arguments_are_checked():
    agent = RLMAgent(ScriptedEngine([]), "m")
    with pytest.raises(UsageError, match="contexts has a 'context'"):
        agent.session(context="a", contexts={"context": "b"})
    with pytest.raises(UsageError, match="budget must be"):
        agent.session(budget=3)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="non-empty string"):
        agent.session(contexts={"": "x"})


def test_reset_gives_a_fresh_repl_over_the_same_contexts():
    engine = ScriptedEngine(
        [
            repl("kept = 1\nFINAL(len(history))"),
            repl("FINAL([('kept' in globals()), len(history), len(contexts['context'])])"),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(context=LOGS) as session:
        session.ask("first")
        pid = session.worker_pid
        session.reset()
        assert session.history == () and session.variables == ()
        result = session.ask("second")
        assert session.worker_pid != pid
        assert session.usage.calls == 2
    assert result.content == f"[False, 0, {len(LOGS)}]"


def test_ask_inside_an_event_loop_points_to_aask():
    async def main() -> None:
        with RLMAgent(ScriptedEngine([repl("FINAL(1)")]), "m").session(context="c") as s:
            with pytest.raises(UsageError, match=r"await session\.aask"):
                s.ask("q")
            assert (await s.aask("q")).content == "1"

    asyncio.run(main())


def test_a_typed_answer_in_a_session_and_the_in_process_sandbox():
    pytest.importorskip("pydantic", reason="typed answers need the typed extra")
    from rlmagent.sandbox import InProcessSandbox

    engine = ScriptedEngine(
        [
            repl("days = sorted({l[:10] for l in context.splitlines()})\nprint(len(days))"),
            repl("FINAL(len(days))"),
            repl("FINAL_VAR('days')"),
        ]
    )
    agent = RLMAgent(engine, "m", check_answers=False, sandbox=InProcessSandbox())
    with agent.session(context=LOGS) as session:
        count = session.ask("How many days?", output_type=int)
        days = session.ask("Which days?", output_type=list[str])
    assert count.value == 28 and count.content == "28"
    assert days.value == [f"2026-11-{d:02d}" for d in range(1, 29)]


def test_the_session_survives_a_model_that_rebinds_builtins():
    engine = ScriptedEngine(
        [
            repl("len = type = dict = list = enumerate = globals = 0\nFINAL('bound')"),
            repl("import builtins\nFINAL(builtins.len(contexts['extra']))"),
        ]
    )
    with RLMAgent(engine, "m", check_answers=False).session(context=LOGS) as session:
        session.ask("first")
        assert {v.name for v in session.variables} >= {"len", "type", "globals"}
        session.add_context("extra", [1, 2, 3])
        assert session.ask("second").content == "3"


def test_close_during_a_question_cancels_it_and_kills_the_sandbox():
    entered = threading.Event()

    async def model(messages, name):
        if any(m["role"] == "assistant" for m in messages):
            entered.set()
            await asyncio.sleep(3600)
        return repl("x = 1\nprint(x)")

    session = RLMAgent(FunctionEngine(model), "m", check_answers=False).session(context="c")
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            session.ask("q")
        except BaseException as exc:  # the cancellation, seen in this thread
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    assert entered.wait(60)
    pid = session.worker_pid
    assert pid is not None
    session.close()
    thread.join(60)
    assert not thread.is_alive()
    assert errors and isinstance(errors[0], asyncio.CancelledError)
    assert session.closed and not session.busy
    deadline = time.monotonic() + 30
    while not gone(pid):
        assert time.monotonic() < deadline, f"worker {pid} still runs"
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie awaiting its reaper counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[-1].startswith("Z")
    except FileNotFoundError:
        return True


def test_many_contexts_are_named_not_all_described():
    from rlmagent.briefing import CONTEXTS_SHOWN, Briefing, describe_all, first_message

    contexts = {f"doc{i}.txt": f"text {i}\nline two" for i in range(CONTEXTS_SHOWN + 70)}
    text = first_message("q?", Briefing(contexts=describe_all(contexts)))
    assert text.count("It begins:") == CONTEXTS_SHOWN
    assert f"also 70 more: 'doc{CONTEXTS_SHOWN}.txt'" in text and ", and 20 more" in text
    assert len(text) < 6_000
