"""A root reply played in the REPL: its code blocks run as cells up to the first FINAL
(the operators' notes added to the output the model reads, the cell's sub-calls kept
with it, :class:`~rlmagent.events.CodeStarted` / :class:`~rlmagent.events.CodeExecuted`
published), then a FINAL written in prose looked up (FINAL_VAR in the REPL): a
:class:`~rlmagent.turns.Turn` for :func:`rlmagent.turns.decide_turn`.

:class:`~rlmagent.run.Run` makes one :class:`Cells` and plays every reply through it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rlmagent import parsing
from rlmagent.events import CodeExecuted, CodeStarted
from rlmagent.host import HostFunctions
from rlmagent.repl import Repl
from rlmagent.tree import Tree
from rlmagent.turns import Turn
from rlmagent.types import Cell, Completion


class Cells:
    """The cells of one run's REPL."""

    def __init__(
        self,
        tree: Tree,
        repl: Repl,
        functions: HostFunctions,
        *,
        ev: dict[str, Any],
        check_answers: bool,
    ) -> None:
        """``ev``: the run's ``run_id`` / ``depth`` / ``parent_id`` for its events;
        ``check_answers``: whether a literal FINAL is marked for the support check."""
        self.tree = tree
        self.repl = repl
        self.functions = functions
        self.ev = ev
        self.check_answers = check_answers

    async def execute(self, turn: int, index: int, code: str) -> Cell:
        """One cell: ``code`` run, with the sub-calls it made and the operators' notes."""
        self.tree.publish(CodeStarted(**self.ev, turn=turn, cell=index, code=code))
        self.functions.take_calls()
        self.functions.take_notes()
        result = await self.repl.execute(code)
        notes = self.functions.take_notes()
        if notes:  # what the operators could not do, where the model reads its output
            text = result.output
            if text and not text.endswith("\n"):
                text += "\n"
            result = dataclasses.replace(result, output=text + "\n".join(notes))
        cell = Cell(code=code, result=result, sub_calls=self.functions.take_calls())
        self.tree.publish(CodeExecuted(**self.ev, turn=turn, cell=index, code=code, result=result))
        return cell

    async def play(
        self, turn: int, completion: Completion, marker: parsing.FinalMarker | None
    ) -> Turn:
        """Run a reply's code blocks (up to the first FINAL) and look up a prose FINAL_VAR;
        ``marker``: the reply's FINAL in prose (``parsing.find_final``), if any."""
        reply = completion.content
        if completion.finish_reason == "length" and parsing.has_unclosed_block(reply):
            return Turn(reply, cut=True, marker=marker)
        blocks = parsing.code_blocks(reply)
        cells: list[Cell] = []
        for index, code in enumerate(blocks, 1):
            cell = await self.execute(turn, index, code)
            cells.append(cell)
            if cell.result.final is not None:
                break
        own = len(cells)
        literal = (
            self.check_answers
            and bool(cells)
            and cells[-1].result.final is not None
            and parsing.final_is_literal(cells[-1].code)
        )
        marker_value = await self.resolve(marker, turn, cells)
        return Turn(
            reply,
            has_code=bool(blocks),
            cells=tuple(cells),
            marker=marker,
            marker_value=marker_value,
            code_cells=own,
            literal_final=literal,
        )

    async def resolve(
        self, marker: parsing.FinalMarker | None, turn: int, cells: list[Cell]
    ) -> str | None:
        """The value of a FINAL written in prose (FINAL_VAR is looked up in the REPL)."""
        if marker is None:
            return None
        if marker.kind == "value":
            return marker.text
        cell = await self.execute(turn, len(cells) + 1, f"FINAL_VAR({marker.text!r})")
        cells.append(cell)
        return cell.result.final


def shown(cell: Cell) -> str:
    """What the model saw of a cell: its output and error."""
    return "\n".join(t for t in (cell.result.output, cell.result.error or "") if t)
