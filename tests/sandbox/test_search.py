"""The REPL's ``search(pattern, text=context)`` built-in: the sentence around each match."""

from __future__ import annotations

import pytest

from rlmagent.sandbox import InProcessSandbox, Limits, SubprocessSandbox
from rlmagent.sandbox.base import SEARCH_DOC
from rlmagent.sandbox.textops import MAX_SEARCH_HITS, SEARCH_WIDTH, search

from .helpers import TIERS

FILLER = "Some say the lantern was pale at dusk, and others carried it. " * 20
CONTEXT = (
    "## Report 7: Ostra Quay\n"
    + FILLER
    + "The Ostra Quay was repaired by Lund Yard in 1950. "
    + FILLER
    + "The Ostra Quay was designed by Pell & Sons! Nobody knew.\n"
    + "short line about OSTRA quay\n"
    + FILLER
)


def test_each_match_gives_its_sentence_not_the_whole_line():
    hits = search(r"ostra quay", CONTEXT)
    assert hits == [
        "## Report 7: Ostra Quay",
        "The Ostra Quay was repaired by Lund Yard in 1950.",
        "The Ostra Quay was designed by Pell & Sons!",
        "short line about OSTRA quay",
    ]


def test_a_sentence_longer_than_the_width_is_cut_around_the_match():
    text = "word " * 200 + "NEEDLE 42 " + "word " * 200
    (hit,) = search("needle", text, width=100)
    assert "NEEDLE 42" in hit and len(hit) <= 100
    assert len(search("needle", text)[0]) <= SEARCH_WIDTH


def test_matches_inside_one_passage_give_it_once_and_lists_are_searched_item_by_item():
    assert search("b", "x. b b b. c") == ["b b b."]
    assert search("x", ["ax", 3, "bx. cx"]) == ["ax", "bx.", "cx"]
    assert search("zzz", CONTEXT) == []
    assert len(search("a", "a" * 5_000_000, width=20)) == MAX_SEARCH_HITS


def test_re_flags_are_taken_as_re_search_takes_them_and_case_is_always_ignored():
    import re

    text = "first line\nThe Ostra Quay\nlast"
    assert search("ostra", text, re.I) == search("ostra", text) == ["The Ostra Quay"]
    assert search("^the", text, re.MULTILINE) == ["The Ostra Quay"]


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ((3, "abc"), TypeError, "pattern must be a str, not int"),
        (("", "abc"), ValueError, "pattern is empty"),
        (("(", "abc"), ValueError, "not a valid regular expression"),
        (("a", 42), TypeError, "text must be a str or a list of str, not int"),
        (("a", "abc", "i"), TypeError, "flags must be re flags such as re.I"),
        (("a", "abc", 256 | 4), ValueError, "cannot use LOCALE flag"),
    ],
)
def test_bad_arguments_name_what_is_wrong(args, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(")):
        search(*args)
    with pytest.raises(ValueError, match="width must be an int of at least 20"):
        search("a", "abc", width=5)


@pytest.fixture(params=[*TIERS, "inprocess"])
def session(request):
    if request.param == "inprocess":
        sandbox = InProcessSandbox()
    else:
        sandbox = SubprocessSandbox(isolation=request.param, limits=Limits(cell_timeout_s=10))
    session = sandbox.start(CONTEXT, lambda name, params: None)
    try:
        yield session
    finally:
        session.close()


def test_in_the_repl_it_searches_context_by_default_and_any_text_when_given(session):
    result = session.execute("hits = search(r'ostra quay')\nprint(len(hits), hits[1])")
    assert result.error is None, result.error
    assert result.output == "4 The Ostra Quay was repaired by Lund Yard in 1950.\n"
    result = session.execute("search('b', 'a. b. c')")
    assert result.output == "['b.']\n"
    result = session.execute("context = 'x. new text. y'\nsearch('new')")
    assert result.output == "['new text.']\n"  # the context the model holds now
    result = session.execute("import re\nprint(len(search('ostra quay', context, re.I)))")
    assert result.output == "4\n"  # called like re.search(pattern, string, flags)
    result = session.execute("search('(')")
    assert result.error is not None and "re.escape" in result.error
    assert session.execute("search = 1").error is None
    assert session.execute("print(len(search('ostra', CTX := 'ostra')))").output == "1\n"


def test_the_prompt_line_names_the_default_text():
    assert SEARCH_DOC.startswith("`search(pattern: str, text=context) -> list[str]`")


def test_a_phrase_that_matches_nothing_falls_back_to_its_rarest_word():
    from rlmagent.sandbox.textops import fallback

    hits, note = fallback("who repaired the ostra quay", CONTEXT)
    assert hits == ["The Ostra Quay was repaired by Lund Yard in 1950."]  # 'repaired': 1
    assert "rarest word, 'repaired'" in note and "'ostra' 4" in note
    assert "llm_filter" not in note  # found passages: no hint to the operators
    hits, note = fallback("zzz qqq", CONTEXT)
    assert hits == [] and note.startswith("[search: nothing matches 'zzz qqq', nor any word")
    assert "llm_filter(lines, condition)" in note


def test_in_the_repl_the_fallback_is_said_in_the_output(session):
    result = session.execute("hits = search('who repaired the ostra quay')\nprint(len(hits))")
    assert result.error is None, result.error
    assert result.output.startswith("[search: nothing matches 'who repaired the ostra quay'")
    assert result.output.endswith("\n1\n")
    assert session.execute("print(search('zzzz'))").output == "[]\n"  # one word: no fallback
