"""What a session costs over plain runs: the turn, a question's start, a large context.

    python benchmarks/bench_session.py [--rounds 5] [--turns 30] [--mb 20]

- **turn**: a ScriptedEngine root runs ``--turns`` one-line cells then answers, as one
  plain run and as one question of a session (which also lists the REPL's variables
  after each cell); the median of the per-turn time over ``--rounds`` rounds.
- **a 1-turn question**: in a session whose sandbox runs (the setup cell and the
  variable listing) against a plain run (a fresh sandbox each time).
- **staging**: ``add_context`` of a ``--mb`` MB text, read into the REPL in pieces at
  the next question, against the same text as the first context (staged as a file).
Default sandbox (bubblewrap where it works).
"""

from __future__ import annotations

import argparse
import statistics
import time

from rlmagent import RLMAgent, ScriptedEngine


def replies(turns: int) -> list[str]:
    cells = [f"```repl\nv{i} = {i}\nprint(v{i})\n```" for i in range(turns)]
    return [*cells, "```repl\nFINAL('done')\n```"]


def plain_turn(turns: int) -> float:
    agent = RLMAgent(ScriptedEngine(replies(turns)), "m", check_answers=False, max_turns=turns + 5)
    t0 = time.perf_counter()
    assert agent.run("q", context="c").content == "done"
    return (time.perf_counter() - t0) / (turns + 1)


def session_turn(turns: int) -> tuple[float, float]:
    """Per-turn time of a ``turns``-cell question, and a 1-turn question's time, in a
    session whose sandbox already runs."""
    final = "```repl\nFINAL(1)\n```"
    engine = ScriptedEngine([final, final, *replies(turns)])
    agent = RLMAgent(engine, "m", check_answers=False, max_turns=turns + 5)
    with agent.session(context="c") as session:
        session.ask("warm up")  # starts the sandbox
        t0 = time.perf_counter()
        session.ask("one turn")
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = session.ask("q")
        total = time.perf_counter() - t0
    assert result.content == "done"
    return total / (turns + 1), one


def staging(mb: int) -> tuple[float, float]:
    text = ("0123456789abcdef" * 64 + "\n") * (mb * 1024 * 1024 // 1025)
    engine = ScriptedEngine(["```repl\nFINAL(len(context))\n```"] * 2)
    agent = RLMAgent(engine, "m", check_answers=False)
    t0 = time.perf_counter()
    with agent.session(context=text) as session:
        session.ask("q")
    as_first = time.perf_counter() - t0
    engine = ScriptedEngine(["```repl\nFINAL(1)\n```", "```repl\nFINAL(len(contexts['big']))\n```"])
    agent = RLMAgent(engine, "m", check_answers=False)
    with agent.session(context="c") as session:
        session.ask("warm up")
        session.add_context("big", text)
        t0 = time.perf_counter()
        answer = session.ask("q").content
        added = time.perf_counter() - t0
    assert answer == str(len(text)), answer
    return as_first, added


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    plain, kept, ones, seconds = [], [], [], []
    for _ in range(args.rounds):  # interleaved, so that load affects both alike
        plain.append(plain_turn(args.turns))
        turn, one = session_turn(args.turns)
        kept.append(turn)
        ones.append(one)
        agent = RLMAgent(ScriptedEngine(["```repl\nFINAL(1)\n```"]), "m", check_answers=False)
        t0 = time.perf_counter()
        agent.run("q", context="c")
        seconds.append(time.perf_counter() - t0)
    ms = statistics.median
    # a turn's cost: (the many-turn question - the 1-turn one) / the extra turns
    plain_turns = [
        (p * (args.turns + 1) - o) / args.turns for p, o in zip(plain, seconds, strict=True)
    ]
    kept_turns = [(k * (args.turns + 1) - o) / args.turns for k, o in zip(kept, ones, strict=True)]
    print(
        f"a turn: plain run {ms(plain_turns) * 1000:.2f} ms; "
        f"in a session {ms(kept_turns) * 1000:.2f} ms (the variables listed after each cell)"
    )
    print(
        f"a 1-turn question: plain run (a fresh sandbox) {ms(seconds) * 1000:.1f} ms; "
        f"in a session (its sandbox kept) {ms(ones) * 1000:.1f} ms"
    )
    first, added = staging(args.mb)
    print(
        f"{args.mb} MB context: as the first context, session open + 1-turn question "
        f"{first:.2f} s; add_context then a 1-turn question {added:.2f} s"
    )


if __name__ == "__main__":
    main()
