"""Text from the sandbox and the models is data: :func:`printable` makes it safe to write
to a terminal, :func:`printable_json` does the same for JSON text (issue 15).

Model code can print anything, and a prompt injection in the context can make the model
write anything: an OSC 52 clipboard write, a title change, a screen clear, a line that
overwrites the one before. The console, the CLI's answer and ``rlm runs`` print such
text only through these. Standard library only: the CLI imports it before ``rich``.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
    "\u2066-\u2069\ud800-\udfff]"
)
"""What a terminal could act on: C0 controls but tab and newline (ESC starts every escape
sequence: CSI, OSC 52 clipboard writes, title changes, screen clears), DEL, C1 controls
(8-bit CSI and OSC), bidirectional overrides, line separators, lone surrogates."""


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: every character a terminal could act on
    (see ``_UNSAFE``) shown as its escape (``\\x1b``, ``\\u202e``), newlines and tabs
    kept, a Windows line end shown as a newline. Text from the sandbox and the models is
    data: it goes through this before the console, or the CLI, prints it."""
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return _UNSAFE.sub(_escaped, text)


def printable_json(text: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with the same characters as
    :func:`printable` written as JSON escapes (``\\u001b``): it decodes to the same
    value, and a terminal shows it as text."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
