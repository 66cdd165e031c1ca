"""The root's prompt size turn by turn over a scripted 40-turn run, with compaction.

    python benchmarks/bench_compaction.py [--turns 40] [--window 8192] [--output-chars 3000]

A FunctionEngine root with a declared window runs ``--turns`` cells, each printing
``--output-chars`` characters, then answers. For each root call it records the prompt
size as the compaction estimates it (4 characters a token) and, when the local model's
file is on this machine, as the local model's own tokenizer counts it (vocabulary only:
no weights are loaded). The same run without a declared window (no compaction) shows
what the prompt would have grown to.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from rlmagent import Completion, EventBus, FunctionEngine, RLMAgent, TokenUsage
from rlmagent.budget import estimate_prompt
from rlmagent.compaction import room_for
from rlmagent.events import Compacted

MAX_TOKENS = 384


def tokenizer():
    """The local model's tokenizer and chat template, or None without the model file."""
    try:
        from llama_cpp import Llama

        from rlmagent.engines.model_files import default_cache_dir
    except ImportError:
        return None
    path = Path(default_cache_dir()) / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    if not path.is_file():
        return None
    llama = Llama(str(path), vocab_only=True, verbose=False)

    def count(messages: list[dict[str, str]]) -> int:
        text = "".join(
            f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages
        )  # Qwen's chat template, which the local engine applies
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    return count


def output_code(turn: int, chars: int, kind: str) -> str:
    """A cell that defines ``row_<turn>`` and prints about ``chars`` characters of it."""
    if kind == "repeat":  # text a tokenizer cuts into many short tokens
        repeat = max(1, chars // (len(str(turn)) + 2))
        return f"row_{turn} = 'r{turn}-' * {repeat}\nprint(row_{turn})"
    lines = max(1, chars // 62)  # log lines, as a search over a context prints them
    return (
        f"row_{turn} = '\\n'.join(f'2026-11-{{1 + i % 28:02d}} INFO worker-{{i % 7}} job "
        f"{turn}{{i:04d}} done in {{(i * 37) % 900}} ms' for i in range({lines}))\n"
        f"print(row_{turn})"
    )


def run(
    turns: int, window: int | None, chars: int, kind: str, count: Callable[..., int] | None
) -> tuple[list[list[dict[str, str]]], list[Compacted]]:
    roots: list[list[dict[str, str]]] = []

    def model(messages, name):
        if len(messages) == 1:  # the compaction's summary sub-call
            return "row_1 .. row_k hold the rows of turns 1..k; row_1 begins 'r1-r1'."
        roots.append([dict(m) for m in messages])
        turn = len(roots)
        code = "FINAL(row_1[:5])" if turn > turns else output_code(turn, chars, kind)
        reply = f"```repl\n{code}\n```"
        if count is None:
            return reply
        # report the prompt tokens as the local engine would: counted by its tokenizer
        usage = TokenUsage(prompt_tokens=count(messages), completion_tokens=len(reply) // 4)
        return Completion(content=reply, model=name, usage=usage)

    bus = EventBus()
    events: list[Compacted] = []
    bus.subscribe(events.append, Compacted)
    engine = FunctionEngine(model, context_window=window)
    agent = RLMAgent(
        engine,
        "m",
        max_turns=turns + 5,
        max_tokens=MAX_TOKENS,
        max_output_chars=chars + 500,
        bus=bus,
        check_answers=False,
    )
    result = agent.run("What does row_1 begin with?", context="c")
    assert result.content == row_1_head(kind), result.content
    return roots, events


def row_1_head(kind: str) -> str:
    return "r1-r1" if kind == "repeat" else "2026-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--window", type=int, default=8192)
    parser.add_argument("--output-chars", type=int, default=3000)
    parser.add_argument("--kind", choices=("log", "repeat"), default="log")
    args = parser.parse_args()
    count = tokenizer()
    t0 = time.perf_counter()
    roots, events = run(args.turns, args.window, args.output_chars, args.kind, count)
    wall = time.perf_counter() - t0
    plain, _ = run(args.turns, None, args.output_chars, args.kind, None)
    room = room_for(args.window, MAX_TOKENS)
    print(
        f"{args.kind} outputs of {args.output_chars:,} characters; window {args.window:,}, "
        f"reply room {MAX_TOKENS}, compaction room {room:,}; {len(events)} compactions; "
        f"run {wall:.2f} s"
    )
    print("call  estimated  local-tokenizer  without-compaction(estimated)")
    real = [count(m) if count else None for m in roots]
    for i, messages in enumerate(roots):
        grown = estimate_prompt(plain[i]) if i < len(plain) else 0
        shown = "-" if real[i] is None else f"{real[i]:,}"
        print(f"{i + 1:>4}  {estimate_prompt(messages):>9,}  {shown:>15}  {grown:>10,}")
    print(f"max estimated {max(estimate_prompt(m) for m in roots):,} of window {args.window:,}")
    if count:
        print(f"max by the local tokenizer {max(t for t in real if t):,} of {args.window:,}")
    print(f"without compaction: max estimated {max(estimate_prompt(m) for m in plain):,}")
    for e in events:
        print(f"  call {e.turn}: {e.note}")


if __name__ == "__main__":
    main()
