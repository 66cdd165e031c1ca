"""The JSONL file format: :class:`TraceWriter` writes it, :func:`read_events` reads it
back (:func:`rlmagent.trace.model.load_trajectory` builds a trajectory from that).

One JSON object a line: a header (``{"type": "header", "format": ..., "schema": 2}``),
then one event a line, serialised with :func:`rlmagent.types.to_dict` plus its class name
in ``"type"``. Nothing is written twice: ``RunEnded.result.trajectory`` is left out (it
repeats every step already on file), and so is the prompt of a ``SubCallEnded`` whose
``SubCallStarted`` (which holds the same prompt) is on file; readers put it back. The
value of any secret-looking key is replaced by ``"[redacted]"``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import types
import typing
from collections import abc
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Union

from rlmagent import events as ev
from rlmagent.errors import UsageError
from rlmagent.types import to_dict

FORMAT = "rlmagent.trajectory"
SCHEMA_VERSION = 2
REDACTED = "[redacted]"
_SECRET_KEY = re.compile(
    r"api[_-]?key|secret|passw(or)?d|authori[sz]ation|access[_-]?token|bearer|credential",
    re.IGNORECASE,
)
_EVENT_TYPES: dict[str, type[ev.Event]] = {
    name: obj
    for name, obj in vars(ev).items()
    if isinstance(obj, type) and issubclass(obj, ev.Event) and obj is not ev.Event
}


# ----------------------------------------------------------------------------- decoding

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def decode(tp: Any, value: Any) -> Any:
    """Rebuild a value of type ``tp`` (a dataclass of this package, nested) from JSON data."""
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return decode(options[0], value) if len(options) == 1 else value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise TypeError(f"{tp.__name__} needs an object, got {type(value).__name__}")
        hints = _hints(tp)
        kwargs = {
            f.name: decode(hints[f.name], value[f.name])
            for f in dataclasses.fields(tp)
            if f.name in value
        }
        return tp(**kwargs)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(decode(item, v) for v in value)
    if origin in (abc.Mapping, dict) and isinstance(value, Mapping):
        args = typing.get_args(tp)
        item = args[1] if len(args) == 2 else Any
        return {k: decode(item, v) for k, v in value.items()}
    return value


def _scrub(value: Any) -> Any:
    """``value`` with the value of every secret-looking mapping key replaced."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _SECRET_KEY.search(str(k)) else _scrub(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def event_to_dict(event: ev.Event) -> dict[str, Any]:
    """One event as the JSON-able dict written on its line (scrubbed, ``type`` first)."""
    data = to_dict(event)
    if isinstance(event, ev.RunEnded) and isinstance(data.get("result"), dict):
        data["result"].pop("trajectory", None)
    return {"type": type(event).__name__, **_scrub(data)}


def event_from_dict(data: Mapping[str, Any]) -> ev.Event:
    """The typed event a line holds. Unknown keys are ignored (newer writers)."""
    name = data.get("type")
    cls = _EVENT_TYPES.get(str(name))
    if cls is None:
        raise ValueError(f"unknown event type {name!r}")
    return decode(cls, {k: v for k, v in data.items() if k != "type"})


def _json_default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


MAX_SAFE_DEPTH = 200


def _safe(value: Any, path: tuple[int, ...] = ()) -> Any:
    """``value`` as data ``json.dumps`` always encodes: containers as lists and dicts
    with str keys, anything else that is not a JSON scalar as its ``repr`` (or its type
    name when even that fails); a cycle, or nesting past ``MAX_SAFE_DEPTH``, as a note."""
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 64 else f"<int of {value.bit_length():,} bits>"
    if id(value) in path:
        return "<cycle>"
    if len(path) >= MAX_SAFE_DEPTH:
        return "<nested too deep to write>"
    inner = (*path, id(value))
    if isinstance(value, Mapping):
        return {_key(k): _safe(v, inner) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_safe(v, inner) for v in value]
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    try:
        return repr(key)
    except Exception:
        return f"<{type(key).__name__} that cannot be shown>"


