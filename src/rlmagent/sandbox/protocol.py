"""Length-prefixed JSON frames between the host and the sandbox worker.

A frame is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON encoding
one object with a ``"type"`` key. Nothing else ever crosses the boundary: no pickle, no
code objects. This module uses only the standard library because the worker imports it
too (it runs with ``python -I -S``, without site-packages).

Messages, worker -> host::

    {"type": "ready", "hardening": [str]}                        # what the worker applied
    {"type": "call", "id": int, "method": str, "params": {...}}   # llm_query, tools...
    {"type": "done", "id": int, "output": str, "output_chars": int, "stderr": str,
     "stderr_chars": int, "error": str | None, "final": str | None}

host -> worker::

    {"type": "init", "context_path": str | None, "context_kind": "text" | "json" | "none",
     "functions": [{"name", "doc"}], "max_output_chars": int}
    {"type": "exec", "id": int, "code": str}
    {"type": "reply", "id": int, "ok": bool, "value": ..., "error": str}
"""

from __future__ import annotations

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # ``typing`` costs the worker's start-up several ms
    from typing import Any, BinaryIO

try:  # the json module's C parts, without the module itself: ``import json`` pulls in
    # ``re`` and ``enum``, which would be about a third of a sandbox worker's start-up.
    from _json import encode_basestring as _c_encode_string
    from _json import make_encoder as _c_make_encoder
    from _json import make_scanner as _c_make_scanner

    _HAVE_C = True
except ImportError:  # pragma: no cover - not CPython
    _HAVE_C = False

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame either side accepts; a larger announced length is a protocol error."""


class FrameError(Exception):
    """A frame was malformed, oversized or not a JSON object with a type."""


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": -float("inf")}


class _ScanContext:
    """What the C scanner reads from a decoder: plain JSON, as ``json.loads`` does it."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _c_make_scanner(_ScanContext()) if _HAVE_C else None  # type: ignore[arg-type]


def dumps(message: dict[str, Any]) -> str:
    """``json.dumps(message, ensure_ascii=False, separators=(",", ":"))``."""
    if not _HAVE_C:  # pragma: no cover - not CPython
        import json

        return json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    encoder = _c_make_encoder({}, _not_json, _c_encode_string, None, ":", ",", False, False, True)
    return "".join(encoder(message, 0))


def loads(text: str) -> Any:
    """``json.loads(text)`` for compact JSON (no whitespace around the value)."""
    if _scan is None:  # pragma: no cover - not CPython
        import json

        return json.loads(text)
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        raise ValueError("no JSON value at the start") from None
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at {end}")
    return value


def encode(message: dict[str, Any]) -> bytes:
    body = dumps(message).encode("utf-8", "surrogatepass")
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(body)) + body


def decode(body: bytes) -> dict[str, Any]:
    """The message in a frame's body. Raises :class:`FrameError`."""
    try:
        message = loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"frame is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("frame is not a JSON object with a string 'type'")
    return message


def write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    stream.write(encode(message))
    stream.flush()


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks = []
    remaining = n
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any] | None:
    """Read one frame; None on a clean end of stream. Raises :class:`FrameError`."""
    header = _read_exact(stream, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    if length > max_bytes:
        raise FrameError(f"announced frame of {length} bytes exceeds the limit of {max_bytes}")
    body = _read_exact(stream, length)
    if body is None:
        raise FrameError("stream ended inside a frame")
    return decode(body)
