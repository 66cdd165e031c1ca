"""Reading a root model's reply: code blocks to run and FINAL answers written in prose.

Code blocks are fenced with ```repl, ```python or ```py. An untagged fence counts as code
only when it parses as Python and does something (a call, an assignment, a loop...):
small models often put a bare answer like ``42`` in an untagged fence.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

CODE_LANGS = frozenset({"repl", "python", "py", "python3"})
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_FENCE_LINE = re.compile(r"^[ \t]*```", re.M)
_FINAL = re.compile(r"\b(FINAL_VAR|FINAL)\s*\(")


@dataclass(frozen=True, slots=True)
class FinalMarker:
    """A ``FINAL(...)`` / ``FINAL_VAR(...)`` found in prose."""

    kind: str  # "value" or "var"
    text: str  # the answer, or the variable name for "var"


def _does_something(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr) or isinstance(stmt.value, ast.Call):
            return True
    return False


def _code_fences(text: str) -> list[re.Match[str]]:
    return [
        match
        for match in _FENCE.finditer(text)
        if match.group(2).strip()
        and (
            match.group(1).lower() in CODE_LANGS
            or (not match.group(1) and _does_something(match.group(2)))
        )
    ]


def code_blocks(text: str) -> list[str]:
    """The code blocks of ``text``, in order."""
    return [match.group(2) for match in _code_fences(text)]


def has_unclosed_block(text: str) -> bool:
    """True when a fence was opened and never closed (a reply cut mid-block)."""
    return len(_FENCE_LINE.findall(text)) % 2 == 1


def prose(text: str) -> str:
    """``text`` without its fenced blocks (and without an unclosed trailing block)."""
    without = _FENCE.sub("", text)
    if has_unclosed_block(without):
        without = without[: list(_FENCE_LINE.finditer(without))[-1].start()]
    return without


def _balanced(text: str, start: int) -> str | None:
    """The text between the parenthesis opened just before ``start`` and its match."""
    depth, quote, i = 1, "", start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif text.startswith(quote, i):
                i += len(quote) - 1
                quote = ""
        elif text.startswith(('"""', "'''"), i):
            quote = text[i : i + 3]
            i += 2
        elif ch in "\"'":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def _unquote(arg: str) -> str:
    arg = arg.strip()
    try:
        value = ast.literal_eval(arg)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return arg
    return value if isinstance(value, str) else str(value)


def find_final(text: str) -> FinalMarker | None:
    """The last ``FINAL(...)`` or ``FINAL_VAR(...)`` written outside code blocks."""
    found: FinalMarker | None = None
    outside = prose(text)
    for match in _FINAL.finditer(outside):
        arg = _balanced(outside, match.end())
        if arg is None or not arg.strip():
            continue
        if match.group(1) == "FINAL_VAR":
            found = FinalMarker("var", _unquote(arg))
        else:
            found = FinalMarker("value", _unquote(arg))
    return found


def for_history(text: str) -> str:
    """The reply as kept in the conversation: its opening prose and its code blocks.

    Small models often follow a block with an invented ``Output: ...`` and then believe
    it over the real output, which comes in the next message; so text between and after
    the blocks is dropped. A reply without code is kept whole.
    """
    spans = _code_fences(text)
    if not spans:
        return text
    return text[: spans[0].start()] + "\n".join(m.group(0) for m in spans)


def final_is_literal(code: str) -> bool:
    """Whether ``code`` calls ``FINAL`` with a constant (``FINAL("7")``, ``FINAL(42)``),
    a value the model wrote itself rather than one the code computed."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "FINAL"
            and len(node.args) == 1
        ):
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                return True
            if isinstance(arg, ast.JoinedStr) and all(
                isinstance(v, ast.Constant) for v in arg.values
            ):
                return True
    return False