def encode_line(data: Mapping[str, Any]) -> str:
    """One JSON line for ``data``, whatever it holds: lone surrogates stay ``\\udXXX``
    escapes (the file is written with ``backslashreplace``, which is the JSON escape), and
    what ``json.dumps`` refuses (a cycle, a huge int, an object whose ``repr`` fails) is
    written through :func:`_safe` with ``"unencodable"`` naming the problem."""
    try:
        return json.dumps(data, ensure_ascii=False, default=_json_default) + "\n"
    except Exception as exc:  # a default= repr that raised counts too
        safe = _safe(data)
        if isinstance(safe, dict):
            safe["unencodable"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        return json.dumps(safe, ensure_ascii=False) + "\n"


def _version() -> str:
    try:
        return metadata.version("rlmagent")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "unknown"


class TraceWriter:
    """A bus subscriber writing one JSON line per event to ``path``, flushed per event.

    Thread-safe: events arrive from the agent's thread and from sub-call threads. The
    file is created (parents too) and truncated on construction, and the header line is
    written at once. Events that arrive after :meth:`close` are dropped.

    >>> bus.subscribe(TraceWriter("run.jsonl"))  # doctest: +SKIP
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # backslashreplace writes a lone surrogate as its JSON escape (\\ud800): readers
        # get the same string back, and no event is lost to an encoding error
        self._file: IO[str] | None = self.path.open(
            "w", encoding="utf-8", errors="backslashreplace"
        )
        self.events_written = 0
        self._prompt_on_file: set[str] = set()  # sub-calls whose start line holds the prompt
        header = {
            "type": "header",
            "format": FORMAT,
            "schema": SCHEMA_VERSION,
            "created": time.time(),
            "rlmagent": _version(),
        }
        self._write(header)

    def _write(self, data: Mapping[str, Any]) -> None:
        line = encode_line(data)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line)
            self._file.flush()

    def __call__(self, event: ev.Event) -> None:
        try:
            data = event_to_dict(event)
        except Exception as exc:  # never lose an event: write what can be written
            data = {"type": type(event).__name__, **_safe(_scrub(vars(event)))}
            data["unencodable"] = f"{type(exc).__name__}: {str(exc)[:500]}"
        if isinstance(event, ev.SubCallStarted):
            self._prompt_on_file.add(event.call_id)
        elif isinstance(event, ev.SubCallEnded) and event.call.call_id in self._prompt_on_file:
            self._prompt_on_file.discard(event.call.call_id)
            data["call"].pop("prompt", None)
        self._write(data)
        self.events_written += 1

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_lines(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], bool, int]:
    """Header, event dicts, whether the last line was cut short, malformed-line count."""
    header: dict[str, Any] | None = None
    items: list[dict[str, Any]] = []
    truncated = False
    skipped = 0
    with path.open("rb") as f:
        raw_lines = f.read().split(b"\n")
    last = len(raw_lines) - 1
    for i, raw in enumerate(raw_lines):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == last:  # the writer was killed mid-line: keep what came before
                truncated = True
            else:
                skipped += 1
            continue
        if not isinstance(data, dict):
            skipped += 1
        elif header is None:
            if data.get("type") != "header" or data.get("format") != FORMAT:
                raise UsageError(f"{path} is not an rlmagent trajectory (no header line)")
            header = data
        else:
            items.append(data)
    if header is None:
        raise UsageError(f"{path} is not an rlmagent trajectory (empty or no header)")
    _restore_prompts(items)
    schema = header.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise UsageError(
            f"{path} has trajectory schema {schema!r}; this rlmagent reads up to "
            f"{SCHEMA_VERSION}: upgrade rlmagent"
        )
    return header, items, truncated, skipped


def _restore_prompts(items: list[dict[str, Any]]) -> None:
    """Give each ``SubCallEnded`` written without its prompt the prompt of its start line."""
    prompts: dict[Any, Any] = {}
    for item in items:
        kind = item.get("type")
        if kind == "SubCallStarted":
            prompts[item.get("call_id")] = item.get("prompt", "")
        elif kind == "SubCallEnded" and isinstance(call := item.get("call"), dict):
            call.setdefault("prompt", prompts.pop(call.get("call_id"), ""))


def iter_events(path: str | Path) -> Iterator[ev.Event]:
    """The typed events of a trajectory file, in order (malformed lines skipped)."""
    _, items, _, _ = _read_lines(Path(path))
    for item in items:
        try:
            yield event_from_dict(item)
        except (ValueError, TypeError):
            continue


def read_events(path: str | Path) -> tuple[dict[str, Any], list[ev.Event], bool, int]:
    """A trajectory file's header, events, whether it was cut short, and lines skipped."""
    header, items, truncated, skipped = _read_lines(Path(path))
    events: list[ev.Event] = []
    for item in items:
        try:
            events.append(event_from_dict(item))
        except (ValueError, TypeError):
            skipped += 1
    return header, events, truncated, skipped
