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

Limits. A frame from the worker (hostile) is at most :data:`WORKER_FRAME_BYTES` (16 MiB),
holds at most :data:`WORKER_FRAME_ITEMS` array elements and object members in all and
nests at most :data:`WORKER_FRAME_DEPTH` levels; the counts are checked on the bytes
before anything is parsed (:func:`check_shape`), so a frame of millions of empty objects
is refused without building them. A frame from the host is at most
:data:`HOST_FRAME_BYTES` (64 MiB): sub-call answers travel that way. The worker applies
the same limits to what it sends, so model code that asks too much in one call gets an
error in its cell instead of a dead worker.
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
HOST_FRAME_BYTES = 64 * 1024 * 1024
"""Largest frame from the host to the worker (replies carry sub-call answers)."""
MAX_FRAME_BYTES = HOST_FRAME_BYTES
"""The default of :func:`encode` and :func:`read_frame` (the host-to-worker limit)."""
WORKER_FRAME_BYTES = 16 * 1024 * 1024
"""Largest frame from the worker to the host; a larger announced length ends the worker."""
WORKER_FRAME_ITEMS = 500_000
"""Most array elements plus object members a frame from the worker may hold in all."""
WORKER_FRAME_DEPTH = 100
"""Deepest nesting of arrays and objects in a frame from the worker."""


class FrameError(Exception):
    """A frame was malformed, oversized or not a JSON object with a type."""


_TOKENS = None  # compiled on first use: ``re`` costs the worker's start-up


def _tokens():  # type: ignore[no-untyped-def]
    global _TOKENS
    if _TOKENS is None:
        import re

        # a whole string (possessive: linear), a lone quote (an unterminated string), or
        # one structural byte
        _TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|"|[\[\]{},]', re.DOTALL)
    return _TOKENS


def check_shape(body: bytes, max_items: int, max_depth: int) -> None:
    """Raise :class:`FrameError` unless the JSON in ``body`` holds at most ``max_items``
    array elements and object members and nests at most ``max_depth`` levels.

    Counted on the bytes, before parsing: commas and opening brackets outside strings
    (an upper bound of elements and members). Usually one pass of ``bytes.count``; only
    a body where those bytes, strings included, pass a limit is tokenized, and that stops
    at the first count over it. Invalid JSON may pass; the parser refuses it then.
    """
    opens = body.count(b"[") + body.count(b"{")
    if opens + body.count(b",") <= max_items and opens <= max_depth:
        return
    items = depth = strings = 0
    most_strings = 2 * max_items + 2  # keys and values: no valid body holds more
    for match in _tokens().finditer(body):
        byte = body[match.start()]
        if byte == 0x22:  # '"'
            if match.end() - match.start() == 1:
                raise FrameError("frame holds an unterminated string")
            strings += 1
            if strings > most_strings:
                raise FrameError(f"frame holds more than {most_strings:,} strings")
            continue
        if byte in (0x5B, 0x7B):  # '[' '{'
            depth += 1
            if depth > max_depth:
                raise FrameError(f"frame nests deeper than {max_depth} levels")
        elif byte in (0x5D, 0x7D):  # ']' '}'
            depth -= 1
            continue
        items += 1
        if items > max_items:
            raise FrameError(
                f"frame holds more than {max_items:,} array elements and object members"
            )


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


def encode(
    message: dict[str, Any],
    *,
    max_bytes: int = MAX_FRAME_BYTES,
    max_items: int | None = None,
    max_depth: int = WORKER_FRAME_DEPTH,
) -> bytes:
    """One frame: header and body. Raises :class:`FrameError` if the body is over
    ``max_bytes`` or (with ``max_items``) over the shape limits of :func:`check_shape`;
    ``TypeError`` / ``ValueError`` for what JSON cannot hold."""
    body = dumps(message).encode("utf-8", "surrogatepass")
    if len(body) > max_bytes:
        raise FrameError(f"frame of {len(body):,} bytes exceeds the limit of {max_bytes:,}")
    if max_items is not None:
        check_shape(body, max_items, max_depth)
    return HEADER.pack(len(body)) + body


def decode(
    body: bytes, *, max_items: int | None = None, max_depth: int = WORKER_FRAME_DEPTH
) -> dict[str, Any]:
    """The message in a frame's body; with ``max_items``, its shape is checked on the
    bytes first (:func:`check_shape`). Raises :class:`FrameError`."""
    if max_items is not None:
        check_shape(body, max_items, max_depth)
    try:
        message = loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FrameError(f"frame is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise FrameError("frame is not a JSON object with a string 'type'")
    return message


MAX_REPLY_ERROR_CHARS = 4_000
"""Longest error text of a reply frame (host error messages are cut to it)."""


def shown(text: str, limit: int = 80) -> str:
    """``repr(text)`` of at most about ``limit`` characters, naming the full length when
    cut: for putting text the worker sent into a message without echoing all of it."""
    shown = repr(text[: limit + 1])
    if len(text) <= limit and len(shown) <= limit + 2:
        return shown
    return f"{shown[:limit]}... ({len(text):,} characters)"


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with a note of how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit:,} more characters cut]"


def reply_frame(call_id: int, value: Any = None, error: str | None = None) -> bytes:
    """The host's reply to call ``call_id``, as a frame that always encodes: a value that
    JSON cannot hold or that does not fit a frame becomes an error reply, and the error
    text is cut to :data:`MAX_REPLY_ERROR_CHARS`."""
    if error is None:
        try:
            return encode({"type": "reply", "id": call_id, "ok": True, "value": value})
        except FrameError as exc:
            error = f"the result does not fit a frame: {exc}"
        except (TypeError, ValueError, RecursionError) as exc:
            error = f"the result cannot be sent: {type(exc).__name__}: {clip(str(exc), 200)}"
    reply = {
        "type": "reply",
        "id": call_id,
        "ok": False,
        "error": clip(error, MAX_REPLY_ERROR_CHARS),
    }
    return encode(reply)


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
