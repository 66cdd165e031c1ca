"""The REPL's ``chunks(text, max_chars)`` built-in: pieces cut at line ends, text kept exactly."""

from __future__ import annotations

import inspect
import random

import pytest

from rlmagent.sandbox import InProcessSandbox, Limits, SubprocessSandbox
from rlmagent.sandbox.base import CHUNKS_DOC
from rlmagent.sandbox.worker import chunks

from .helpers import TIERS

CONTEXT = "first line\nsecond\n" + "x" * 25 + "\nshort\nno newline at the end"


def _no_calls(name, params):
    raise NameError(name)


@pytest.fixture(params=[*TIERS, "inprocess"])
def session(request):
    if request.param == "inprocess":
        sandbox = InProcessSandbox()
    else:
        sandbox = SubprocessSandbox(isolation=request.param, limits=Limits(cell_timeout_s=10))
    session = sandbox.start(CONTEXT, _no_calls)
    try:
        yield session
    finally:
        session.close()


def run(session, code: str) -> str:
    result = session.execute(code)
    assert result.error is None, result.error
    return result.output


def test_pieces_are_cut_at_line_ends_and_give_the_text_back(session):
    pieces = ["first line\n", "second\n", "x" * 12, "x" * 12, "x\nshort\n", "no newline a"]
    assert run(session, "chunks(context, 12)") == f"{[*pieces, 't the end']!r}\n"
    assert run(session, "chunks(context, 1000) == [context]") == "True\n"
    assert run(session, "chunks('', 5)") == "[]\n"
    assert run(session, "chunks('a\\nb\\n', 2)") == "['a\\n', 'b\\n']\n"


def test_a_large_context_round_trips(session):
    code = (
        "big = (context + '\\n') * 20_000\n"
        "pieces = chunks(big, 4096)\n"
        "print(''.join(pieces) == big, max(map(len, pieces)) <= 4096, "
        "all(p.endswith('\\n') or len(p) == 4096 for p in pieces[:-1]))"
    )
    assert run(session, code) == "True True True\n"


BAD = "chunks(): max_chars must be a positive int, not"


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("chunks(123, 5)", "TypeError: chunks(): text must be a str, not int"),
        ("chunks(b'abc', 5)", "TypeError: chunks(): text must be a str, not bytes"),
        ("chunks(context, '5')", f"TypeError: {BAD} str"),
        ("chunks(context, 2.0)", f"TypeError: {BAD} float"),
        ("chunks(context, True)", f"TypeError: {BAD} bool"),
        ("chunks(context, 0)", f"ValueError: {BAD} 0"),
        ("chunks(context, -3)", f"ValueError: {BAD} -3"),
    ],
)
def test_bad_arguments_are_errors_naming_the_argument(session, call, expected):
    result = session.execute(call)
    assert result.error is not None and expected in result.error
    assert run(session, "len(chunks(context, 8)) > 0") == "True\n"  # the REPL goes on


def test_it_is_a_builtin_the_model_cannot_lose(session):
    assert run(session, "chunks = None\nSHOW_VARS()") == "{}\n"
    assert run(session, "len(chunks('abc', 1))") == "3\n"  # bound again after the cell


def test_the_prompt_line_matches_the_function():
    head = f"`chunks{inspect.signature(chunks)}`: ".replace("'", "")
    assert CHUNKS_DOC.startswith(head), (head, CHUNKS_DOC)
    assert head == "`chunks(text: str, max_chars: int) -> list[str]`: "


def _check(text: str, max_chars: int) -> None:
    pieces = chunks(text, max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= max_chars for p in pieces)
    start = 0
    for piece in pieces[:-1]:
        end = start + len(piece)
        if "\n" in piece:  # cut after the last line end in reach...
            assert piece.endswith("\n")
            nl = text.find("\n", end)  # ...as the next line (with its newline) did not fit
            assert (nl + 1 if nl >= 0 else len(text)) - start > max_chars
        else:  # no line end in reach: a long line, cut at exactly max_chars
            assert len(piece) == max_chars
        start = end


def test_pieces_are_as_long_as_they_can_be():
    rng = random.Random(7)
    alphabet = "ab\n\n \r\u00e9\U0001f600"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 60)))
        _check(text, rng.randrange(1, 12))
    _check("x" * 100, 7)
    _check("\n" * 10, 3)
