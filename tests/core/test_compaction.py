"""Compaction keeps the root's prompt inside its window (FunctionEngine, real sandbox)."""

from __future__ import annotations

import asyncio

from rlmagent import Completion, EventBus, FunctionEngine, RLMAgent, TokenUsage
from rlmagent.budget import estimate_prompt
from rlmagent.compaction import Compactor, room_for
from rlmagent.events import Compacted

WINDOW = 8_192
MAX_TOKENS = 400


def scripted_run(turns: int, *, sub_calls: bool = True):
    """A root that runs ``turns`` cells, each printing ~3,000 characters, then answers."""
    roots: list[list[dict[str, str]]] = []
    summaries: list[str] = []

    def model(messages, name):
        if len(messages) == 1:  # the compaction's summary sub-call
            summaries.append(messages[0]["content"])
            return f"summary {len(summaries)}: row_k holds turn k's rows"
        roots.append(messages)
        turn = len(roots)  # compaction removes older replies: count the calls
        if turn > turns:
            return "```repl\nFINAL(row_1[:5])\n```"
        return f"```repl\nrow_{turn} = 'r{turn}-' * 750\nprint(row_{turn})\n```"

    bus = EventBus()
    events: list[Compacted] = []
    bus.subscribe(events.append, Compacted)
    engine = FunctionEngine(model, context_window=WINDOW)
    agent = RLMAgent(
        engine,
        "m",
        max_turns=turns + 5,
        max_tokens=MAX_TOKENS,
        bus=bus,
        check_answers=False,
        sub_calls=sub_calls,
    )
    result = agent.run("What does row_1 begin with?", context="c")
    return result, roots, summaries, events


def test_a_40_turn_run_stays_under_the_window():
    result, roots, summaries, events = scripted_run(40)
    assert result.content == "r1-r1"
    assert result.turns == 41
    sizes = [estimate_prompt(m) for m in roots]
    assert max(sizes) <= WINDOW - MAX_TOKENS
    assert max(sizes) <= room_for(WINDOW, MAX_TOKENS)
    # without compaction the prompts would have grown past the window
    assert sum(len(m["content"]) for m in roots[-1][2:]) < 40 * 3_000 / 4
    assert events and all(e.tokens_after < e.tokens_before for e in events)
    assert any(e.folded for e in events) and summaries
    for messages in roots:  # the question and the latest turn are always there
        assert "What does row_1 begin with?" in messages[1]["content"]
    last = roots[-1]
    assert "row_40 = " in last[-2]["content"] and "r40-" in last[-1]["content"]
    assert "summary" in last[1]["content"]
    assert result.metadata["compactions"] == [e.note for e in events]


def test_without_sub_calls_older_turns_are_dropped_with_a_note():
    _, roots, summaries, events = scripted_run(30, sub_calls=False)
    assert summaries == []
    assert max(estimate_prompt(m) for m in roots) <= room_for(WINDOW, MAX_TOKENS)
    folded = [e for e in events if e.folded]
    assert folded and all(e.summary is None for e in folded)
    first = roots[-1][1]["content"]
    assert "no summary could be made" in first and "row_1 = " in first


def test_short_turns_are_kept_and_long_outputs_shrunk_first():
    long = "x" * 4_000
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "Question: q"},
    ]
    for k in range(1, 7):
        messages.append({"role": "assistant", "content": f"```repl\nprint(v{k})\n```"})
        messages.append({"role": "user", "content": long if k % 2 else f"short {k}"})
    compactor = Compactor(4_000, 200, "q", None)
    done = asyncio.run(compactor.fit(messages))
    assert done is not None and done.folded == () and done.shrunk == (1, 3)
    text = [m["content"] for m in messages]
    assert "short 2" in text and "short 4" in text
    assert text[-3] == long  # the latest turns (5 and 6) are kept whole
    assert "characters of output removed" in text[3]
    assert all(f"print(v{k})" in "".join(text) for k in range(1, 7))


def test_nothing_is_compacted_when_it_fits_or_the_window_is_unknown():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    assert asyncio.run(Compactor(8_192, 200, "q", None).fit(list(messages))) is None
    result, _, _, events = scripted_run(3)
    assert events == [] and result.content == "r1-r1"


def test_the_estimate_is_calibrated_by_the_prompt_tokens_the_engine_reports():
    """An engine whose tokenizer counts 2.5 tokens where the estimate says 1: the prompts
    it reports stay under its window too."""
    reported: list[int] = []

    def model(messages, name):
        if len(messages) == 1:
            return "summary: row_k holds turn k's rows"
        tokens = int(estimate_prompt(messages) * 2.5)
        reported.append(tokens)
        turn = len(reported)
        code = "FINAL('done')" if turn > 30 else f"row_{turn} = 'x' * 3000\nprint(row_{turn})"
        return Completion(
            content=f"```repl\n{code}\n```",
            model=name,
            usage=TokenUsage(prompt_tokens=tokens, completion_tokens=20),
        )

    engine = FunctionEngine(model, context_window=WINDOW)
    agent = RLMAgent(engine, "m", max_turns=35, max_tokens=MAX_TOKENS, check_answers=False)
    result = agent.run("q", context="c")
    assert result.content == "done"
    assert len(reported) == 31
    assert max(reported) <= WINDOW - MAX_TOKENS


def test_a_compaction_is_a_notice_in_the_trajectory_file(tmp_path):
    from rlmagent.trace import Trajectory

    calls: list[int] = []

    def model(messages, name):
        if len(messages) == 1:
            return "summary"
        calls.append(1)
        turn = len(calls)
        if turn > 12:
            return "```repl\nFINAL('done')\n```"
        return f"```repl\nprint('{turn}' * 3000)\n```"

    path = tmp_path / "run.jsonl"
    engine = FunctionEngine(model, context_window=4_096)
    agent = RLMAgent(engine, "m", max_turns=40, trace=path, check_answers=False)
    assert agent.run("q", context="c").content == "done"
    root = Trajectory.load(path).root
    assert root is not None
    assert any(n.startswith("compaction before turn") for n in root.notices)
    lines = path.read_text().splitlines()
    assert any('"type": "Compacted"' in line for line in lines)
