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

import json
import struct
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame either side accepts; a larger announced length is a protocol error."""


class FrameError(Exception):
    """A frame was malformed, oversized or not a JSON object with a type."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(body)) + body


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
    try:
        message = json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError(f"frame is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("frame is not a JSON object with a string 'type'")
    return message
