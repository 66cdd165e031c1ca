"""decide_turn on its own: the rules of one root turn, without a model or a sandbox."""

from __future__ import annotations

import pytest

from rlmagent.parsing import FinalMarker
from rlmagent.turns import Turn, TurnState, decide_turn, plain_answer
from rlmagent.types import Cell, ExecResult

Q = "What is the code?"


def cell(output: str = "", final: str | None = None, error: str | None = None) -> Cell:
    return Cell(code="x", result=ExecResult(output=output, final=final, error=error))


def code_turn(*cells: Cell, marker: FinalMarker | None = None, value: str | None = None) -> Turn:
    return Turn(
        "r", has_code=True, cells=cells, code_cells=len(cells), marker=marker, marker_value=value
    )


def test_a_final_in_a_lone_cell_ends_the_run() -> None:
    outcome = decide_turn(code_turn(cell(final="7")), TurnState(), question=Q)
    assert (outcome.final, outcome.stop_reason, outcome.candidate) == ("7", "final", "7")
    assert outcome.state.code_has_run


def test_a_final_after_unread_output_asks_to_confirm_then_a_repeat_ends() -> None:
    first = decide_turn(code_turn(cell("hits: 3"), cell(final="9")), TurnState(), question=Q)
    assert first.final is None and first.candidate == "9"
    assert "hits: 3" in first.observation and "FINAL(9)" in first.observation
    assert first.state.last_final == "9"
    again = decide_turn(code_turn(cell("x"), cell(final="9")), first.state, question=Q)
    assert (again.final, again.stop_reason) == ("9", "final")


def test_a_prose_final_before_any_code_is_never_accepted() -> None:
    turn = Turn("FINAL(5)", marker=FinalMarker("value", "5"), marker_value="5")
    first = decide_turn(turn, TurnState(), question=Q)
    assert first.final is None and "before running any code" in first.observation
    second = decide_turn(turn, first.state, question=Q)
    assert second.final is None and "before running any code" in second.observation


def test_a_prose_final_after_code_ends_the_run() -> None:
    turn = Turn("FINAL(5)", marker=FinalMarker("value", "5"), marker_value="5")
    outcome = decide_turn(turn, TurnState(code_has_run=True), question=Q)
    assert (outcome.final, outcome.stop_reason) == ("5", "final")


def test_a_failed_final_var_lookup_shows_the_error() -> None:
    turn = Turn(
        "FINAL_VAR(x)",
        cells=(cell(error="NameError: no variable named 'x'"),),
        marker=FinalMarker("var", "x"),
        marker_value=None,
    )
    outcome = decide_turn(turn, TurnState(code_has_run=True), question=Q)
    assert outcome.final is None and "NameError" in outcome.observation


def test_the_same_prose_final_twice_with_code_is_confirmed() -> None:
    state = TurnState(code_has_run=True, last_final="4")
    outcome = decide_turn(
        code_turn(cell("more"), marker=FinalMarker("value", "4"), value="4"), state, question=Q
    )
    assert (outcome.final, outcome.stop_reason) == ("4", "final_repeated")


def test_a_cut_reply_runs_nothing_and_keeps_the_state() -> None:
    state = TurnState(code_has_run=True, reminded=True, last_final="1")
    outcome = decide_turn(Turn("```repl\nprint(", cut=True), state, question=Q)
    assert outcome.final is None and outcome.state == state
    assert "cut off" in outcome.observation and Q in outcome.observation


def test_plain_replies_before_code_are_sent_back_every_time() -> None:
    first = decide_turn(Turn("It is 12."), TurnState(), question=Q)
    assert first.final is None and first.state.reminded
    second = decide_turn(Turn("It is 12."), first.state, question=Q)
    third = decide_turn(Turn("It is 12."), second.state, question=Q)
    for outcome in (second, third):
        assert outcome.final is None and "No code has run yet" in outcome.observation


def test_an_invented_literal_is_questioned_once_then_stands() -> None:
    seen = "Question: What is the code?\n[output]\n2 hits: code of Blue Heron is 7241"
    invented = code_turn(cell(final="9999"))
    invented = Turn("r", has_code=True, cells=invented.cells, code_cells=1, literal_final=True)
    first = decide_turn(invented, TurnState(), question=Q, seen=seen)
    assert first.final is None and first.state.questioned
    assert "does not appear in any output" in first.observation and Q in first.observation
    again = decide_turn(invented, first.state, question=Q, seen=seen)
    assert again.final == "9999"


