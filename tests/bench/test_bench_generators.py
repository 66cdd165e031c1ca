"""Task generators: deterministic per seed, sized as asked, gold answers right.

Gold answers are recomputed here from the generated *text* only (parsed with regular
expressions written for these tests), never from the generator's internal records.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from rlmagent.bench import TASKS, generate_items, read_items, write_items
from rlmagent.bench.items import parse_token_list, parse_tokens
from rlmagent.bench.oolong import TEMPLATES
from rlmagent.errors import UsageError

SIZES = (2048, 16384)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_same_items_other_seed_other_items(task: str) -> None:
    first = [i.to_json() for i in generate_items(task, 4096, 3, seed=7)]
    again = [i.to_json() for i in generate_items(task, 4096, 3, seed=7)]
    other = [i.to_json() for i in generate_items(task, 4096, 3, seed=8)]
    assert first == again
    assert all(a["context"] != b["context"] for a, b in zip(first, other, strict=True))
    assert len({i["context"] for i in first}) == 3  # items differ from each other
    # item i does not depend on how many items were asked for
    assert generate_items(task, 4096, 1, seed=7)[0].to_json() == first[0]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("tokens", SIZES)
def test_contexts_have_the_size_asked_for(task: str, tokens: int) -> None:
    for item in generate_items(task, tokens, 2, seed=1):
        assert abs(len(item.context) / 4 - tokens) <= 0.05 * tokens, (
            item.item_id,
            len(item.context),
        )
        assert item.context_tokens == (len(item.context) + 3) // 4


def test_items_round_trip_through_jsonl(tmp_path: Path) -> None:
    items = generate_items("oolong-pairs", 2048, 2) + generate_items("codeqa", 2048, 2)
    path = tmp_path / "items.jsonl"
    assert write_items(items, path) == 4
    assert [i.to_json() for i in read_items(path)] == [i.to_json() for i in items]


def test_sizes_parse_as_powers_of_two_and_bad_ones_are_named() -> None:
    assert parse_token_list("8k, 32K,1m") == [8192, 32768, 1048576]
    assert parse_tokens("5000") == 5000
    with pytest.raises(UsageError, match="cannot read 'lots'"):
        parse_tokens("lots")
    with pytest.raises(UsageError, match="at least 256"):
        parse_tokens("100")
    with pytest.raises(UsageError, match=r"unknown benchmark task 'nope'.*sniah"):
        generate_items("nope", 2048, 1)


# --- sniah ------------------------------------------------------------------------------

NEEDLE = re.compile(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d+)\.")


@pytest.mark.parametrize("tokens", SIZES)
def test_sniah_gold_is_the_value_of_the_asked_key(tokens: int) -> None:
    for item in generate_items("sniah", tokens, 5, seed=3):
        key = re.search(r"magic number for (\S+) mentioned", item.question).group(1)
        needles = NEEDLE.findall(item.context)
        values = [v for k, v in needles if k == key]
        assert values == [item.gold]  # exactly one needle for the key
        others = {k: v for k, v in needles if k != key}
        assert len(others) >= 3
        # distractor keys share a word with the real key
        assert any(k.split("-")[0] == key.split("-")[0] for k in others)
        assert any(k.split("-")[1] == key.split("-")[1] for k in others)
        assert item.gold not in others.values()
        position = item.context.index(f"for {key} is:") / len(item.context)
        assert position == pytest.approx(item.meta["depth"], abs=0.03)


def test_sniah_depth_can_be_chosen() -> None:
    item = TASKS["sniah"].generate(8192, 0, 0, depth=0.0)
    assert item.context.index(f"for {item.meta['key']} is:") < 200
    item = TASKS["sniah"].generate(8192, 0, 0, depth=1.0)
    assert item.context.index(f"for {item.meta['key']} is:") > len(item.context) - 200


# --- oolong and oolong-pairs ------------------------------------------------------------

LINE = re.compile(r"^Date: (\w{3} \d{2}, (\d{4})) \|\| User: (\d+) \|\| Instance: (.+)$")
SLOTS = {
    "place": r"[A-Z][a-z]+",
    "event": r"[A-Z][a-z]+ [A-Z][a-z]+ [A-Z][a-z]+",
    "org": r"[A-Z][a-z]+ [A-Z][a-z]+",
    "thing": r"[a-z]+ [a-z]+",
    "abbr": r"[A-Z]{3,4}",
}


def _template_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for label, templates in TEMPLATES.items():
        for template in templates:
            parts = re.split(r"\{(\w+)\}", template)
            regex = "".join(
                SLOTS[part] if i % 2 else re.escape(part) for i, part in enumerate(parts)
            )
            patterns.append((re.compile(f"^{regex}$"), label))
    return patterns


PATTERNS = _template_patterns()


def _parse(context: str) -> list[tuple[str, int, int, str]]:
    """(date, year, user, label) of every line, the label read back from the text."""
    rows = []
    for line in context.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        date, year, user, text = match.groups()
        labels = {label for pattern, label in PATTERNS if pattern.match(text)}
        assert len(labels) == 1, (text, labels)  # every instance reads as exactly one label
        rows.append((date, int(year), int(user), labels.pop()))
    return rows


def _days(date: str) -> int:
    import datetime as dt

    return dt.datetime.strptime(date, "%b %d, %Y").toordinal()


@pytest.mark.parametrize("tokens", SIZES)
def test_oolong_gold_recomputed_from_the_text(tokens: int) -> None:
    directions: set[str] = set()
    for item in generate_items("oolong", tokens, 36, seed=5):
        rows = _parse(item.context)
        assert len(rows) > 50
        counts = Counter(label for _, _, _, label in rows)
        kind, meta = item.meta["kind"], item.meta
        if kind == "count":
            assert item.gold == counts[meta["label"]]
        elif kind == "most_frequent":
            assert item.gold == max(counts, key=counts.__getitem__)
            assert sorted(counts.values())[-1] > sorted(counts.values())[-2]
        elif kind == "least_frequent":
            assert item.gold == min(counts, key=counts.__getitem__)
        elif kind == "compare":
            a, b = meta["labels"]
            expected = "more common than" if counts[a] > counts[b] else "less common than"
            assert counts[a] != counts[b]
            assert item.gold == expected
            assert f"label '{a}' more common" in item.question
        elif kind == "user_count":
            user = meta["user"]
            assert str(user) in item.question
            assert item.gold == sum(
                1 for _, _, u, lab in rows if u == user and lab == meta["label"]
            )
        elif kind == "date_count":
            low = _days(meta["cutoff"])
            high = _days(meta.get("cutoff_end", meta["cutoff"]))
            inside = {
                "before": lambda d, low=low: d < low,
                "after": lambda d, low=low: d > low,
                "between": lambda d, low=low, high=high: low < d < high,
            }[meta["direction"]]
            assert f"strictly {meta['direction']} {meta['cutoff']}" in item.question
            assert item.gold == sum(
                1 for date, _, _, lab in rows if lab == meta["label"] and inside(_days(date))
            )
            directions.add(meta["direction"])
        else:
            pytest.fail(f"unexpected kind {kind}")
    assert directions == {"before", "after", "between"}
    kinds = {i.meta["kind"] for i in generate_items("oolong", 2048, 6)}
    assert kinds == {
        "count",
        "most_frequent",
        "least_frequent",
        "compare",
        "user_count",
        "date_count",
    }


def test_oolong_labels_cannot_be_read_from_single_keywords() -> None:
    """The words a keyword search would try appear under several labels."""
    rows = _parse(generate_items("oolong", 16384, 1)[0].context)
    lines = [
        line
        for line in generate_items("oolong", 16384, 1)[0].context.splitlines()
        if "Instance:" in line
    ]
    for word in ("name", "city", "flag", "first"):
        labels = {
            lab for line, (_, _, _, lab) in zip(lines, rows, strict=True) if f" {word} " in line
        }
        assert len(labels) >= 3, (word, labels)


@pytest.mark.parametrize("tokens", SIZES)
def test_oolong_pairs_gold_recomputed_from_the_text(tokens: int) -> None:
    for item in generate_items("oolong-pairs", tokens, 6, seed=2):
        rows = _parse(item.context)
        meta = item.meta
        labels = set(meta["labels"])
        wanted_year = meta.get("year")
        per_user: Counter[int] = Counter()
        for _, year, user, label in rows:
            if label in labels and (wanted_year is None or year == wanted_year):
                per_user[user] += 1
        qualifying = sorted(u for u, c in per_user.items() if c >= meta["threshold"])
        expected = [[a, b] for a, b in itertools.combinations(qualifying, 2)]
        assert item.gold == expected
        assert 3 <= len(qualifying) <= 12
        assert f"at least {meta['threshold']} data" in item.question


# --- multihop ---------------------------------------------------------------------------

BUILT = [
    r"The {a} was built by (?P<b>[A-Z]\w+ [A-Z]\w+) in \d+\.",
    r"(?P<b>[A-Z]\w+ [A-Z]\w+) built the {a}, finishing",
    r"Construction of the {a} was carried out by (?P<b>[A-Z]\w+ [A-Z]\w+)\.",
]
FOUNDED = [
    r"{a} was founded by (?P<b>[A-Z]\w+ [A-Z]\w+) in",
    r"(?P<b>[A-Z]\w+ [A-Z]\w+) founded {a} in",
    r"The founder of {a} was (?P<b>[A-Z]\w+ [A-Z]\w+)\.",
]
BORN = [
    r"(?<!\w){a} was born in (?P<b>[A-Z]\w+)\.",
    r"(?<!\w){a}, who was born in (?P<b>[A-Z]\w+),",
    r"(?P<b>[A-Z]\w+) is the birthplace of {a}\.",
]


def _hop(context: str, patterns: list[str], subject: str) -> str:
    found = [
        m.group("b") for p in patterns for m in re.finditer(p.format(a=re.escape(subject)), context)
    ]
    assert len(found) == 1, (subject, found)
    return found[0]


@pytest.mark.parametrize("tokens", SIZES)
def test_multihop_gold_follows_the_chain_in_the_text(tokens: int) -> None:
    for item in generate_items("multihop", tokens, 4, seed=4):
        landmark = re.search(r"built the ([A-Z]\w+ [A-Z]\w+)", item.question).group(1)
        company = _hop(item.context, BUILT, landmark)
        founder = _hop(item.context, FOUNDED, company)
        city = _hop(item.context, BORN, founder)
        assert item.gold == (founder if item.meta["hops"] == 2 else city)
        # hard negatives share the landmark's and company's names, and the founder's
        root = landmark.split()[0]
        assert len(re.findall(rf"## Document \d+: {root} ", item.context)) >= 2
        assert f"restored by {company.split()[0]} " in item.context
        first, last = founder.split()
        people = set(re.findall(r"## Document \d+: ([A-Z]\w+ [A-Z]\w+)\n", item.context))
        assert any(p != founder and p.startswith(first + " ") for p in people)
        assert any(p != founder and p.endswith(" " + last) for p in people)
    assert {i.meta["hops"] for i in generate_items("multihop", 2048, 2)} == {2, 3}


# --- codeqa -----------------------------------------------------------------------------


def _write_repository(context: str, root: Path) -> None:
    """Write the files of a generated repository (packages as namespace packages)."""
    files = re.split(r"^# ===== File: (\S+) =====\n", context, flags=re.M)[1:]
    for path, source in zip(files[::2], files[1::2], strict=True):
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source)


def test_codeqa_returns_gold_is_what_the_code_returns(tmp_path: Path) -> None:
    items = [i for i in generate_items("codeqa", 8192, 6, seed=6) if i.meta["kind"] == "returns"]
    assert len(items) == 3
    for number, item in enumerate(items):
        root = tmp_path / f"repo{number}"
        _write_repository(item.context, root)
        module_name, _, call = item.meta["call"].rpartition(".")
        sys.path.insert(0, str(root))
        try:
            module = importlib.import_module(module_name)
            value = eval(call, vars(module))
        finally:
            sys.path.remove(str(root))
            package = module_name.split(".")[0]
            for name in [m for m in sys.modules if m.split(".")[0] == package]:
                del sys.modules[name]
        options = item.meta["options"]
        assert options["ABCD".index(item.gold)] == str(value)
        assert len(set(options)) == 4
        assert f"`{item.meta['call']}`" in item.question


def test_codeqa_defined_gold_is_the_file_that_defines_it() -> None:
    items = [i for i in generate_items("codeqa", 8192, 6, seed=6) if i.meta["kind"] == "defined"]
    assert len(items) == 3
    for item in items:
        name = item.meta["function"]
        files = re.split(r"^# ===== File: (\S+) =====\n", item.context, flags=re.M)[1:]
        sources = dict(zip(files[::2], files[1::2], strict=True))
        defining = [p for p, s in sources.items() if re.search(rf"^def {name}\(", s, re.M)]
        mentioning = [p for p, s in sources.items() if name in s and p not in defining]
        assert len(defining) == 1
        options = item.meta["options"]
        assert options["ABCD".index(item.gold)] == defining[0]
        assert len(mentioning) >= 2  # callers: grep for the name alone finds three files
        assert set(mentioning[:2]) <= set(options)
