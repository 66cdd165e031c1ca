"""The shipped demo: one fact hidden in about 50,000 characters of generated text.

:func:`make_demo` is deterministic per seed. The context is a log of station reports;
one line holds the answer, and other lines hold the same kind of fact for other rooms
(distractors), so the answer cannot be guessed from the question's words alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

DEFAULT_DEMO_CHARS = 50_000

_SUBJECTS = [
    "The north pump",
    "Valve 3",
    "The east gate",
    "Sensor array B",
    "The generator",
    "The west corridor",
    "Cooling loop 2",
    "The cargo lift",
    "Relay 14",
    "The airlock",
]
_STATES = [
    "was inspected and found nominal",
    "reported a minor pressure drop",
    "was cleaned by the night shift",
    "needs a new filter next week",
    "ran at 82 percent of capacity",
    "was restarted after a brief fault",
    "showed normal readings all day",
    "was logged as idle",
    "passed its monthly test",
    "was scheduled for repainting",
]
_PEOPLE = ["Ada", "Bram", "Chen", "Dalia", "Emeka", "Freya", "Goran", "Hana", "Ivo", "Jun"]


@dataclass(frozen=True, slots=True)
class Demo:
    question: str
    context: str
    answer: str
    seed: int


def make_demo(seed: int = 0, chars: int = DEFAULT_DEMO_CHARS) -> Demo:
    """A question whose answer is one line in ``chars`` characters of text."""
    rng = random.Random(seed)
    rooms = rng.sample(range(10, 100), 8)
    target_room = rooms[0]
    codes = {room: f"{rng.randrange(1000, 10000)}" for room in rooms}
    lines: list[str] = []
    size = 0
    day = 1
    while size < chars:
        line = (
            f"Day {day}, {rng.randrange(0, 24):02d}:{rng.randrange(0, 60):02d} - "
            f"{rng.choice(_SUBJECTS)} {rng.choice(_STATES)} (reported by {rng.choice(_PEOPLE)})."
        )
        lines.append(line)
        size += len(line) + 1
        if rng.random() < 0.05:
            day += 1
    facts = [f"Note: the access code for room {room} is {codes[room]}." for room in rooms]
    for fact in facts:
        lines.insert(rng.randrange(len(lines) // 10, len(lines)), fact)
    return Demo(
        question=f"What is the access code for room {target_room}?",
        context="\n".join(lines) + "\n",
        answer=codes[target_room],
        seed=seed,
    )
