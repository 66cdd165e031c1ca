"""Typed answers: the ``output_type`` of a run, checked in the host.

``output_type`` is a Python type (``int``, ``float``, ``bool``, ``str``, ``list[str]``,
a dataclass, a ``TypedDict``, anything pydantic's ``TypeAdapter`` takes) or a JSON
Schema (a ``dict``). The worker only ever sends text (what ``FINAL`` / ``FINAL_VAR``
made of the value), so the value is rebuilt here: the text is read as JSON, else as a
Python literal (``ast.literal_eval``, which evaluates nothing: ``FINAL_VAR`` of a list
or dict arrives as its ``repr``), else kept as the text itself, and then validated.
Nothing the worker sends is trusted: a value that does not validate is shown to the
model to correct, at most :data:`MAX_TYPE_CORRECTIONS` times, then
:class:`~rlmagent.errors.OutputTypeError`.

Validators: pydantic's ``TypeAdapter`` for Python types (it coerces ``"42"`` to ``42``
and builds dataclasses and TypedDicts from dicts); ``jsonschema`` for a JSON Schema,
because pydantic produces schemas but cannot validate data against a schema it is
given. Both are the optional extra ``rlmagent[typed]``, imported only when a run has
an ``output_type``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmagent import prompts
from rlmagent.errors import OutputTypeError, UsageError

MAX_TYPE_CORRECTIONS = 2
"""How many times a mismatching answer is sent back before OutputTypeError."""
MAX_LITERAL_CHARS = 1 << 20
"""Longest FINAL text read as a Python literal (JSON is read at any length)."""
MAX_SCHEMA_CHARS = 1500
"""Longest JSON Schema shown to the model; a longer one is cut."""
MAX_ERRORS_SHOWN = 5
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n(.*?)\n?```$", re.S)
_INSTALL_HINT = (
    'typed answers (output_type=) need the "typed" extra: pip install "rlmagent[typed]" '
    '(from a clone: pip install ".[typed]")'
)


class _Mismatch(Exception):
    """The value does not have the expected type; the message says why."""


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """A checked ``output_type``: its name, its JSON Schema and its validator."""

    name: str
    schema: dict[str, Any]
    validate: Callable[[Any], Any]
    """Data -> the typed value; raises ``_Mismatch`` with a readable message."""
    text_only: bool = False
    """The type is ``str``: the FINAL text is the value, never parsed."""

    def describe(self) -> str:
        """The line of the prompt that tells the model the expected type."""
        schema = json.dumps(self.schema, ensure_ascii=False, separators=(",", ":"))
        if len(schema) > MAX_SCHEMA_CHARS:
            schema = schema[:MAX_SCHEMA_CHARS] + " ..."
        return prompts.render("output_type", expected=self.name, schema=schema)

    def check(self, text: str) -> Any:
        """The typed value of a FINAL ``text``; raises ``_Mismatch``."""
        if self.text_only:
            return self.validate(text)
        candidates = [*_parsed(text), text]
        first: _Mismatch | None = None
        for data in candidates:
            try:
                return self.validate(data)
            except _Mismatch as exc:
                first = first or exc
        assert first is not None
        raise first


def _parsed(text: str) -> list[Any]:
    """What ``text`` may encode: JSON, else a Python literal (none if neither)."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        return [json.loads(body)]
    except (ValueError, RecursionError):
        pass
    if len(body) <= MAX_LITERAL_CHARS:
        try:
            return [ast.literal_eval(body)]
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            pass
    return []


def load_schema(path: str | Path) -> dict[str, Any]:
    """A JSON Schema read from a file (``rlm run --schema``); UsageError names the problem."""
    where = f"schema file {str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{where} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {where}: {exc}") from None
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where} is not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise UsageError(f"{where} must hold a JSON object (a JSON Schema)")
    return schema


def type_name(output_type: Any) -> str:
    """``int``, ``list[str]``, ``Person``: how a type reads in a prompt or an error."""
    if isinstance(output_type, dict):
        title = output_type.get("title")
        return f"JSON matching the schema {title!r}" if title else "JSON matching the schema"
    if isinstance(output_type, type) and not typing.get_args(output_type):
        return output_type.__name__
    return repr(output_type).replace("typing.", "").replace("typing_extensions.", "")


def output_spec(output_type: Any) -> OutputSpec:
    """Check ``output_type`` and build its validator; UsageError when it cannot be used."""
    if output_type is None:
        raise UsageError("output_type is None: leave it out for an untyped answer")
    if isinstance(output_type, dict):
        return _schema_spec(output_type)
    return _pydantic_spec(output_type)


