"""The decision of one root turn, as a pure function.

The run asks the root model, executes the reply's code (:class:`Turn` is what that
did), then :func:`decide_turn` says what follows: a final answer and why, or the
observation to send back. No I/O here: the rules are tested on their own.

The rules, learned on small roots (``../shared/FACTS.md``):

- A reply cut inside a code block runs nothing and is asked again, shorter.
- A FINAL in a cell ends the run, unless earlier cells of the same reply printed
  something the model could not have read yet: then it is shown that output and asked
  to confirm (the same value again confirms).
- Nothing is the answer before code has run: a FINAL in prose, or a plain reply, is
  then sent back with a request to look at ``context`` first.
- A FINAL written in prose counts once code has run.
- A reply with neither code nor FINAL gets one reminder; a second such reply, once code
  has run, is the answer.
- A reply whose cells repeat earlier cells exactly, with the same output, is told so
  and asked to answer (small roots rerun a finished cell turn after turn); after
  :data:`MAX_REPEATS` such turns in a row the run asks for its answer at once.
- A search that printed only an empty result (``0 []``, ``[]``) is answered with a hint
  to search for fewer, more distinctive words (small roots search for whole phrases).
- With answer checks on (``seen`` given), an answer that only says nothing was found
  (``0``, ``None``, ``Not found``) right after a reply whose searches all found nothing
  is questioned once: an empty search is not evidence (small roots search for the
  question's words, find none, and answer 0 where lines mean the topic without naming
  it). And a FINAL whose value the model wrote as a literal and that appears in
  nothing it has seen is questioned once (:func:`rlmagent.evidence.grounded`); a
  computed value is not. One question per run, whichever rule asks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from rlmagent import prompts
from rlmagent.evidence import grounded
from rlmagent.parsing import FinalMarker
from rlmagent.types import Cell

_EMPTY = re.compile(
    r"(?:0\s*)?(?:\[\]|\(\)|\{\}|set\(\)|None|''|\"\"|0)?"
    r"|(?i:no (?:match|matches|results?|hits?|lines?)(?: (?:were |was )?found)?|not found"
    r"|nothing found)[.!]?"
)
"""An output that says a search found nothing: ``0 []``, ``[]``, ``0``, ``None``, or
the model's own ``No match found.`` / ``Not found``."""
_CELL_NUMBER = re.compile(r"<cell \d+>")
MAX_REPEATS = 3
"""Turns in a row that only repeat earlier cells before the run asks for its answer."""


@dataclass(frozen=True, slots=True)
class TurnState:
    """What the rules remember between turns of one run."""

    code_has_run: bool = False
    reminded: bool = False
    last_final: str | None = None
    """The FINAL value of the previous reply that was not accepted (a repeat confirms)."""
    questioned: bool = False
    """Whether an ungrounded answer was already questioned in this run (once only)."""
    ran: frozenset[str] = frozenset()
    """The cells run so far, as code and output (a repeat is pointed out)."""
    repeats: int = 0
    """Consecutive turns that only repeated earlier cells with the same output."""
    found_nothing: bool = False
    """Whether the previous reply's cells all printed an empty search result."""


@dataclass(frozen=True, slots=True)
class Turn:
    """What one root reply did.

    ``cut``: the reply was cut by the token limit inside a code block (nothing ran).
    ``has_code``: it held code blocks; ``cells`` are those run, up to the first that
    called FINAL, then the lookup of a prose ``FINAL_VAR`` if any. ``marker`` is a FINAL
    written in prose, ``marker_value`` its value (None if a FINAL_VAR lookup failed).
    """

    reply: str
    cut: bool = False
    has_code: bool = False
    cells: tuple[Cell, ...] = ()
    marker: FinalMarker | None = None
    marker_value: str | None = None
    code_cells: int = 0
    """How many of ``cells`` are the reply's own code blocks (the rest: a FINAL_VAR lookup)."""
    literal_final: bool = False
    """Whether the FINAL of the last code cell was written as a constant (``FINAL("7")``)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What follows a turn: ``final`` (with ``stop_reason``) or an ``observation``."""

    state: TurnState
    final: str | None = None
    stop_reason: str | None = None
    observation: str = ""
    candidate: str | None = None
    """The last FINAL value the reply wrote, accepted or not (the partial answer)."""
    stalled: bool = False
    """The model repeated the same cells :data:`MAX_REPEATS` turns in a row: ask for
    the answer now instead of waiting for the turn limit."""


def decide_turn(turn: Turn, state: TurnState, *, question: str, seen: str | None = None) -> Outcome:
    """The outcome of ``turn`` given ``state`` (see the module docstring for the rules).

    ``seen`` is everything the model has seen so far (question, preview, outputs), for
    the grounding rule; None turns answer checks off.
    """
    outcome = _decide(turn, state, question)
    looked = [c for c in turn.cells[: turn.code_cells] if c.result.final is None]
    empty = bool(looked) and all(_found_nothing(c) for c in looked)
    outcome = replace(outcome, state=replace(outcome.state, found_nothing=empty))
    if outcome.final is None or seen is None or outcome.state.questioned:
        return outcome
    if state.found_nothing and _says_nothing(outcome.final):
        return Outcome(
            replace(outcome.state, questioned=True, last_final=None),
            observation=prompts.render("empty_answer", value=outcome.final, question=question),
            candidate=outcome.candidate,
        )
    if _literal(turn, outcome) and not grounded(outcome.final, seen):
        return Outcome(
            replace(outcome.state, questioned=True, last_final=None),
            observation=prompts.render("ungrounded", value=outcome.final, question=question),
            candidate=outcome.candidate,
        )
    return outcome


