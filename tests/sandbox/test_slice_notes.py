"""Notes on sliced output: a cell that shows ``hits[:5]`` of six items is told one was left out."""

from __future__ import annotations

import pytest

from rlmagent.sandbox import InProcessSandbox, Limits, SubprocessSandbox
from rlmagent.sandbox.base import cut
from rlmagent.sandbox.worker import add_notes, displayed_slices

from .helpers import ECHO, TIERS, Recorder

NOTE_5_OF_6 = "[note: hits[:5] showed 5 of 6 items; 1 not shown]"
SIX = "hits = [1, 2, 3, 4, 5, 6]\n"


@pytest.fixture(params=[*TIERS, "inprocess"])
def start(request):
    """``start(max_output_chars=...)``: a session of the tier, closed after the test."""
    sessions = []

    def start(**kwargs):
        if request.param == "inprocess":
            sandbox = InProcessSandbox()
        else:
            sandbox = SubprocessSandbox(isolation=request.param, limits=Limits(cell_timeout_s=10))
        session = sandbox.start("the context text", Recorder(), functions=ECHO, **kwargs)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


@pytest.fixture
def session(start):
    return start()


def run(session, code: str) -> str:
    result = session.execute(code)
    assert result.error is None, result.error
    return result.output


def test_a_printed_slice_that_left_items_out_is_noted(session):
    assert run(session, SIX + "print(hits[:5])") == f"[1, 2, 3, 4, 5]\n{NOTE_5_OF_6}\n"


def test_a_slice_that_shows_everything_is_not_noted(session):
    assert run(session, "hits = [1, 2, 3]\nprint(hits[:5])") == "[1, 2, 3]\n"
    assert run(session, "print(hits[:3], hits[-3:], hits[:])") == "[1, 2, 3] [1, 2, 3] [1, 2, 3]\n"


def test_a_slice_that_is_not_shown_is_not_noted(session):
    assert run(session, SIX + "top = hits[:5]\nn = len(hits[:2])") == ""
    assert run(session, "for h in hits[:2]:\n    pass\nprint(len(top))") == "5\n"
    assert run(session, "def show():\n    print(hits[:1])\nshow()") == "[1]\n"
    assert run(session, "print(llm_query(str(hits[:2])))") == "echo:[1, 2]\n"  # sent, not shown


def test_slicing_text_is_not_noted(session):
    assert run(session, "print(context[:3])") == "the\n"
    assert run(session, "s = b'abcdef'\nprint(s[:2])\ncontext[-4:]") == "b'ab'\n'text'\n"


def test_the_displayed_last_expression_is_noted(session):
    assert run(session, SIX + "hits[:2]") == (
        "[1, 2]\n[note: hits[:2] showed 2 of 6 items; 4 not shown]\n"
    )
    assert run(session, "hits[-2:], len(hits)") == (
        "([5, 6], 6)\n[note: hits[-2:] showed 2 of 6 items; 4 not shown]\n"
    )


def test_each_slice_is_noted_once_in_source_order(session):
    code = (
        "rows = tuple(range(10))\n"
        + SIX
        + "print(rows[2:4], hits[:5])\nprint(hits[:5], hits[:5:1], hits[:6], rows[100:])"
    )
    assert run(session, code).splitlines()[2:] == [
        "[note: rows[2:4] showed 2 of 10 items; 8 not shown]",
        NOTE_5_OF_6,
        "[note: rows[100:] showed 0 of 10 items; 10 not shown]",
    ]


def test_only_constant_bounds_and_the_value_after_the_cell_count(session):
    assert run(session, SIX + "k = 5\nprint(hits[:k], hits[::2])") == "[1, 2, 3, 4, 5] [1, 3, 5]\n"
    assert run(session, "print(hits[:5])\nhits = hits[:5]") == "[1, 2, 3, 4, 5]\n"  # now 5 of 5
    assert run(session, "groups = [[1, 2, 3]]\nfor g in groups:\n    print(g[:1])") == "[1]\n"


def test_a_finished_cell_keeps_its_note(session):
    result = session.execute(SIX + "print(hits[:5])\nFINAL('done')")
    assert result.error is None and result.final == "done"
    assert result.output == f"[1, 2, 3, 4, 5]\n{NOTE_5_OF_6}\n"


def test_a_cell_error_is_the_same_error_without_a_note(session):
    code = "print(hits[:5])\nraise ValueError('boom')"
    plain = session.execute(code)  # hits is not defined yet: a NameError
    assert plain.error is not None and "NameError: name 'hits' is not defined" in plain.error
    assert plain.output == ""
    run(session, SIX)
    result = session.execute(code)
    assert result.output == "[1, 2, 3, 4, 5]\n"  # printed before the error, not noted
    assert result.error is not None and result.error.endswith("ValueError: boom")
    assert "note" not in result.error
    assert run(session, "print(hits[:5])") == f"[1, 2, 3, 4, 5]\n{NOTE_5_OF_6}\n"  # goes on


