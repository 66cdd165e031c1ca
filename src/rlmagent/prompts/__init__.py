"""Every prompt the root sees: templates kept as package data (``*.md``), filled with
``string.Template``, and the assembly of the system message and observations."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template

from rlmagent.sandbox.base import FunctionSpec
from rlmagent.tools import Tool, signature
from rlmagent.types import Cell


@cache
def _template(name: str) -> Template:
    text = resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: object) -> str:
    """The template ``name`` with ``$placeholders`` filled; a missing value is an error."""
    return _template(name).substitute({k: str(v) for k, v in values.items()}).strip()


def observation(cells: Sequence[Cell], question: str) -> str:
    """What the model sees after its code ran: each cell's output, stderr and error."""
    parts = []
    for index, cell in enumerate(cells, 1):
        result = cell.result
        label = f"[block {index}]" if len(cells) > 1 else "[output]"
        text = result.output.rstrip()
        if result.stderr.strip():
            text += ("\n" if text else "") + "[stderr]\n" + result.stderr.rstrip()
        if result.error:
            text += ("\n" if text else "") + "[error]\n" + result.error
        if not text:
            text = "(no output: print() what you want to see)"
        parts.append(f"{label}\n{text}")
    return render("observation", outputs="\n\n".join(parts), question=question)


def system_message(
    functions: Sequence[FunctionSpec], tools: Sequence[Tool], *, sub_calls: bool
) -> str:
    """The root's system prompt listing ``functions`` (REPL built-ins) and ``tools``."""
    lines = [f"- {spec.doc}" for spec in functions]
    lines.append("- `SHOW_VARS()`: the variables you have defined so far.")
    tool_text = ""
    if tools:
        tool_text = "\nTools (call them like functions in the REPL):\n" + "\n".join(
            signature(t) for t in tools
        )
    return render(
        "system",
        functions="\n".join(lines),
        sub_example="\n" + render("sub_example") + "\n" if sub_calls else "",
        tools=tool_text,
    )
