"""Tools: host functions the model can call from inside the REPL.

A tool is any object with ``name``, ``description``, ``parameters`` (a JSON schema of an
object, whose ``properties`` give the argument names in order) and ``execute(**kwargs)``.
Inside the REPL it appears as a plain function ``name(...)``; the call runs on the host,
and the result is sent back as JSON (anything else as ``str``).
"""

from __future__ import annotations

import inspect
import json
import keyword
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlmagent.errors import UsageError

_JSON_TYPES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    dict: "object",
}
RESERVED_NAMES = frozenset(
    {
        "context",
        "llm_query",
        "llm_batch",
        "llm_filter",
        "llm_map",
        "llm_classify",
        "chunks",
        "rlm_query",
        "rlm_batch",
        "FINAL",
        "FINAL_VAR",
        "SHOW_VARS",
        "HostCallError",
        "print",
    }
)


@runtime_checkable
class Tool(Protocol):
    name: str
    description: str
    parameters: Mapping[str, Any]

    def execute(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class FunctionTool:
    """A :class:`Tool` made from a plain Python function (see :func:`function_tool`)."""

    fn: Callable[..., Any]
    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def execute(self, **kwargs: Any) -> Any:
        return self.fn(**kwargs)


def function_tool(
    fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
) -> FunctionTool:
    """Wrap ``fn`` as a tool; its signature and annotations give the JSON schema."""
    properties: dict[str, Any] = {}
    required = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        schema: dict[str, Any] = {}
        if param.annotation in _JSON_TYPES:
            schema["type"] = _JSON_TYPES[param.annotation]
        properties[param.name] = schema
        if param.default is param.empty:
            required.append(param.name)
    return FunctionTool(
        fn=fn,
        name=name or fn.__name__,
        description=description or inspect.getdoc(fn) or "",
        parameters={"type": "object", "properties": properties, "required": required},
    )


def check_tools(tools: Sequence[Any] | None) -> dict[str, Tool]:
    """Validate ``tools`` and index them by name; raise :class:`UsageError` naming the fault."""
    found: dict[str, Tool] = {}
    for tool in tools or ():
        if not isinstance(tool, Tool):
            raise UsageError(
                f"tool {tool!r} needs name, description, parameters and execute(**kwargs)"
            )
        name = tool.name
        if not name.isidentifier() or keyword.iskeyword(name):
            raise UsageError(f"tool name {name!r} is not a valid Python identifier")
        if name in RESERVED_NAMES:
            raise UsageError(f"tool name {name!r} is reserved by the REPL")
        if name in found:
            raise UsageError(f"two tools are named {name!r}")
        found[name] = tool
    return found


def argument_names(tool: Tool) -> list[str]:
    return list((tool.parameters or {}).get("properties", {}))


def signature(tool: Tool) -> str:
    """How the tool is shown in the system prompt: ``name(a, b) -- description``."""
    args = ", ".join(argument_names(tool))
    return f"- `{tool.name}({args})`: {tool.description.strip()}"


def bind_arguments(tool: Tool, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Map a REPL call's positional and keyword arguments onto the schema's names."""
    names = argument_names(tool)
    if len(args) > len(names):
        raise TypeError(f"{tool.name}() takes {len(names)} arguments, got {len(args)}")
    bound = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in bound:
            raise TypeError(f"{tool.name}() got two values for {key!r}")
        bound[key] = value
    missing = [n for n in (tool.parameters or {}).get("required", []) if n not in bound]
    if missing:
        raise TypeError(f"{tool.name}() is missing {', '.join(map(repr, missing))}")
    return bound


def to_json_value(value: Any) -> Any:
    """``value`` if JSON can carry it, else its ``str``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value
