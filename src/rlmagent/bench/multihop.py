"""``multihop``: a BrowseComp-style corpus with a two- or three-hop chain of facts.

The corpus is K short documents about landmarks, companies and people. The question
follows a chain: the landmark was *built by* a company, the company was *founded by* a
person, the person was *born in* a city. Two hops ask for the founder, three for the
birthplace. Hard negatives share surface words with the chain: a landmark with the same
name and another kind (``Orlen Tower`` beside ``Orlen Bridge``), a company with the same
name and another suffix, people who share the founder's first or last name, a document
saying who *restored* the landmark, another saying where the founder *lived*. Every
other document belongs to a random chain of its own. Scored by normalised exact match.
"""

from __future__ import annotations

import random

from rlmagent.bench.items import BenchItem, item_id, item_rng, target_chars
from rlmagent.bench.text import SentencePool, unique_names

TASK = "multihop"
DESCRIPTION = "BrowseComp-style corpus: follow a 2-3 hop chain of facts past hard negatives"
LANDMARK_KINDS = ("Bridge", "Tower", "Library", "Observatory", "Aqueduct", "Lighthouse", "Theatre")
COMPANY_KINDS = ("Works", "Foundry", "Builders", "Masonry", "Ironworks", "Engineering")
BUILT = (
    "The {a} was built by {b} in {year}.",
    "{b} built the {a}, finishing it in {year}.",
    "Construction of the {a} was carried out by {b}.",
)
FOUNDED = (
    "{a} was founded by {b} in {year}.",
    "{b} founded {a} in {year}.",
    "The founder of {a} was {b}.",
)
BORN = (
    "{a} was born in {b}.",
    "{a}, who was born in {b}, worked there until {year}.",
    "{b} is the birthplace of {a}.",
)
RESTORED = "The {a} was restored by {b} in {year}."
LIVED = "{a} lived in {b} for many years."
QUESTIONS = {
    2: (
        "Who founded the company that built the {landmark}? "
        "Answer with the person's full name only."
    ),
    3: (
        "In which city was the founder of the company that built the {landmark} born? "
        "Answer with the city name only."
    ),
}
DOC_CHARS = 800


class _Names:
    """Name pools for one corpus; full names handed out at most once per role."""

    def __init__(self, rng: random.Random, docs: int) -> None:
        self.rng = rng
        self.roots = unique_names(rng, max(200, docs // 2))
        self.firsts = unique_names(rng, 120)
        self.lasts = unique_names(rng, max(200, docs // 3), syllables=3)
        self.cities = unique_names(rng, max(100, docs // 6))
        self.used: set[str] = set()

    def _fresh(self, make: object) -> str:
        for _ in range(1000):
            candidate = make()  # type: ignore[operator]
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        raise RuntimeError("ran out of fresh names; the name pools are too small")

    def landmark(self, root: str | None = None) -> str:
        r = self.rng
        return self._fresh(lambda: f"{root or r.choice(self.roots)} {r.choice(LANDMARK_KINDS)}")

    def company(self, root: str | None = None) -> str:
        r = self.rng
        return self._fresh(lambda: f"{root or r.choice(self.roots)} {r.choice(COMPANY_KINDS)}")

    def person(self, first: str | None = None, last: str | None = None) -> str:
        r = self.rng
        return self._fresh(
            lambda: f"{first or r.choice(self.firsts)} {last or r.choice(self.lasts)}"
        )

    def city(self) -> str:
        return self.rng.choice(self.cities)


def _fact(rng: random.Random, templates: tuple[str, ...], a: str, b: str) -> str:
    return rng.choice(templates).format(a=a, b=b, year=rng.randrange(1780, 1990))


def generate(tokens: int, seed: int, index: int, *, hops: int | None = None) -> BenchItem:
    """One ``multihop`` item; ``hops`` (2 or 3) alternates with ``index`` by default."""
    rng = item_rng(TASK, tokens, seed, index)
    hops = hops or 2 + index % 2
    if hops not in QUESTIONS:
        raise ValueError(f"multihop supports 2 or 3 hops, got {hops}")
    budget = target_chars(tokens)
    n_docs = max(12, budget // DOC_CHARS)
    names = _Names(rng, n_docs)
    year = rng.randrange

    # The chain and its hard negatives.
    root_l, root_c = rng.sample(names.roots, 2)
    landmark = names.landmark(root_l)
    company = names.company(root_c)
    founder = names.person()
    city = names.city()
    first, last = founder.split(" ", 1)
    twin_landmark = names.landmark(root_l)
    twin_company = names.company(root_c)
    same_first = names.person(first=first)
    same_last = names.person(last=last)
    other_cities = [c for c in names.cities if c != city]
    docs: list[tuple[str, list[str]]] = [
        (landmark, [_fact(rng, BUILT, landmark, company)]),
        (company, [_fact(rng, FOUNDED, company, founder)]),
        (founder, [_fact(rng, BORN, founder, city)]),
        (twin_landmark, [_fact(rng, BUILT, twin_landmark, twin_company)]),
        (twin_company, [_fact(rng, FOUNDED, twin_company, same_first)]),
        (same_first, [_fact(rng, BORN, same_first, rng.choice(other_cities))]),
        (same_last, [_fact(rng, BORN, same_last, rng.choice(other_cities))]),
        (
            f"Repairs in {rng.choice(other_cities)}",
            [RESTORED.format(a=landmark, b=twin_company, year=year(1900, 2000))],
        ),
        (
            f"Letters of {founder}",
            [LIVED.format(a=founder, b=rng.choice(other_cities))],
        ),
    ]
    # Random chains fill the rest of the corpus.
    while len(docs) < n_docs:
        a, b, c = names.landmark(), names.company(), names.person()
        docs.append((a, [_fact(rng, BUILT, a, b)]))
        docs.append((b, [_fact(rng, FOUNDED, b, c)]))
        docs.append((c, [_fact(rng, BORN, c, names.city())]))
    rng.shuffle(docs)

    pool = SentencePool(rng)
    per_doc = max(200, budget // len(docs))
    rendered: list[str] = []
    for number, (title, facts) in enumerate(docs, 1):
        header = f"## Document {number}: {title}"
        spare = per_doc - len(header) - sum(len(f) + 1 for f in facts) - pool.mean / 2
        body = pool.take(rng, int(spare))
        for fact in facts:
            body.insert(rng.randrange(len(body) + 1), fact)
        rendered.append(header + "\n" + " ".join(body))
    gold = founder if hops == 2 else city
    return BenchItem(
        task=TASK,
        item_id=item_id(TASK, tokens, seed, index),
        tokens=tokens,
        seed=seed,
        index=index,
        context="\n\n".join(rendered),
        question=QUESTIONS[hops].format(landmark=landmark),
        gold=gold,
        scoring="exact",
        meta={
            "hops": hops,
            "chain": [landmark, company, founder, city],
            "negatives": [twin_landmark, twin_company, same_first, same_last],
            "documents": len(docs),
        },
    )
