"""Describing a context to the root model without showing it.

The first message carries only this description (type, size, a short preview), so the
root prompt does not grow with the context.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

PREVIEW_LINES = 3
PREVIEW_LINE_CHARS = 200
_READ_CHUNK = 1 << 20
KEYS_SHOWN = 10
"""Keys of a dict context listed by name."""
FIELDS_SHOWN = 8
"""Keys of a dict item listed with their types and sizes."""
SHAPE_QUOTE_CHARS = 80
"""How much of a string item its shape quotes."""


def _preview_lines(text: str) -> list[str]:
    lines = text.splitlines()[:PREVIEW_LINES]
    return [
        line if len(line) <= PREVIEW_LINE_CHARS else line[:PREVIEW_LINE_CHARS] + " ..."
        for line in lines
    ]


def _file_stats(path: Path) -> tuple[int, int, str]:
    chars = lines = 0
    head = ""
    last = ""
    with open(path, encoding="utf-8", errors="replace") as f:
        while chunk := f.read(_READ_CHUNK):
            if not head:
                head = chunk[: PREVIEW_LINES * (PREVIEW_LINE_CHARS + 1) * 4]
            chars += len(chunk)
            lines += chunk.count("\n")
            last = chunk[-1]
    if chars and last != "\n":
        lines += 1
    return chars, lines, head


def describe_context(context: Any) -> dict[str, Any]:
    """A JSON-able description: ``type``, ``chars``, ``lines`` or ``items`` (and
    ``holds``, the types of a list's items or a dict's values), ``preview``."""
    if context is None:
        return {"type": "none", "chars": 0, "preview": []}
    if isinstance(context, Path):
        chars, lines, head = _file_stats(context)
        return {
            "type": "str",
            "source": "file",
            "chars": chars,
            "lines": lines,
            "preview": _preview_lines(head),
        }
    if isinstance(context, str):
        lines = context.count("\n") + (1 if context and not context.endswith("\n") else 0)
        head = context[: PREVIEW_LINES * (PREVIEW_LINE_CHARS + 1) * 4]
        return {
            "type": "str",
            "chars": len(context),
            "lines": lines,
            "preview": _preview_lines(head),
        }
    return _describe_container(context)


def _describe_container(context: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """A list or dict as what it is: its length, the types it holds, its first items'
    shapes (keys, types, sizes), never a ``str()`` of it."""
    chars = len(json.dumps(context, ensure_ascii=False))
    if isinstance(context, dict):
        keys = list(context)
        preview = [f"keys: {keys[:KEYS_SHOWN]!r}" + (" ..." if len(keys) > KEYS_SHOWN else "")]
        preview += [f"[{k!r}] {_shape(context[k])}" for k in keys[:PREVIEW_LINES]]
        values: Any = context.values()
    else:
        preview = [f"[{i}] {_shape(item)}" for i, item in enumerate(context[:PREVIEW_LINES])]
        values = context
    return {
        "type": "dict" if isinstance(context, dict) else "list",
        "chars": chars,
        "items": len(context),
        "holds": _type_counts(values),
        "preview": preview,
    }


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _type_counts(values: Any) -> str:
    """``each a dict`` or ``998 dict, 2 str``: the types of the items, most common first."""
    counts = Counter(_type_name(v) for v in values)
    if len(counts) == 1:
        return f"each a {next(iter(counts))}"
    return ", ".join(f"{n:,} {name}" for name, n in counts.most_common(4)) + (
        ", ..." if len(counts) > 4 else ""
    )


def _quote(text: str, limit: int = SHAPE_QUOTE_CHARS) -> str:
    head = " ".join(text[: limit * 2].split())
    return json.dumps(
        head[:limit].rstrip() + (" ..." if len(text) > limit else ""), ensure_ascii=False
    )


def _size(value: Any) -> str:
    """One value's type and size, no content: ``str, 1,204 chars``, ``list of 3``."""
    if isinstance(value, str):
        lines = value.count("\n") + (1 if value and not value.endswith("\n") else 0)
        return f"str, {len(value):,} chars" + (f" in {lines:,} lines" if lines > 1 else "")
    if isinstance(value, dict):
        return f"dict of {len(value):,} keys"
    if isinstance(value, list):
        return f"list of {len(value):,}"
    return _type_name(value)


def _shape(value: Any) -> str:
    """One item: its type and size, its keys with their types and sizes, or its start."""
    if isinstance(value, str):
        return f"{_size(value)}: {_quote(value)}"
    if isinstance(value, dict):
        fields = [f"{k} ({_size(v)})" for k, v in list(value.items())[:FIELDS_SHOWN]]
        more = ", ..." if len(value) > FIELDS_SHOWN else ""
        return f"dict with {len(value):,} keys: " + ", ".join(fields) + more
    if isinstance(value, list):
        return f"list of {len(value):,} ({_type_counts(value) or 'empty'})"
    return f"{_type_name(value)}: {_cut(json.dumps(value))}"


def _cut(text: str, limit: int = SHAPE_QUOTE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def summary(info: dict[str, Any]) -> str:
    """One phrase for the first message, e.g. ``a str of 52,311 characters in 800 lines``."""
    kind = info["type"]
    if kind == "none":
        return "empty (None): answer from the question alone"
    if kind in ("list", "dict") and "holds" in info:
        unit = "items" if kind == "list" else "keys"
        holds = info["holds"]
        if holds and kind == "dict":
            holds = (
                holds.replace("each a ", "each value a ")
                if holds.startswith("each")
                else (holds + " values")
            )
        holds = f" ({holds})" if holds else ""
        return f"a {kind} of {info['items']:,} {unit}{holds}, {info['chars']:,} characters as JSON"
    text = f"a {kind} of {info['chars']:,} characters"
    if "lines" in info:
        text += f" in {info['lines']:,} lines"
    if "items" in info:
        text += f" with {info['items']:,} items"
    return text