def _pydantic_spec(output_type: Any) -> OutputSpec:
    try:
        import pydantic
    except ImportError:
        raise UsageError(_INSTALL_HINT) from None
    target = _compatible(output_type)
    try:
        adapter = pydantic.TypeAdapter(target)
        schema = adapter.json_schema()
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError, TypeError) as exc:
        raise UsageError(
            f"output_type {type_name(output_type)} cannot be validated: {exc}".split("\n")[0]
        ) from None

    def validate(data: Any) -> Any:
        try:
            return adapter.validate_python(data)
        except pydantic.ValidationError as exc:
            raise _Mismatch(_pydantic_errors(exc)) from None

    return OutputSpec(type_name(output_type), schema, validate, text_only=output_type is str)


def _pydantic_errors(exc: Any) -> str:
    lines = []
    for error in exc.errors(include_url=False)[:MAX_ERRORS_SHOWN]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        got = _short(error.get("input"))
        lines.append(f"- {'at ' + where + ': ' if where else ''}{error['msg']} (got {got})")
    more = exc.error_count() - len(lines)
    if more > 0:
        lines.append(f"- ... and {more} more")
    return "\n".join(lines)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _schema_spec(schema: dict[str, Any]) -> OutputSpec:
    try:
        import jsonschema
    except ImportError:
        raise UsageError(_INSTALL_HINT) from None
    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
        json.dumps(schema)
    except (jsonschema.SchemaError, TypeError, ValueError) as exc:
        message = getattr(exc, "message", str(exc))
        raise UsageError(f"output_type is not a valid JSON Schema: {message}") from None
    remote = _remote_refs(schema)
    if remote:
        raise UsageError(
            f"output_type's JSON Schema refers to {remote[0]!r}: only local references "
            "(#/...) are resolved, nothing is fetched; put the referenced schema inline"
        )
    from referencing import Registry
    from referencing.exceptions import NoSuchResource, Unresolvable

    def no_fetching(uri: str) -> Any:
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class

    registry: Any = Registry(retrieve=no_fetching)  # type: ignore[call-arg]
    validator = validator_cls(schema, registry=registry)

    def validate(data: Any) -> Any:
        try:
            errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
        except Unresolvable as exc:  # found only when validation reaches the $ref
            raise UsageError(
                f"output_type's JSON Schema has a $ref that does not resolve: {exc}"
            ) from None

        if not errors:
            return data
        lines = []
        for error in errors[:MAX_ERRORS_SHOWN]:
            where = ".".join(str(p) for p in error.absolute_path)
            lines.append(f"- {'at ' + where + ': ' if where else ''}{_cut(error.message)}")
        if len(errors) > MAX_ERRORS_SHOWN:
            lines.append(f"- ... and {len(errors) - MAX_ERRORS_SHOWN} more")
        raise _Mismatch("\n".join(lines))

    return OutputSpec(type_name(schema), schema, validate, text_only=schema.get("type") == "string")


def _remote_refs(schema: Any) -> list[str]:
    """The ``$ref`` values of ``schema`` that point outside it."""
    found: list[str] = []
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                found.append(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + " ..."


def _compatible(tp: Any) -> Any:
    """``tp`` with each ``typing.TypedDict`` rebuilt on ``typing_extensions`` (pydantic
    refuses the former before Python 3.12)."""
    if sys.version_info >= (3, 12):
        return tp
    import typing_extensions

    if typing.is_typeddict(tp) and type(tp).__module__ == "typing":
        hints = typing.get_type_hints(tp)
        required = tp.__required_keys__
        fields = {
            k: _compatible(v) if k in required else typing_extensions.NotRequired[_compatible(v)]
            for k, v in hints.items()
        }
        return typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[operator]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, dict, tuple, set, frozenset) and args:
        return origin[tuple(_compatible(a) for a in args)]
    if origin is typing.Union:
        return typing.Union[tuple(_compatible(a) for a in args)]  # noqa: UP007
    return tp


class TypedAnswer:
    """The typed-answer state of one run: corrections so far and the accepted value."""

    def __init__(self, spec: OutputSpec) -> None:
        self.spec = spec
        self.corrections = 0
        self.value: Any = None

    def review(self, text: str) -> str | None:
        """None when ``text`` is accepted (``value`` holds it); else the correction to
        send the model. Raises OutputTypeError after the last correction."""
        try:
            self.value = self.spec.check(text)
            return None
        except _Mismatch as exc:
            if self.corrections >= MAX_TYPE_CORRECTIONS:
                raise self._error(text, str(exc)) from None
            self.corrections += 1
            return prompts.render(
                "output_mismatch",
                expected=self.spec.name,
                errors=str(exc),
                left=MAX_TYPE_CORRECTIONS - self.corrections + 1,
            )

    def accept(self, text: str) -> Any:
        """The typed value of a last answer (no turn is left to correct it)."""
        try:
            self.value = self.spec.check(text)
        except _Mismatch as exc:
            raise self._error(text, str(exc)) from None
        return self.value

    def _error(self, text: str, message: str) -> OutputTypeError:
        return OutputTypeError(
            f"the answer is not {self.spec.name} after {self.corrections} correction(s):\n"
            f"{message}",
            raw=text,
            validation=message,
            expected=self.spec.name,
        )
