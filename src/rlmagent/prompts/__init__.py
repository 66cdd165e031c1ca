"""Every prompt the root sees: templates kept as package data (``*.md``), filled with
``string.Template``, and the assembly of the system message and observations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib import resources
from string import Template

from rlmagent.sandbox.base import CHUNKS_DOC, SEARCH_DOC, FunctionSpec
from rlmagent.tools import Tool, signature
from rlmagent.types import Cell


@cache
def _template(name: str) -> Template:
    text = resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8")
    return Template(text)


def render(name: str, **values: object) -> str:
    """The template ``name`` with ``$placeholders`` filled; a missing value is an error."""
    return _template(name).substitute({k: str(v) for k, v in values.items()}).strip()


def without_echo(reply: str, prompt: str) -> str:
    """``reply`` without the sentences of ``prompt`` it repeats (small models echo the
    instructions they were shown; our own words are never an answer)."""
    text = reply
    lines = [line.strip() for line in prompt.splitlines()]
    for line in lines:  # whole lines first ("Question: ..."), then their sentences
        if len(line) >= 12 and line in text:
            text = text.replace(line, " ")
    for line in lines:
        for sentence in re.split(r"(?<=[.:!?])\s+", line):
            if len(sentence) >= 12 and sentence in text:
                text = text.replace(sentence, " ")
    return " ".join(text.split()) if text != reply else reply


def with_status(observation: str, line: str, question: str) -> str:
    """``observation`` with a status ``line`` (the budget left) put before its question,
    so the message still ends with what to do next: with the line last, the 1.5B root
    reran its finished cell turn after turn instead of answering."""
    marker = f"\n\nQuestion: {question}"
    at = observation.rfind(marker)
    if at < 0:
        return f"{line}\n\n{observation}"
    return f"{observation[:at]}\n\n{line}{observation[at:]}"


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
    functions: Sequence[FunctionSpec],
    tools: Sequence[Tool],
    *,
    profile: str,
    sub_calls: bool,
) -> str:
    """The root's system prompt in ``profile`` (``small`` or ``capable``), listing
    ``functions`` (the REPL's host functions), ``search``, ``chunks`` and ``tools``. It
    never changes with the budget (the capable profile's observations report it), so
    cached root calls stay valid across budgets."""
    # search first: listed after llm_query, the small model asked a sub-model the
    # question itself (with no text of the context) instead of searching
    lines = [f"- {SEARCH_DOC}", *(f"- {spec.doc}" for spec in functions)]
    lines.append(f"- {CHUNKS_DOC}")
    lines.append("- `SHOW_VARS()`: the variables you have defined so far.")
    tool_text = ""
    if tools:
        tool_text = "\nTools (call them like functions in the REPL):\n" + "\n".join(
            signature(t) for t in tools
        )
    examples = ""
    if profile == "small" and sub_calls:
        examples = "\n" + render("examples_small") + "\n"
    semantic = ""
    if profile == "capable" and sub_calls:
        semantic = render("semantic_capable") + "\n"
    return render(
        f"system_{profile}",
        functions="\n".join(lines),
        examples=examples,
        semantic=semantic,
        tools=tool_text,
    )
