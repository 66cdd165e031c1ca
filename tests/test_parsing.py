"""Reading root replies: code blocks, cut replies, FINAL in prose."""

from __future__ import annotations

import pytest

from rlmagent.parsing import (
    FinalMarker,
    code_blocks,
    find_final,
    for_history,
    has_unclosed_block,
    prose,
)


def test_tagged_blocks_in_order():
    text = "a\n```repl\nx = 1\n```\nb\n```python\ny = 2\n```\n```py\nz = 3\n```\n```js\nno()\n```"
    assert code_blocks(text) == ["x = 1\n", "y = 2\n", "z = 3\n"]


@pytest.mark.parametrize(
    ("body", "is_code"),
    [
        ("print(1)", True),
        ("x = 2", True),
        ("for i in []: pass", True),
        ("42", False),
        ("Paris", False),
        ("The answer is Paris.", False),
        ("'text'", False),
    ],
)
def test_untagged_fence_counts_as_code_only_when_it_does_something(body, is_code):
    assert bool(code_blocks(f"```\n{body}\n```")) is is_code


def test_empty_blocks_are_skipped():
    assert code_blocks("```repl\n\n```") == []


def test_unclosed_block():
    assert has_unclosed_block("text\n```repl\nx = 1")
    assert not has_unclosed_block("```repl\nx = 1\n```")
    assert prose("before\n```repl\nx = 1") == "before\n"


@pytest.mark.parametrize(
    ("text", "marker"),
    [
        ('FINAL("4417")', FinalMarker("value", "4417")),
        ("So FINAL(4417).", FinalMarker("value", "4417")),
        (
            "FINAL(The answer is (probably) Paris)",
            FinalMarker("value", "The answer is (probably) Paris"),
        ),
        ("FINAL('a ) inside')", FinalMarker("value", "a ) inside")),
        ('FINAL_VAR("result")', FinalMarker("var", "result")),
        ("FINAL_VAR(result)", FinalMarker("var", "result")),
        ("first FINAL(a) then FINAL(b)", FinalMarker("value", "b")),
        ("no final here", None),
        ("FINAL()", None),
        ("FINAL(unclosed", None),
        ("```repl\nFINAL('in code')\n```", None),
        ("MYFINAL(x)", None),
    ],
)
def test_find_final_in_prose(text, marker):
    assert find_final(text) == marker


def test_history_keeps_opening_prose_and_blocks_only():
    reply = (
        "Let me search.\n```repl\nprint(1)\n```\nThe REPL shows: 99\n```repl\nFINAL('99')\n```\n"
        "Done: FINAL(99)"
    )
    kept = for_history(reply)
    assert kept.startswith("Let me search.\n```repl\nprint(1)\n```")
    assert "FINAL('99')" in kept
    assert "The REPL shows" not in kept and "Done" not in kept
    assert for_history("no code at all") == "no code at all"