def _literal(turn: Turn, outcome: Outcome) -> bool:
    """Whether the accepted value was written by the model rather than computed."""
    own = turn.cells[: turn.code_cells]
    if outcome.stop_reason == "final" and own and own[-1].result.final == outcome.final:
        return turn.literal_final
    return turn.marker is not None and turn.marker.kind == "value"


def _decide(turn: Turn, state: TurnState, question: str) -> Outcome:
    candidate = _candidate(turn)
    if turn.cut:
        return Outcome(state, observation=prompts.render("cut", question=question))
    if turn.has_code:
        return _code_turn(turn, state, question, candidate)
    if turn.marker is not None:
        value = turn.marker_value
        next_state = replace(state, last_final=value)
        if value is not None and state.code_has_run:
            return Outcome(next_state, value, "final", candidate=candidate)
        if value is not None:
            text = prompts.render("confirm", value=value)
        else:
            text = prompts.observation(turn.cells, question)
        return Outcome(next_state, observation=text, candidate=candidate)
    if not state.reminded:
        return Outcome(
            replace(state, reminded=True, last_final=None),
            observation=prompts.render("reminder", question=question),
        )
    if not state.code_has_run:
        return Outcome(state, observation=prompts.render("no_code", question=question))
    return Outcome(state, plain_answer(turn.reply), "answer_without_final")


def _code_turn(turn: Turn, state: TurnState, question: str, candidate: str | None) -> Outcome:
    own = turn.cells[: turn.code_cells]
    final: str | None = None
    reason: str | None = None
    unseen: str | None = None
    if own and own[-1].result.final is not None:
        value = own[-1].result.final
        if blind(own) and value != state.last_final:
            unseen = value  # answered before seeing earlier blocks' output
        else:
            final, reason = value, "final"
    marker_value = turn.marker_value
    if final is None and marker_value is not None and marker_value == state.last_final:
        final, reason = marker_value, "final_repeated"  # the same FINAL twice in a row
    ran = [_ran(c) for c in own]
    repeated = bool(ran) and all(r in state.ran for r in ran)
    next_state = TurnState(
        True,
        False,
        unseen if unseen is not None else marker_value,
        state.questioned,
        state.ran | frozenset(ran),
        state.repeats + 1 if repeated else 0,
    )
    if final is not None:
        return Outcome(next_state, final, reason, candidate=candidate)
    observation = prompts.observation(turn.cells, question)
    if unseen is not None:
        observation += "\n\n" + prompts.render("unseen", value=unseen)
    elif repeated:
        observation += "\n\n" + prompts.render("repeated")
    elif own and all(_found_nothing(c) for c in own):
        observation += "\n\n" + prompts.render("nothing_found")
    stalled = next_state.repeats >= MAX_REPEATS
    return Outcome(next_state, observation=observation, candidate=candidate, stalled=stalled)


def _says_nothing(value: str) -> bool:
    """Whether an answer only says that nothing was found (``0``, ``None``, ``Not found``)."""
    text = " ".join(value.strip().strip("\"'`").split())
    return text.lower() in {"", "none", "null", "n/a", "unknown", "nothing"} or (
        _EMPTY.fullmatch(text) is not None
    )


def _ran(cell: Cell) -> str:
    """What makes two cells the same run: code, output and error, with the cell number
    of a traceback (``<cell 7>``) left out, so a failing call rerun is a repeat."""
    error = _CELL_NUMBER.sub("<cell>", cell.result.error) if cell.result.error else None
    return f"{cell.code.strip()}\0{cell.result.output}\0{error}"


def _found_nothing(cell: Cell) -> bool:
    """Whether a cell ran cleanly and printed only an empty result."""
    lines = [s for s in cell.result.output.splitlines() if not s.startswith("[search: ")]
    text = " ".join(" ".join(lines).split())
    return bool(text) and cell.result.error is None and _EMPTY.fullmatch(text) is not None


def _candidate(turn: Turn) -> str | None:
    values = []
    if turn.marker is not None and turn.marker.kind == "value":
        values.append(turn.marker.text)
    own = turn.cells[: turn.code_cells]
    if own and own[-1].result.final is not None:
        values.append(own[-1].result.final)
    if turn.marker_value is not None:
        values.append(turn.marker_value)
    return values[-1] if values else None


def blind(cells: tuple[Cell, ...]) -> bool:
    """Whether the last cell ran after earlier cells of the same reply showed something.

    A FINAL there was written before the model could read that output (small models
    write a search, an invented output and a FINAL in one reply).
    """
    return any(c.result.output.strip() or c.result.error for c in cells[:-1])


def plain_answer(reply: str) -> str:
    """A reply taken as the answer: without a lone fence around it, stripped."""
    text = reply.strip()
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        text = text[3:-3]
        first, _, rest = text.partition("\n")
        text = rest if first.strip().isalpha() and rest else text
    return text.strip()
