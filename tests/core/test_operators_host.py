"""The semantic operators and the window guard inside a real run (REPL -> host -> engine)."""

from __future__ import annotations

import re

from rlmagent import Budget, EventBus, FunctionEngine, RLMAgent, ScriptedEngine
from rlmagent.events import BatchEnded, Notice, SubCallEnded
from rlmagent.sandbox import InProcessSandbox

TICKETS = "\n".join(
    [
        "I was charged twice this month",
        "my parcel never arrived",
        "the app crashes on start",
        "refund still missing",
        "courier left the box in the rain",
    ]
)
TOPIC = {"charged": "billing", "refund": "billing", "parcel": "delivery", "courier": "delivery"}


def topic(line: str) -> str:
    return next((t for k, t in TOPIC.items() if k in line), "technical")


def classifier(messages, model) -> str:
    """Answers a packed or single classify prompt by keyword: one numbered line per item
    it finds (an item's number leads its line), or the bare label of a single item."""
    prompt = messages[-1]["content"]
    found = []
    for line in prompt.splitlines():
        ticket = next((t for t in TICKETS.splitlines() if t in line), None)
        if ticket is not None:
            number = re.match(r"\W*(\d+)", line)
            found.append((number.group(1) if number else None, topic(ticket)))
    if len(found) == 1 and found[0][0] is None:
        return found[0][1]
    return "\n".join(f"{number}: {label}" for number, label in found) or "billing"


def run_cell(code: str, sub, **kwargs):
    root = ScriptedEngine([f"```repl\n{code}\n```", "```repl\nFINAL('done')\n```"])
    agent = RLMAgent(root, "m", sub_engine=sub, sandbox=InProcessSandbox(), **kwargs)
    result = agent.run("q", context=TICKETS)
    return result, result.trajectory[0].cells[0]


def test_llm_classify_keeps_order_through_the_host_and_records_sub_calls() -> None:
    bus = EventBus()
    events: list = []
    bus.subscribe(events.append)
    code = (
        "labels = llm_classify(context.splitlines(), ['billing', 'delivery', 'technical'])\n"
        "print(labels)"
    )
    result, cell = run_cell(code, FunctionEngine(classifier), bus=bus)
    assert cell.result.error is None, cell.result.error
    assert cell.result.output.strip() == str([topic(t) for t in TICKETS.splitlines()])
    assert cell.sub_calls and all(c.answer for c in cell.sub_calls)
    assert any(isinstance(e, BatchEnded) and e.failures == 0 for e in events)
    sub_events = [e for e in events if isinstance(e, SubCallEnded)]
    assert len(sub_events) == len(cell.sub_calls)
    assert result.usage.calls == 2 + len(cell.sub_calls)


def test_unreadable_answers_are_counted_in_the_output_and_as_a_notice() -> None:
    bus = EventBus()
    notices: list[str] = []
    bus.subscribe(lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    code = "print(llm_classify(context.splitlines(), ['billing', 'delivery']))"
    _, cell = run_cell(code, FunctionEngine(lambda m, model: "no idea"), bus=bus)
    assert "None" in cell.result.output
    assert "[llm_classify: 5 of 5 answers could not be parsed" in cell.result.output
    assert any(n.startswith("llm_classify:") for n in notices)


def test_bad_operator_input_is_an_error_in_the_cell_not_a_host_failure() -> None:
    for code, words in [
        ("llm_classify('not a list', ['a'])", "list"),
        ("llm_classify(['x'], [])", "label"),
        ("llm_filter(['x'], 42)", "condition"),
        ("llm_map(['x'])", "instruction"),
    ]:
        result, cell = run_cell(code, FunctionEngine(classifier))
        assert cell.result.error is not None and words in cell.result.error, (code, cell)
        assert result.content == "done"


def test_operators_respect_the_budget() -> None:
    sub_calls = []

    def counting(messages, model):
        sub_calls.append(1)
        return classifier(messages, model)

    many = "print(llm_classify(context.splitlines() * 40, ['billing', 'delivery', 'technical']))"
    result, cell = run_cell(many, FunctionEngine(counting), budget=Budget(max_calls=6))
    assert result.usage.calls <= 6
    assert "BudgetExceeded" in cell.result.output or "None" in cell.result.output


def test_a_prompt_longer_than_the_sub_window_fails_fast_without_a_call() -> None:
    calls = []
    sub = FunctionEngine(lambda m, model: calls.append(1) or "ok", context_window=1_000)
    result, cell = run_cell("print(llm_query(context * 200))", sub, sub_max_tokens=200)
    assert calls == [] and cell.sub_calls == ()
    error = cell.result.error or ""
    assert "1,000-token window" in error and "chunks(" in error
    assert result.usage.calls == 2  # the two root turns only


def test_operators_never_build_a_prompt_past_the_sub_window() -> None:
    longest = []

    def answer(messages, model):
        longest.append(len(messages[-1]["content"]))
        return classifier(messages, model)

    sub = FunctionEngine(answer, context_window=2_000)
    code = "print(llm_classify([l * 30 for l in context.splitlines()], ['billing', 'delivery']))"
    _, cell = run_cell(code, sub, sub_max_tokens=500)
    assert cell.result.error is None, cell.result.error
    assert longest and max(longest) // 4 + 500 <= 2_000
