"""Scorers on hand-made answers."""

from __future__ import annotations

import pytest

from rlmagent.bench import BenchItem, score
from rlmagent.bench.scoring import (
    choose_letter,
    normalize,
    parse_pairs,
    score_choice,
    score_exact,
    score_number,
    score_option,
    score_pairs,
    score_value,
)
from rlmagent.errors import UsageError


def test_value_needs_the_gold_number_and_no_distractor() -> None:
    assert score_value("4852193", "4852193") == 1.0
    assert score_value("The special magic number is 4,852,193.", "4852193") == 1.0
    assert score_value("48521930", "4852193") == 0.0  # a longer number is not the value
    assert score_value("unknown", "4852193") == 0.0
    # naming every value found is not an answer
    assert score_value("4852193 or 1111111", "4852193", ["1111111"]) == 0.0
    assert score_value("4852193 (not 2222222)", "4852193", ["1111111"]) == 1.0


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("42", 42, 1.0),
        ("There are 42 such data points.", 42, 1.0),
        ("41", 42, 0.75),
        ("45", 42, 0.75**3),
        ("1,204", 1200, 0.75**4),
        ("Answer: 40", 42, 0.75**2),
        ("none", 42, 0.0),
        ("", 42, 0.0),
    ],
)
def test_number_is_three_quarters_to_the_error(answer: str, gold: int, expected: float) -> None:
    assert score_number(answer, gold) == pytest.approx(expected)


def test_option_needs_exactly_the_gold_option() -> None:
    labels = ["description and abstract concept", "entity", "human being", "location"]
    assert score_option("location", "location", labels) == 1.0
    assert score_option("The most common label is 'Location'.", "location", labels) == 1.0
    assert score_option("human being", "location", labels) == 0.0
    assert score_option("location or entity", "location", labels) == 0.0
    phrases = ["more common than", "less common than", "same frequency as"]
    assert score_option("less common than", "less common than", phrases) == 1.0
    assert score_option("It is less common.", "less common than", phrases) == 1.0
    assert score_option("more common", "less common than", phrases) == 0.0


def test_pairs_are_unordered_and_scored_by_f1() -> None:
    assert parse_pairs("(10, 20)\n(30,40)\n20 and 10\n5-5") == {(10, 20), (30, 40)}
    gold = [[10, 20], [10, 30], [20, 30]]
    assert score_pairs("(20, 10)\n(30, 10)\n(20, 30)", gold) == 1.0
    # two right out of three found, one wrong: precision 2/3, recall 2/3
    assert score_pairs("(10, 20)\n(10, 30)\n(10, 40)", gold) == pytest.approx(2 / 3)
    assert score_pairs("(10, 20)", gold) == pytest.approx(2 * (1 * 1 / 3) / (1 + 1 / 3))
    assert score_pairs("NONE", gold) == 0.0
    assert score_pairs("NONE", []) == 1.0
    assert score_pairs("(1, 2)", []) == 0.0


def test_exact_match_is_normalised() -> None:
    assert normalize("  The Answer: Tortor Rinrinwen. ") == "tortor rinrinwen"
    assert score_exact("Tortor Rinrinwen", "Tortor Rinrinwen") == 1.0
    assert score_exact("tortor rinrinwen.", "Tortor Rinrinwen") == 1.0
    assert score_exact("Answer: `Halan`", "Halan") == 1.0
    assert score_exact("Tortor", "Tortor Rinrinwen") == 0.0
    assert score_exact("Halan or Garcor", "Halan") == 0.0


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(C)", "C"),
        ("D.", "D"),
        ("The answer is A.", "A"),
        ("Answer: B", "B"),
        ("I pick option C because it calls scale_value.", "C"),
        ("pkg/io/b.py", "B"),
        ("A or B", None),
        ("I do not know", None),
    ],
)
def test_choice_reads_the_letter_picked(answer: str, letter: str | None) -> None:
    options = ["pkg/core/a.py", "pkg/io/b.py", "pkg/net/c.py", "pkg/data/d.py"]
    assert choose_letter(answer, options) == letter
    assert score_choice(answer, "B", options) == (1.0 if letter == "B" else 0.0)


def test_score_dispatches_on_the_item_rule() -> None:
    item = BenchItem(
        "sniah", "x", 256, 0, 0, "ctx", "q?", "1234567", "value", {"distractor_values": ["7654321"]}
    )
    assert score(item, "1234567") == 1.0
    assert score(item, "7654321") == 0.0
    assert score(item, None) == 0.0
    broken = BenchItem("sniah", "x", 256, 0, 0, "ctx", "q?", "1", "telepathy")
    with pytest.raises(UsageError, match="unknown scoring rule 'telepathy'"):
        score(broken, "1")
