"""The semantic operators' pure logic, with a deterministic fake ``ask``.

No engine, no timing: ``ask`` is a plain async function that reads the items back out of
each prompt and answers by keyword, in whatever shape a test wants.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable

import pytest

from rlmagent.operators import (
    DEFAULT_PACK,
    MAX_PROMPT_CHARS,
    TRUNCATION_MARK,
    ClassifyResult,
    FilterResult,
    MapResult,
    llm_classify,
    llm_filter,
    llm_map,
    parse_label,
    parse_numbered,
    parse_yes_no,
)

LABELS = ["billing", "delivery", "technical problem"]
KEYWORDS = {
    "charged": "billing",
    "refund": "billing",
    "parcel": "delivery",
    "crash": "technical problem",
}
TICKETS = [
    "I was charged twice",
    "my parcel never came",
    "the app crash again",
    "where is my refund",
    "parcel left at the wrong door",
    "crash on start",
    "charged for nothing",
]
TRUTH = [
    "billing",
    "delivery",
    "technical problem",
    "billing",
    "delivery",
    "technical problem",
    "billing",
]


def texts_of(prompt: str) -> list[str]:
    """The items inside one prompt (numbered lines when packed)."""
    if "\nTexts:\n" in prompt:
        body = prompt.split("\nTexts:\n", 1)[1].split("\n\n", 1)[0]
        return [re.sub(r"^\d+\. ", "", line) for line in body.split("\n")]
    if prompt.startswith("Text: "):  # llm_filter: the question follows the text
        return [prompt[len("Text: ") :].rsplit("\n\nQuestion: ", 1)[0]]
    return [prompt.split("\nText:\n", 1)[1]]


def topic(text: str) -> str:
    for word, label in KEYWORDS.items():
        if word in text:
            return label
    return "technical problem"


def numbered(answers: list[str]) -> str:
    return "\n".join(f"{n}: {a}" for n, a in enumerate(answers, 1))


class FakeAsk:
    """``ask`` answering each item with ``answer(text)``; ``shape`` writes packed answers."""

    def __init__(
        self,
        answer: Callable[[str], str] = topic,
        shape: Callable[[list[str]], str] = numbered,
        fail: Callable[[str], bool] = lambda prompt: False,
    ) -> None:
        self.answer, self.shape, self.fail = answer, shape, fail
        self.prompts: list[str] = []
        self.batches = 0

    async def __call__(self, prompts: list[str]) -> list[str]:
        self.batches += 1
        self.prompts += prompts
        await asyncio.sleep(0)
        out = []
        for prompt in prompts:
            if self.fail(prompt):
                out.append("Error: EngineError: boom")
                continue
            texts = texts_of(prompt)
            answers = [self.answer(t) for t in texts]
            out.append(self.shape(answers) if "\nTexts:\n" in prompt else answers[0])
        return out


def run(coro):
    return asyncio.run(coro)


# -- classify -----------------------------------------------------------------------------


@pytest.mark.parametrize("pack", [1, 2, 3, 8])
def test_classify_keeps_order_at_any_pack(pack):
    ask = FakeAsk()
    result = run(llm_classify(ask, TICKETS, LABELS, pack=pack))
    assert isinstance(result, ClassifyResult)
    assert result.values == TRUTH
    assert list(result) == TRUTH and len(result) == 7 and result[0] == "billing"
    assert (result.failed, result.unparsed, result.truncated, result.retried) == (0, 0, 0, 0)
    assert result.calls == len(ask.prompts) == -(-7 // pack)
    assert result.note == "" and result.ok
    assert result.total == 7 and result.labels == LABELS


def test_packed_prompts_share_the_instruction_first():
    ask = FakeAsk()
    run(llm_classify(ask, TICKETS * 3, LABELS, pack=4))
    heads = {p.split("\nTexts:\n")[0] for p in ask.prompts if "\nTexts:\n" in p}
    assert len(heads) == 1  # the same prefix in every packed call: the KV cache is reused
    head = heads.pop()
    assert all(label in head for label in LABELS)
    assert not any(t in head for t in TICKETS)
    packed = [p for p in ask.prompts if "\nTexts:\n" in p]
    assert all(p.startswith(head) for p in packed)
    assert texts_of(packed[0]) == (TICKETS * 3)[:4]


def test_the_last_lone_item_is_asked_in_the_single_form():
    ask = FakeAsk()
    run(llm_classify(ask, TICKETS, LABELS, pack=3))  # 3 + 3 + 1
    assert ["\nTexts:\n" in p for p in ask.prompts] == [True, True, False]


def test_packed_answers_out_of_order_with_chatter_and_markdown():
    def shape(answers: list[str]) -> str:
        lines = [f"**{n}.** {a.title()}." for n, a in enumerate(answers, 1)]
        return (
            "Sure! Here are the categories:\n\n" + "\n".join(reversed(lines)) + "\n\nHope it helps"
        )

    ask = FakeAsk(shape=shape)
    result = run(llm_classify(ask, TICKETS, LABELS, pack=7))
    assert result.values == TRUTH
    assert result.calls == 1 and result.retried == 0


def test_numbers_missing_from_a_packed_answer_are_retried_alone():
    def shape(answers: list[str]) -> str:  # the model stops after the second line
        return numbered(answers)[: len(numbered(answers[:2]))]

    ask = FakeAsk(shape=shape)
    result = run(llm_classify(ask, TICKETS, LABELS, pack=7))
    assert result.values == TRUTH
    assert result.retried == 5 and result.calls == 1 + 5
    assert result.unparsed == 0 and result.note == ""
    assert all("\nTexts:\n" not in p for p in ask.prompts[1:])
    assert [texts_of(p)[0] for p in ask.prompts[1:]] == TICKETS[2:]


def test_an_unreadable_packed_line_is_retried_and_unparsed_if_still_unreadable():
    def answer(text: str) -> str:
        return "no idea" if "wrong door" in text else topic(text)

    ask = FakeAsk(answer=answer)
    result = run(llm_classify(ask, TICKETS, LABELS, pack=4))
    assert result.values == [*TRUTH[:4], None, *TRUTH[5:]]
    assert result.unparsed == 1 and result.retried == 1 and result.calls == 3
    assert not result.ok
    assert result.note == "llm_classify: 1 of 7 answers could not be parsed (their value is None)"


def test_an_answer_naming_two_labels_is_unparsed_not_guessed():
    ask = FakeAsk(answer=lambda t: "billing or delivery")
    result = run(llm_classify(ask, TICKETS[:2], LABELS, pack=1))
    assert result.values == [None, None] and result.unparsed == 2


def test_an_echoed_text_does_not_count_as_a_label():
    items = ["the delivery note shows a wrong amount", "parcel lost"]

    def shape(answers: list[str]) -> str:
        return f"1. {items[0]} - billing\n2. {items[1]} - delivery"

    result = run(llm_classify(FakeAsk(shape=shape), items, LABELS, pack=2))
    assert result.values == ["billing", "delivery"]


def test_single_answers_may_be_the_label_number():
    ask = FakeAsk(answer=lambda t: str(LABELS.index(topic(t)) + 1))
    result = run(llm_classify(ask, TICKETS, LABELS, pack=1))
    assert result.values == TRUTH
    assert "1. billing" in ask.prompts[0]  # single prompts number the labels


def test_failed_calls_fail_their_items_and_are_counted():
    ask = FakeAsk(fail=lambda prompt: "wrong door" in prompt)
    result = run(llm_classify(ask, TICKETS, LABELS, pack=2))  # [0,1] [2,3] [4,5] [6]
    assert result.values == [*TRUTH[:4], None, None, TRUTH[6]]
    assert result.failed == 2 and result.unparsed == 0 and result.retried == 0
    assert result.note == "llm_classify: 2 of 7 items failed (Error: EngineError: boom)"


def test_failed_retries_are_failed():
    ask = FakeAsk(shape=lambda answers: "", fail=lambda p: "\nTexts:\n" not in p)
    result = run(llm_classify(ask, TICKETS[:4], LABELS, pack=4))
    assert result.values == [None] * 4 and result.failed == 4 and result.retried == 4


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("billing", "billing"),
        ("Billing", "billing"),
        ("BILLING.", "billing"),
        ('"billing"', "billing"),
        ("'Delivery'", "delivery"),
        ("**Technical Problem**", "technical problem"),
        ("technical-problem", "technical problem"),
        ("technical_problem", "technical problem"),
        ("Category: billing", "billing"),
        ("The text is about billing.", "billing"),
        ("This is a technical problem", "technical problem"),
        ("technical problems", "technical problem"),
        ("  \n billing \n", "billing"),
        ("", None),
        ("no idea", None),
        ("billing, or maybe delivery", None),
        ("technical", None),
        ("2", None),  # not numbered: a bare number names nothing
    ],
)
def test_parse_label_messy_answers(answer, expected):
    assert parse_label(answer, LABELS) == expected


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("2", "delivery"),
        ("2.", "delivery"),
        ("(3)", "technical problem"),
        ("Option 1", "billing"),
        ("Category 3", "technical problem"),
        ("2. delivery", "delivery"),
        ("4", None),
        ("0", None),
    ],
)
def test_parse_label_numbered(answer, expected):
    assert parse_label(answer, LABELS, numbered=True) == expected


def test_parse_label_overlapping_labels_take_the_most_specific():
    labels = ["bug", "bug report", "feature request", "feature"]
    assert parse_label("bug report", labels) == "bug report"
    assert parse_label("It is a Bug Report.", labels) == "bug report"
    assert parse_label("a bug", labels) == "bug"
    assert parse_label("Feature request", labels) == "feature request"
    assert parse_label("feature", labels) == "feature"
    assert parse_label("bug report, not a feature", labels) is None
    assert parse_label("debugging", labels) is None  # whole words only


def test_parse_label_keeps_the_callers_spelling():
    assert parse_label("urgent", ["Urgent!", "Later"]) == "Urgent!"


def test_parse_numbered_formats():
    answer = "\n".join(
        [
            "Here you go:",
            "1: alpha",
            "2. beta",
            "(3) gamma",
            "**4**: delta",
            "Text 5: epsilon",
            "[6] zeta",
            "- 7) eta",
            "#8 theta",
            "9 - iota",
        ]
    )
    got = parse_numbered(answer, 9)
    assert got == {
        1: "alpha", 2: "beta", 3: "gamma", 4: "delta", 5: "epsilon",
        6: "zeta", 7: "eta", 8: "theta", 9: "iota",
    }  # fmt: skip


def test_parse_numbered_continuations_repeats_and_strays():
    answer = "1: first line\ncontinued\n\n3: third\n1: again\n12: out of range\n2:"
    got = parse_numbered(answer, 3)
    assert got == {1: "first line\ncontinued", 3: "third\n1: again\n12: out of range"}
    assert parse_numbered("", 3) == {} and parse_numbered("no numbers here", 2) == {}


# -- filter -------------------------------------------------------------------------------


def filter_answer(keyword: str, yes: str = "yes", no: str = "no") -> Callable[[str], str]:
    def answer(text: str) -> str:
        return yes if keyword in text else no

    return answer


@pytest.mark.parametrize("pack", [1, 3, 8])
def test_filter_keeps_matching_items_in_order(pack):
    items = [*TICKETS, 42]
    ask = FakeAsk(answer=filter_answer("charged", yes="Yes.", no="No, it is not."))
    result = run(llm_filter(ask, items, "is about a billing problem", pack=pack))
    assert isinstance(result, FilterResult)
    assert result.values == ["I was charged twice", "charged for nothing"]
    assert result.mask == [True, False, False, False, False, False, True, False]
    assert result.note == "" and result.total == 8 and result.calls == -(-8 // pack)


def test_filter_asks_after_the_text():
    ask = FakeAsk(answer=filter_answer("charged"))
    run(llm_filter(ask, TICKETS[:1], "is about a billing problem", pack=1))
    assert ask.prompts == [
        "Text: I was charged twice\n\nQuestion: is it true that this text is about a "
        "billing problem? Answer yes or no."
    ]


def test_filter_packed_prompts_share_their_head_and_end_with_the_question():
    ask = FakeAsk(answer=filter_answer("charged"))
    run(llm_filter(ask, TICKETS, "mentions money", pack=4))
    assert ask.prompts[0].split("\nTexts:\n")[0] == ask.prompts[1].split("\nTexts:\n")[0]
    assert ask.prompts[0].endswith(
        "is it true that the text mentions money? Answer with one line per text, "
        '"<number>: yes" or "<number>: no", and nothing else.'
    )


@pytest.mark.parametrize(
    ("condition", "question"),
    [
        ("about money", "this text is about money?"),
        ("It mentions a refund.", "this text mentions a refund?"),
        ("the text asks a question?", "this text asks a question?"),
        ("is written in French", "this text is written in French?"),
    ],
)
def test_filter_condition_phrasings(condition, question):
    ask = FakeAsk(answer=filter_answer("charged"))
    run(llm_filter(ask, ["x"], condition))
    assert f"is it true that {question} Answer yes or no." in ask.prompts[0]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Yes", True),
        ("yes.", True),
        ("**No**", False),
        ("No, it is about delivery.", False),
        ("True", True),
        ("false", False),
        ("The answer is yes.", True),
        ("I think no", False),
        ("maybe", None),
        ("", None),
        ("It could be yes or no", None),
        ("Yes, no doubt", True),
        ("Nothing", None),
    ],
)
def test_parse_yes_no(answer, expected):
    assert parse_yes_no(answer) is expected


def test_filter_counts_unclear_answers_and_leaves_them_out():
    answers = {"I was charged twice": "Yes.", "my parcel never came": "No", "crash": "maybe"}
    ask = FakeAsk(answer=lambda t: answers[t])
    result = run(llm_filter(ask, list(answers), "is about money", pack=1))
    assert result.mask == [True, False, None]
    assert result.values == ["I was charged twice"]
    assert result.unparsed == 1
    assert result.note == (
        "llm_filter: 1 of 3 answers could not be parsed (those items were left out)"
    )


def test_filter_returns_the_original_objects():
    items = [{"id": 1, "text": "charged"}, {"id": 2, "text": "parcel"}]
    ask = FakeAsk(answer=filter_answer("charged"))
    result = run(llm_filter(ask, items, "is about money", pack=2))
    assert result.values == [items[0]] and result.values[0] is items[0]


# -- map ----------------------------------------------------------------------------------


def test_map_one_answer_per_item_in_order():
    ask = FakeAsk(answer=lambda t: f"  {t.upper()}  ")
    result = run(llm_map(ask, TICKETS, "Shout it."))
    assert isinstance(result, MapResult)
    assert result.values == [t.upper() for t in TICKETS]
    assert result.calls == 7 == len(TICKETS) and DEFAULT_PACK == 1
    assert ask.prompts[0] == "Shout it.\n\nText:\nI was charged twice"


def test_map_packed_with_multiline_answers_and_a_missing_one():
    def shape(answers: list[str]) -> str:
        return "1: first\nmore of first\n3: third"

    ask = FakeAsk(answer=lambda t: f"alone: {t}", shape=shape)
    result = run(llm_map(ask, ["a", "b", "c"], "Echo.", pack=3))
    assert result.values == ["first\nmore of first", "alone: b", "third"]
    assert result.retried == 1 and result.calls == 2


def test_map_failed_items_keep_their_error_text():
    ask = FakeAsk(answer=lambda t: t, fail=lambda p: p.endswith("crash on start"))
    result = run(llm_map(ask, TICKETS, "Echo."))
    assert result.values[5] == "Error: EngineError: boom"
    assert result.values[:5] == TICKETS[:5]
    assert result.failed == 1 and result.unparsed == 0
    assert "1 of 7 items failed" in result.note


def test_packed_items_are_flattened_to_one_line():
    ask = FakeAsk(answer=lambda t: t)
    result = run(llm_map(ask, ["two\nlines", "tab\there"], "Echo.", pack=2))
    assert texts_of(ask.prompts[0]) == ["two lines", "tab here"]
    assert result.values == ["two lines", "tab here"]


# -- bounds -------------------------------------------------------------------------------


def test_long_items_are_cut_to_fit_the_prompt_bound():
    long = "x" * 50_000
    ask = FakeAsk(answer=lambda t: "billing")
    result = run(llm_classify(ask, ["short", long, "short"], LABELS, pack=8))
    assert all(len(p) <= MAX_PROMPT_CHARS for p in ask.prompts)
    assert result.truncated == 1 and result.values == ["billing"] * 3
    assert result.note.startswith("llm_classify: 1 of 3 items were cut to their first ")
    assert any(TRUNCATION_MARK in p for p in ask.prompts)


def test_max_prompt_chars_bounds_packing():
    items = ["y" * 900] * 10
    ask = FakeAsk(answer=lambda t: "delivery")
    result = run(llm_classify(ask, items, LABELS, pack=8, max_prompt_chars=3_000))
    assert all(len(p) <= 3_000 for p in ask.prompts)
    assert result.calls == len(ask.prompts) > 2 and result.truncated == 0
    assert result.values == ["delivery"] * 10


def test_thousands_of_items():
    items = [TICKETS[i % 7] + f" #{i}" for i in range(3_000)]
    truth = [TRUTH[i % 7] for i in range(3_000)]
    for pack in (1, 8):
        ask = FakeAsk()
        result = run(llm_classify(ask, items, LABELS, pack=pack))
        assert result.values == truth and result.calls == -(-3_000 // pack)
        assert ask.batches == 1 and result.note == ""
    mapped = run(llm_map(FakeAsk(answer=lambda t: t[::-1]), items, "Reverse."))
    assert mapped.values == [t[::-1] for t in items] and mapped.calls == 3_000
    kept = run(llm_filter(FakeAsk(answer=filter_answer("refund")), items, "is about refunds"))
    assert len(kept) == sum("refund" in t for t in items) and kept.calls == 3_000


def test_no_items_no_calls():
    ask = FakeAsk()
    for result in (
        run(llm_classify(ask, [], LABELS)),
        run(llm_filter(ask, (), "is odd")),
        run(llm_map(ask, [], "Echo.")),
    ):
        assert result.values == [] and result.calls == 0 and result.note == ""
    assert ask.prompts == []


def test_results_are_frozen_and_their_counts_json_ready():
    result = run(llm_classify(FakeAsk(), TICKETS, LABELS))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.failed = 3  # type: ignore[misc]
    assert json.loads(json.dumps(result.counts())) == {
        "total": 7, "failed": 0, "unparsed": 0, "truncated": 0, "calls": 7, "retried": 0,
        "note": "",
    }  # fmt: skip


def test_too_many_labels_for_the_prompt_bound():
    labels = [f"label number {i}" for i in range(200)]
    with pytest.raises(ValueError, match="raise max_prompt_chars"):
        run(llm_classify(FakeAsk(), ["a"], labels, max_prompt_chars=2_000))


def test_an_ask_returning_the_wrong_number_of_answers_is_an_error():
    async def short(prompts: list[str]) -> list[str]:
        return prompts[:-1]

    with pytest.raises(RuntimeError, match="for 7 prompts"):
        run(llm_classify(short, TICKETS, LABELS, pack=1))


# -- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda a: llm_classify(a, "one line", LABELS), TypeError, "items must be a list"),
        (lambda a: llm_classify(a, {"a": 1}, LABELS), TypeError, "items must be a list"),
        (lambda a: llm_filter(a, None, "x"), TypeError, "items must be a list"),
        (lambda a: llm_map(a, iter(["a"]), "x"), TypeError, "items must be a list"),
        (lambda a: llm_classify(a, ["a"], []), ValueError, "labels is empty"),
        (lambda a: llm_classify(a, ["a"], "billing"), TypeError, "labels must be a list"),
        (lambda a: llm_classify(a, ["a"], ["x", 2]), TypeError, "label 1 must be a str"),
        (lambda a: llm_classify(a, ["a"], ["x", "  "]), ValueError, "no letters"),
        (lambda a: llm_classify(a, ["a"], ["Bug", "bug!"]), ValueError, "same label"),
        (lambda a: llm_filter(a, ["a"], ""), ValueError, "condition must be a non-empty"),
        (lambda a: llm_filter(a, ["a"], 3), TypeError, "condition must be a non-empty"),
        (lambda a: llm_map(a, ["a"], None), TypeError, "instruction must be a non-empty"),
        (lambda a: llm_map(a, ["a"], "   "), ValueError, "instruction must be a non-empty"),
        (lambda a: llm_classify(a, ["a"], LABELS, pack=0), ValueError, "pack must be"),
        (lambda a: llm_classify(a, ["a"], LABELS, pack=True), TypeError, "pack must be an int"),
        (lambda a: llm_classify(a, ["a"], LABELS, pack=1.5), TypeError, "pack must be an int"),
        (lambda a: llm_map(a, ["a"], "x", max_prompt_chars=10), ValueError, "max_prompt_chars"),
        (lambda a: llm_map(a, ["a"], "x" * 5_000, max_prompt_chars=5_000), ValueError, "leaves"),
    ],
)
def test_bad_input(call, error, message):
    ask = FakeAsk()
    with pytest.raises(error, match=message):
        run(call(ask))
    assert ask.prompts == []


def test_default_pack_is_one_item_per_call():
    ask = FakeAsk()
    run(llm_classify(ask, TICKETS, LABELS))
    assert DEFAULT_PACK == 1 and len(ask.prompts) == len(TICKETS)


def test_classify_labels_may_carry_their_meanings() -> None:
    seen: list[str] = []

    async def ask(prompts: list[str]) -> list[str]:
        seen.extend(prompts)
        return ["place" for _ in prompts]

    meanings = {"place": "asks for a location", "person": "asks for someone"}
    result = run(llm_classify(ask, ["Where is Rome?"], meanings))
    assert result.values == ["place"] and result.labels == ["place", "person"]
    assert "place: asks for a location" in seen[0] and "person: asks for someone" in seen[0]
    with pytest.raises(TypeError, match="meaning of label 'place'"):
        run(llm_classify(ask, ["x"], {"place": 3}))


@pytest.mark.parametrize(
    "condition",
    ["is it red?\n" + "x" * 5_000_000, " " * 5_000_000],
    ids=["multi-line", "blank"],
)
def test_a_huge_bad_condition_is_not_echoed_whole(condition: str) -> None:
    async def ask(prompt: str) -> str:
        raise AssertionError("no sub-call for a rejected condition")

    with pytest.raises(ValueError) as caught:
        asyncio.run(llm_filter(ask, ["a"], condition))
    assert len(str(caught.value)) < 300
    assert "5,0" in str(caught.value)  # the full length is named
