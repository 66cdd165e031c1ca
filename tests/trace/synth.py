"""Synthetic event sequences shaped like a real run, for trace, console and viewer tests.

They follow the publishing contract of the agent: a run opens with RunStarted; each turn
has TurnStarted, RootCompletion, then per cell CodeStarted ... CodeExecuted, with the
cell's sub-calls (and their batches) published in between; TurnEnded; RunEnded. Times
are explicit so that tests are deterministic.
"""

from __future__ import annotations

from rlmagent import events as ev
from rlmagent.types import (
    AgentResult,
    Completion,
    ExecResult,
    ModelUsage,
    Step,
    SubCall,
    TokenUsage,
    Usage,
)

T0 = 1_700_000_000.0


def sub_call(
    call_id: str,
    prompt: str,
    answer: str | None,
    *,
    started: float,
    latency: float,
    batch_id: str | None = None,
    error: str | None = None,
    model: str = "sub-model",
    depth: int = 1,
) -> SubCall:
    return SubCall(
        call_id=call_id,
        prompt=prompt,
        answer=answer,
        model=model,
        depth=depth,
        usage=TokenUsage(prompt_tokens=len(prompt) // 4 + 1, completion_tokens=5),
        cost_usd=0.0001,
        started_at=started,
        latency_s=latency,
        error=error,
        batch_id=batch_id,
    )


def small_run(*, with_child: bool = True, finish: bool = True) -> list[ev.Event]:
    """Two turns; turn 1 runs a cell with an llm_batch of 3 (one failure) and a cell that
    raises; turn 2 runs one llm_query whose sub-call is a child RLM, then FINAL."""
    rid = "run-root"
    out: list[ev.Event] = []

    def e(cls: type[ev.Event], t: float, **kw: object) -> None:
        kw.setdefault("run_id", rid)
        out.append(cls(time=T0 + t, **kw))  # type: ignore[arg-type]

    e(
        ev.RunStarted,
        0.0,
        question="How many lines mention 'error'?",
        context_info={"type": "str", "chars": 120_000, "api_key": "sk-should-not-appear"},
        model="root-model",
        sub_model="sub-model",
        settings={"max_turns": 5, "max_concurrency": 4},
    )
    e(ev.Notice, 0.01, message="sandbox: subprocess without bubblewrap")
    # ---- turn 1
    reply1 = (
        "Let me look at the data.\n```repl\nchunks = [context[i:i+40000] for i in "
        "range(0, len(context), 40000)]\nanswers = llm_batch([f'Count errors: {c}' "
        "for c in chunks])\nprint(answers)\n```\nThen check:\n```repl\n1/0\n```"
    )
    e(ev.TurnStarted, 0.02, turn=1)
    e(
        ev.RootCompletion,
        1.0,
        turn=1,
        completion=Completion(
            content=reply1,
            model="root-model",
            usage=TokenUsage(prompt_tokens=900, completion_tokens=80),
            cost_usd=0.002,
        ),
        latency_s=0.98,
    )
    code1 = reply1.split("```repl\n")[1].split("```")[0]
    e(ev.CodeStarted, 1.01, turn=1, cell=1, code=code1)
    e(ev.BatchStarted, 1.02, batch_id="b1", size=3)
    calls = []
    for i in range(3):
        e(
            ev.SubCallStarted,
            1.03 + i * 0.001,
            call_id=f"c{i}",
            prompt=f"Count errors: chunk {i} " + "x" * 50,
            model="sub-model",
            batch_id="b1",
        )
    for i in (1, 0, 2):  # they end out of order, concurrently
        failed = i == 2
        call = sub_call(
            f"c{i}",
            f"Count errors: chunk {i} " + "x" * 50,
            None if failed else str(10 + i),
            started=T0 + 1.03 + i * 0.001,
            latency=1.5 + i * 0.3,
            batch_id="b1",
            error="EngineError: HTTP 500" if failed else None,
        )
        calls.append(call)
        e(ev.SubCallEnded, 1.03 + i * 0.001 + call.latency_s, call=call)
    e(ev.BatchEnded, 3.2, batch_id="b1", size=3, failures=1)
    result1 = ExecResult(output="['10', '11', None]\n", duration_s=2.2)
    e(ev.CodeExecuted, 3.21, turn=1, cell=1, code=code1, result=result1)
    e(ev.CodeStarted, 3.22, turn=1, cell=2, code="1/0\n")
    result2 = ExecResult(
        error="Traceback (most recent call last):\nZeroDivisionError: division by zero",
        duration_s=0.01,
    )
    e(ev.CodeExecuted, 3.23, turn=1, cell=2, code="1/0\n", result=result2)
    e(ev.TurnEnded, 3.24, turn=1, observation="['10', '11', None]\nZeroDivisionError")
    # ---- turn 2
    reply2 = "```repl\nx = llm_query('Sum 10 and 11')\nFINAL_VAR('x')\n```"
    e(ev.TurnStarted, 3.25, turn=2)
    e(
        ev.RootCompletion,
        4.0,
        turn=2,
        completion=Completion(
            content=reply2,
            model="root-model",
            usage=TokenUsage(prompt_tokens=1000, completion_tokens=30),
            cost_usd=0.0021,
        ),
        latency_s=0.75,
    )
    code2 = "x = llm_query('Sum 10 and 11')\nFINAL_VAR('x')\n"
    e(ev.CodeStarted, 4.01, turn=2, cell=1, code=code2)
    e(ev.SubCallStarted, 4.02, call_id="c3", prompt="Sum 10 and 11", model="sub-model")
    if with_child:
        cid = "run-child"
        kw = {"run_id": cid, "depth": 1, "parent_id": "c3"}
        e(
            ev.RunStarted,
            4.03,
            question="Sum 10 and 11",
            context_info={"type": "str", "chars": 13},
            model="sub-model",
            sub_model="sub-model",
            settings={},
            **kw,
        )
        e(ev.TurnStarted, 4.04, turn=1, **kw)
        e(
            ev.RootCompletion,
            4.5,
            turn=1,
            completion=Completion(
                content="FINAL(21)",
                model="sub-model",
                usage=TokenUsage(prompt_tokens=50, completion_tokens=4),
                cost_usd=0.00001,
            ),
            latency_s=0.4,
            **kw,
        )
        e(ev.TurnEnded, 4.51, turn=1, observation="", **kw)
        child_usage = Usage.from_models(
            {"sub-model": ModelUsage(calls=1, prompt_tokens=50, completion_tokens=4, cost_usd=1e-5)}
        )
        e(
            ev.RunEnded,
            4.52,
            result=AgentResult(content="21", turns=1, usage=child_usage),
            **kw,
        )
    last = sub_call("c3", "Sum 10 and 11", "21", started=T0 + 4.02, latency=0.5)
    calls.append(last)
    e(ev.SubCallEnded, 4.53, call=last)
    result3 = ExecResult(output="", final="21", duration_s=0.52)
    e(ev.CodeExecuted, 4.54, turn=2, cell=1, code=code2, result=result3)
    e(ev.TurnEnded, 4.55, turn=2, observation="")
    if finish:
        usage = Usage.from_models(
            {
                "root-model": ModelUsage(
                    calls=2, prompt_tokens=1900, completion_tokens=110, cost_usd=0.0041
                ),
                "sub-model": ModelUsage(
                    calls=4, prompt_tokens=100, completion_tokens=20, cost_usd=0.0004
                ),
            }
        )
        steps = (Step(turn=1, reply=reply1), Step(turn=2, reply=reply2))
        e(
            ev.RunEnded,
            4.6,
            result=AgentResult(content="21", turns=2, usage=usage, trajectory=steps),
        )
    return out


def big_run(n_calls: int, *, prompt_chars: int = 2000, concurrency: int = 16) -> list[ev.Event]:
    """One turn, one cell, one llm_batch of ``n_calls`` long prompts, ``concurrency`` at
    a time; every 50th call fails. For size and scale checks."""
    rid = "big"
    out: list[ev.Event] = [
        ev.RunStarted(
            run_id=rid,
            time=T0,
            question="Classify every record",
            context_info={"type": "list", "items": n_calls},
            model="root-model",
            sub_model="sub-model",
            settings={},
        ),
        ev.TurnStarted(run_id=rid, time=T0 + 0.1, turn=1),
        ev.RootCompletion(
            run_id=rid,
            time=T0 + 1,
            turn=1,
            completion=Completion(content="```repl\nllm_batch(prompts)\n```", model="root-model"),
            latency_s=0.9,
        ),
        ev.CodeStarted(run_id=rid, time=T0 + 1.1, turn=1, cell=1, code="llm_batch(prompts)\n"),
        ev.BatchStarted(run_id=rid, time=T0 + 1.2, batch_id="b", size=n_calls),
    ]
    filler = ("lorem ipsum dolor sit amet " * (prompt_chars // 27 + 1))[:prompt_chars]
    for i in range(n_calls):
        start = T0 + 1.2 + (i // concurrency) * 0.5
        prompt = f"Record {i}: {filler}"
        failed = i % 50 == 49
        out.append(
            ev.SubCallStarted(
                run_id=rid, time=start, call_id=f"k{i}", prompt=prompt, model="m", batch_id="b"
            )
        )
        call = sub_call(
            f"k{i}",
            prompt,
            None if failed else f"label {i % 7}",
            started=start,
            latency=0.4 + (i % 5) * 0.02,
            batch_id="b",
            error="timeout" if failed else None,
            model="m",
        )
        out.append(ev.SubCallEnded(run_id=rid, time=start + call.latency_s, call=call))
    end = T0 + 2 + (n_calls // concurrency) * 0.5
    out += [
        ev.BatchEnded(run_id=rid, time=end, batch_id="b", size=n_calls, failures=n_calls // 50),
        ev.CodeExecuted(
            run_id=rid,
            time=end,
            turn=1,
            cell=1,
            code="llm_batch(prompts)\n",
            result=ExecResult(output="done", duration_s=end - T0 - 1.1),
        ),
        ev.TurnEnded(run_id=rid, time=end, turn=1, observation="done"),
        ev.RunEnded(
            run_id=rid, time=end + 0.1, result=AgentResult(content="done", turns=1, usage=Usage())
        ),
    ]
    return out