def test_the_notes_never_break_a_working_cell(session):
    code = (
        "class Odd(list):\n"
        "    def __len__(self):\n"
        "        raise RuntimeError('len of Odd')\n"
        "    @property\n"
        "    def __class__(self):\n"
        "        raise RuntimeError('class of Odd')\n"
        "odd = Odd([1, 2, 3])\n"
        "print(odd[:1])\n"
        "print(undefined_name[:2]) if False else None\n"
        "42"
    )
    assert run(session, code) == (
        "[1]\n42\n[note: odd[:1] showed 1 of 3 items; 2 not shown]\n"
    )  # its length read as a list's: none of its code ran


def test_output_past_the_cap_still_carries_the_note(start):
    session = start(max_output_chars=1_000)
    output = run(session, SIX + "print('x' * 5_000)\nprint(hits[:5])")
    kept, marker = output.rsplit("\n", 1)
    assert kept.endswith(f"\n{NOTE_5_OF_6}")
    assert len(kept) == 1_000
    shown = kept.count("x")
    assert marker == f"[... {5_017 - shown:,} more characters cut]"  # 5,000 x, \n, the list
    assert run(session, "print('y' * 2_000)\nz = hits[:5]").endswith(
        "\n[... 1,001 more characters cut]"
    )  # no note: none to add


def test_add_notes_keeps_the_count_of_what_was_cut():
    note = ["[note: n]"]
    assert add_notes("abc\n", 4, note, 100) == ("abc\n[note: n]\n", 14)
    assert add_notes("abc", 3, note, 100) == ("abc\n[note: n]\n", 14)
    assert add_notes("", 0, note, 100) == ("[note: n]\n", 10)
    assert add_notes("abc", 3, [], 100) == ("abc", 3)
    assert add_notes("abc", 3, note, 10) == ("abc", 3)  # no room for notes in a tiny cap
    for total in range(60):
        full = ("line\n" * 20)[:total]
        out, count = add_notes(full[:40], total, note, 40)  # the buffer kept 40 of them
        shown = cut(out, count, 40)
        if count <= 40:
            assert (
                shown == out == full + ("\n" if full and full[-1] != "\n" else "") + "[note: n]\n"
            )
            continue
        assert len(out) == 40 and out.endswith("[note: n]")
        head = out[: -len("[note: n]")]  # the cell's own output kept, then a line end
        hidden = int(shown.rsplit("[... ", 1)[1].split()[0])
        if full.startswith(head):
            assert hidden == total - len(head)
        else:
            assert full.startswith(head[:-1]) and hidden == total - len(head) + 1


def _slices(code: str):
    import ast

    tree = ast.parse(code)
    last = tree.body.pop().value if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    return displayed_slices(tree.body, last)


def test_which_slices_count_as_shown():
    assert _slices("print(a[:1], b[2:3], c[-4:], d[:-1], e[1:2:1], f[-1:-2])") == [
        ("a", None, 1),
        ("b", 2, 3),
        ("c", -4, None),
        ("d", None, -1),
        ("e", 1, 2),
        ("f", -1, -2),
    ]
    assert _slices("print(a[k:], b[:2:2], c[True:], d.e[:1], f()[:1], g[0])") == []
    assert _slices("x = a[:1]\nFINAL(b[:1])\nllm_query(c[:1])\nlambda: print(d[:1])") == []
    assert _slices("print(f'{a[:2]}', [x[:1] for x in xs], sorted(b[:3]))") == [
        ("a", None, 2),
        ("b", None, 3),
    ]
    assert _slices("if ok:\n    print(a[:1])\nb[:2], llm_query(c[:3])") == [
        ("a", None, 1),
        ("b", None, 2),
    ]
    shown = (
        "print(*a[:1], ', '.join(b[:1]), [h.t for h in c[:1]], str(d[:1]) + '!', "
        "'%s' % (e[:1],), {'k': f[:1]}, g[:1] if ok else None)"
    )
    assert [name for name, _, _ in _slices(shown)] == list("abcdefg")
    hidden = (
        "print(len(a[:1]), all(p for p in b[:-1]), c[:2][0], sum(d[:3]), e[:1].count(1), "
        "[x for x in xs if x in f[:1]], llm_query(str(g[:1])))"
    )
    assert _slices(hidden) == []
