"""Word pools and fast filler text shared by the task generators.

Everything here draws from a :class:`random.Random` passed in, so a generator's output
depends on its seed only. Long texts are built from a pool of pre-made sentences with
``rng.choices`` and one ``join``: a million estimated tokens (~4 MB) take well under
a second.
"""

from __future__ import annotations

import random


def words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``text``."""
    return tuple(text.split())


ADJECTIVES = words(
    "quiet amber brisk silver hollow narrow golden rusty gentle bitter distant frozen "
    "crimson pale woven bright humble ancient sudden patient hidden steady rapid "
    "lonely velvet copper northern southern eastern western loyal clever shallow "
    "ivory dusty restless early modest plain"
)

NOUNS = words(
    "harbor meadow lantern river valley orchard engine ledger compass garden bridge "
    "tower village market canal forest mirror window ladder kettle saddle anchor "
    "beacon cellar chapel quarry harvest signal thimble violin workshop archive "
    "basket caravan falcon heron island journal kiln mill parcel pillar"
)

VERBS = words(
    "carried watched repaired painted followed measured opened crossed described "
    "collected moved gathered counted noticed borrowed traded mended sketched "
    "visited cleaned"
)

PREPOSITIONS = words("near beside behind across beyond under above around")

TIMES = (
    "in the morning",
    "after the rain",
    "before the market opened",
    "during the winter",
    "at dusk",
    "on most days",
    "every autumn",
    "late in the evening",
    "in early spring",
    "once the bells rang",
    "without a word",
    "for many years",
)

SYLLABLES = words(
    "al an ar bel bran cal dor el en fal gar hal ir jor kal lin mar mor nel or "
    "par quin ras sel tor ul var vel wen yor zan bri cor dal fen gil hest ken lum "
    "nor ost pel rin sten tam ved wil"
)


def sentence(rng: random.Random) -> str:
    """One plain filler sentence, e.g. ``"The rusty kettle crossed the bridge at dusk."``."""
    adjective, noun = rng.choice(ADJECTIVES), rng.choice(NOUNS)
    verb, other = rng.choice(VERBS), rng.choice(NOUNS)
    form = rng.randrange(4)
    if form == 0:
        return f"The {adjective} {noun} {verb} the {other} {rng.choice(TIMES)}."
    if form == 1:
        place = rng.choice(NOUNS)
        article = "An" if noun[0] in "aeiou" else "A"
        return (
            f"{article} {noun} {rng.choice(PREPOSITIONS)} the {place} was {verb} "
            f"{rng.choice(TIMES)}."
        )
    if form == 2:
        return (
            f"Nobody {verb} the {adjective} {other}, so the {noun} stayed "
            f"{rng.choice(PREPOSITIONS)} the {rng.choice(NOUNS)}."
        )
    return f"Some say the {noun} was {adjective} {rng.choice(TIMES)}, and others {verb} it."


class SentencePool:
    """Pre-made filler sentences, sampled to fill a character budget."""

    def __init__(self, rng: random.Random, size: int = 3000) -> None:
        self.sentences = [sentence(rng) for _ in range(size)]
        self.mean = sum(len(s) + 1 for s in self.sentences) / size

    def take(self, rng: random.Random, n_chars: int) -> list[str]:
        """Sentences whose lengths, plus one space each, just reach ``n_chars``."""
        if n_chars <= 0:
            return []
        out = rng.choices(self.sentences, k=max(1, int(n_chars / self.mean)))
        total = sum(len(s) + 1 for s in out)
        while total < n_chars:
            extra = rng.choice(self.sentences)
            out.append(extra)
            total += len(extra) + 1
        while len(out) > 1 and total - (len(out[-1]) + 1) >= n_chars:
            total -= len(out.pop()) + 1
        return out


def paragraphs(rng: random.Random, sentences: list[str], low: int = 3, high: int = 8) -> str:
    """Join sentences into paragraphs of ``low``..``high`` sentences."""
    parts: list[str] = []
    i = 0
    while i < len(sentences):
        step = rng.randint(low, high)
        parts.append(" ".join(sentences[i : i + step]))
        i += step
    return "\n\n".join(parts)


def filler(rng: random.Random, n_chars: int, pool: SentencePool | None = None) -> str:
    """About ``n_chars`` characters of paragraphs of filler sentences."""
    pool = pool or SentencePool(rng)
    return paragraphs(rng, pool.take(rng, n_chars))


def name(rng: random.Random, syllables: int = 2) -> str:
    """An invented capitalised name such as ``"Valdor"``."""
    return "".join(rng.choice(SYLLABLES) for _ in range(syllables)).capitalize()


def unique_names(rng: random.Random, count: int, syllables: int = 2) -> list[str]:
    """``count`` distinct invented names (more syllables when the pool runs short)."""
    seen: set[str] = set()
    out: list[str] = []
    attempts = 0
    while len(out) < count:
        extra = attempts // (count * 4 + 50)  # widen the space if collisions pile up
        candidate = name(rng, syllables + extra)
        attempts += 1
        if candidate not in seen:
            seen.add(candidate)
            out.append(candidate)
    return out