def test_grounded_literals_and_computed_values_pass_the_grounding_rule() -> None:
    seen = "[output]\n2 hits: code of Blue Heron is 7241"
    literal = Turn(
        "r", has_code=True, cells=(cell(final="7241"),), code_cells=1, literal_final=True
    )
    assert decide_turn(literal, TurnState(), question=Q, seen=seen).final == "7241"
    computed = Turn("r", has_code=True, cells=(cell(final="9999"),), code_cells=1)
    assert decide_turn(computed, TurnState(), question=Q, seen=seen).final == "9999"
    prose = Turn("FINAL(8)", marker=FinalMarker("value", "8"), marker_value="8")
    outcome = decide_turn(prose, TurnState(code_has_run=True), question=Q, seen=seen)
    assert outcome.final is None and "does not appear" in outcome.observation
    # answer checks off: no grounding rule
    assert decide_turn(prose, TurnState(code_has_run=True), question=Q).final == "8"


def test_a_reply_without_code_or_final_is_reminded_once_then_taken() -> None:
    first = decide_turn(Turn("I think it is 12."), TurnState(code_has_run=True), question=Q)
    assert first.final is None and first.state.reminded and Q in first.observation
    second = decide_turn(Turn("```\n12\n```"), first.state, question=Q)
    assert (second.final, second.stop_reason) == ("12", "answer_without_final")


def test_plain_answer_strips_a_lone_fence() -> None:
    assert plain_answer("```text\nParis\n```") == "Paris"
    assert plain_answer("  Paris  ") == "Paris"
    assert plain_answer("```a``` and ```b```") == "```a``` and ```b```"


def test_our_own_prompt_text_is_never_the_answer() -> None:
    from rlmagent import prompts

    asked = prompts.render("final_turn", question=Q)
    echoed = (
        "No turns are left. Give your final answer to the question now, as "
        "FINAL(answer), without code. Lisbon"
    )
    assert prompts.without_echo(echoed, asked) == "Lisbon"
    assert prompts.without_echo("Lisbon", asked) == "Lisbon"
    assert prompts.without_echo("  two\n lines ", asked) == "  two\n lines "


def test_a_repeated_cell_with_the_same_output_is_pointed_out() -> None:
    first = decide_turn(code_turn(cell("13")), TurnState(), question=Q)
    assert "same code before" not in first.observation
    again = decide_turn(code_turn(cell("13")), first.state, question=Q)
    assert "You ran this same code before" in again.observation
    changed = decide_turn(code_turn(cell("14")), first.state, question=Q)
    assert "same code before" not in changed.observation


def test_a_failing_cell_rerun_is_a_repeat_though_its_traceback_names_another_cell() -> None:
    def failing(number: int) -> Cell:
        return cell(error=f'File "<cell {number}>", line 1\nValueError: bad width')

    state = TurnState()
    for number in range(1, 5):
        outcome = decide_turn(code_turn(failing(number)), state, question=Q)
        state = outcome.state
    assert "You ran this same code before" in outcome.observation and outcome.stalled
    other = cell(error='File "<cell 9>", line 1\nValueError: another error')
    assert "same code before" not in decide_turn(code_turn(other), state, question=Q).observation


@pytest.mark.parametrize(
    ("output", "hinted"),
    [
        ("0 []\n", True),
        ("[]", True),
        ("0", True),
        ("None\n", True),
        ("No match found.\n", True),
        ("not found\n", True),
        ("No matches\n", True),
        ("No match found for 'x' but 3 near it\n", False),
        ("1 ['x']", False),
        ("", False),
        ("3", False),
    ],
)
def test_an_empty_search_result_gets_a_hint(output: str, hinted: bool) -> None:
    outcome = decide_turn(code_turn(cell(output)), TurnState(), question=Q)
    assert ("That found nothing" in outcome.observation) is hinted


@pytest.mark.parametrize("answer", ["0", "None", "Not found", "No match found.", "''"])
def test_a_nothing_answer_after_an_empty_search_is_questioned_once(answer: str) -> None:
    seen = "Question: How many complain about billing?\n0 []"
    searched = decide_turn(code_turn(cell("0 []\n")), TurnState(), question=Q, seen=seen)
    assert searched.state.found_nothing and searched.final is None
    final = code_turn(cell(final=answer))
    asked = decide_turn(final, searched.state, question=Q, seen=seen)
    assert asked.final is None and "finding nothing is not evidence" in asked.observation
    again = decide_turn(final, asked.state, question=Q, seen=seen)
    assert again.final == answer  # the same answer again stands


def test_a_nothing_answer_after_a_search_that_found_something_stands() -> None:
    seen = "Question: How many?\n0 lines of 12 match"
    looked = decide_turn(code_turn(cell("['a', 'b']\n")), TurnState(), question=Q, seen=seen)
    assert not looked.state.found_nothing
    assert decide_turn(code_turn(cell(final="0")), looked.state, question=Q, seen=seen).final == "0"
    no_checks = decide_turn(code_turn(cell("0 []\n")), TurnState(), question=Q)
    assert decide_turn(code_turn(cell(final="0")), no_checks.state, question=Q).final == "0"
