"""Describing a context to the root model without showing it.

The first message carries only this description (type, size, a short preview), so the
root prompt does not grow with the context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PREVIEW_LINES = 3
PREVIEW_LINE_CHARS = 200
_READ_CHUNK = 1 << 20


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
    """A JSON-able description: ``type``, ``chars``, ``lines`` or ``items``, ``preview``."""
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
    text = json.dumps(context, ensure_ascii=False)
    if isinstance(context, dict):
        keys = list(context)[:10]
        preview = [f"keys: {keys!r}" + (" ..." if len(context) > 10 else "")]
        return {"type": "dict", "chars": len(text), "items": len(context), "preview": preview}
    preview = [
        f"[{i}] " + _preview_lines(json.dumps(item, ensure_ascii=False) or "null")[0]
        for i, item in enumerate(context[:PREVIEW_LINES])
    ]
    return {"type": "list", "chars": len(text), "items": len(context), "preview": preview}


def summary(info: dict[str, Any]) -> str:
    """One phrase for the first message, e.g. ``a str of 52,311 characters in 800 lines``."""
    kind = info["type"]
    if kind == "none":
        return "empty (None): answer from the question alone"
    text = f"a {kind} of {info['chars']:,} characters"
    if "lines" in info:
        text += f" in {info['lines']:,} lines"
    if "items" in info:
        text += f" with {info['items']:,} items"
    return text
