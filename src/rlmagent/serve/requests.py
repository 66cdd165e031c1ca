"""Reading a ``POST /v1/chat/completions`` body into a :class:`ChatRequest`.

Pure functions, no I/O: everything a client sends is checked here, and every problem is an
:class:`~rlmagent.serve.errors.ApiError` (400) naming the field. Nothing a client sends can
name a file or a URL: contexts are JSON values (str, list, dict), never paths.

Where the question and the context come from (docs/SERVE.md, "The context rule"):

* With ``extra_body={"rlm": {"context": ...}}`` or ``{"rlm": {"contexts": {...}}}`` the
  last user message, whole, is the question; earlier messages are not used.
* Otherwise (an unmodified OpenAI client) the last user message is the question and every
  earlier message becomes the context, as a transcript. A last message longer than the
  server's ``question_chars`` is split: its last paragraph (text after its last blank
  line) is the question when that paragraph is short enough, else its first paragraph;
  the rest of the message goes to the end of the context. When no paragraph is short
  enough, the whole message goes to the context and the question asks the model to
  respond to it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlmagent.serve.errors import ApiError, short

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
RLM_OPTIONS = ("context", "contexts", "max_depth", "budget", "output_type", "session")
BUDGET_FIELDS = ("max_calls", "max_tokens", "max_cost_usd", "max_seconds")
DEFAULT_QUESTION_CHARS = 4000
FALLBACK_QUESTION = "Respond to the last user message, which is at the end of the context."
NEW_SESSION = "new"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


@dataclass(frozen=True)
class ChatRequest:
    """One checked chat request. ``budget`` holds only the fields the client set."""

    model: str
    question: str
    context: Any = None
    contexts: Mapping[str, Any] | None = None
    max_depth: int | None = None
    budget: Mapping[str, float] = field(default_factory=dict)
    output_type: Mapping[str, Any] | None = None
    session: str | None = None
    stream: bool = False
    derived_context: bool = False


def parse_chat(
    body: Any, *, question_chars: int = DEFAULT_QUESTION_CHARS, session_header: str | None = None
) -> ChatRequest:
    """Check ``body`` (the decoded JSON) and build the request it asks for."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' must be a non-empty string (e.g. 'rlm')", param="model")
    _check_openai_fields(body)
    messages = _messages(body.get("messages"))
    options = _rlm_options(body.get("rlm"))  # what the OpenAI clients send for extra_body
    output_type = options.get("output_type")
    if output_type is None:
        output_type = _response_format(body.get("response_format"))
    session = options.get("session")
    if session is None and session_header is not None:
        session = _session_id(session_header.strip(), "the X-RLM-Session header")
    last = messages[-1][1]
    explicit = "context" in options or "contexts" in options
    if explicit or (session is not None and session != NEW_SESSION):
        question, context, derived = last.strip(), options.get("context"), False
    else:
        question, context = conversation_context(messages, question_chars)
        derived = context is not None
    if not question:
        raise ApiError(400, "the question (the last user message) is empty", param="messages")
    return ChatRequest(
        model=model,
        question=question,
        context=context,
        contexts=options.get("contexts"),
        max_depth=options.get("max_depth"),
        budget=options.get("budget", {}),
        output_type=output_type,
        session=session,
        stream=bool(body.get("stream", False)),
        derived_context=derived,
    )


def conversation_context(
    messages: list[tuple[str, str]], question_chars: int
) -> tuple[str, str | None]:
    """The context rule for unmodified clients: ``(question, context or None)``."""
    *earlier, (_, last) = messages
    question, rest = split_question(last, question_chars)
    parts = [f"[{role}]\n{text}" for role, text in earlier if text.strip()]
    if rest:
        label = "user, the last message" if question != FALLBACK_QUESTION else "user, last"
        parts.append(f"[{label}]\n{rest}")
    return question, ("\n\n".join(parts) if parts else None)


def split_question(text: str, limit: int) -> tuple[str, str]:
    """``(question, rest)`` of a last user message (see the module doc)."""
    text = text.strip()
    if len(text) <= limit:
        return text, ""
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    if len(paragraphs) > 1:
        if len(paragraphs[-1]) <= limit:
            return paragraphs[-1], "\n\n".join(paragraphs[:-1])
        if len(paragraphs[0]) <= limit:
            return paragraphs[0], "\n\n".join(paragraphs[1:])
    return FALLBACK_QUESTION, text


def _check_openai_fields(body: Mapping[str, Any]) -> None:
    """Type checks of the OpenAI fields we read or refuse; the others are ignored."""
    kinds: dict[str, tuple[type, ...]] = {
        "stream": (bool,),
        "stream_options": (dict, type(None)),
        "n": (int, type(None)),
        "temperature": (int, float, type(None)),
        "top_p": (int, float, type(None)),
        "max_tokens": (int, type(None)),
        "max_completion_tokens": (int, type(None)),
        "user": (str, type(None)),
    }
    for name, types in kinds.items():
        if name in body and (
            not isinstance(body[name], types) or _is_bool_number(body[name], types)
        ):
            raise ApiError(
                400, f"{name!r} has the wrong type ({type(body[name]).__name__})", param=name
            )
    if body.get("n") not in (None, 1):
        raise ApiError(400, "'n' must be 1: one answer per request", param="n")


def _is_bool_number(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, bool) and bool not in types


def _messages(value: Any) -> list[tuple[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "'messages' must be a non-empty list", param="messages")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object", param=where)
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(
                400,
                f"{where}.role must be one of {', '.join(ROLES)}, got {short(role)}",
                param=f"{where}.role",
            )
        out.append((role, _content(message.get("content"), f"{where}.content")))
    if out[-1][0] != "user":
        raise ApiError(
            400, "the last message must be from the user (it holds the question)", param="messages"
        )
    return out


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ApiError(400, f"{where} must be a string or a list of text parts", param=where)
    texts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ApiError(400, f"{where}[{j}] must be an object with a 'type'", param=where)
        if part["type"] != "text":
            raise ApiError(
                400,
                f"{where}[{j}]: only text parts are supported, got {short(part['type'])}",
                param=where,
            )
        if not isinstance(part.get("text"), str):
            raise ApiError(400, f"{where}[{j}].text must be a string", param=where)
        texts.append(part["text"])
    return "\n".join(texts)


def _rlm_options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "'rlm' must be an object", param="rlm")
    unknown = sorted(set(value) - set(RLM_OPTIONS))
    if unknown:
        raise ApiError(
            400,
            f"unknown rlm option {short(unknown[0])}; known: {', '.join(RLM_OPTIONS)}",
            param="rlm",
        )
    out: dict[str, Any] = {}
    if value.get("context") is not None:
        out["context"] = _context_value(value["context"], "rlm.context")
    if value.get("contexts") is not None:
        contexts = value["contexts"]
        if not isinstance(contexts, dict) or not contexts:
            raise ApiError(
                400,
                "rlm.contexts must be a non-empty object of name -> value",
                param="rlm.contexts",
            )
        for name in contexts:
            if not _NAME.fullmatch(name):
                raise ApiError(
                    400,
                    f"rlm.contexts: {short(name)} is not a valid name "
                    "(letters, digits and _, at most 64)",
                    param="rlm.contexts",
                )
        out["contexts"] = {k: _context_value(v, f"rlm.contexts.{k}") for k, v in contexts.items()}
    if value.get("max_depth") is not None:
        depth = value["max_depth"]
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ApiError(400, "rlm.max_depth must be a positive integer", param="rlm.max_depth")
        out["max_depth"] = depth
    if value.get("budget") is not None:
        out["budget"] = _budget(value["budget"])
    if value.get("output_type") is not None:
        out["output_type"] = check_schema(value["output_type"], "rlm.output_type")
    if value.get("session") is not None:
        out["session"] = _session_id(value["session"], "rlm.session")
    return out


def _context_value(value: Any, where: str) -> Any:
    if not isinstance(value, str | list | dict):
        raise ApiError(400, f"{where} must be a string, a list or an object", param=where)
    return value


def _budget(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ApiError(400, "rlm.budget must be an object", param="rlm.budget")
    out: dict[str, float] = {}
    for name, number in value.items():
        where = f"rlm.budget.{name}"
        if name not in BUDGET_FIELDS:
            raise ApiError(
                400,
                f"unknown budget field {short(name)}; known: {', '.join(BUDGET_FIELDS)}",
                param="rlm.budget",
            )
        if number is None:
            continue
        integral = name in ("max_calls", "max_tokens")
        kinds = (int,) if integral else (int, float)
        if not isinstance(number, kinds) or isinstance(number, bool) or number <= 0:
            what = "a positive integer" if integral else "a positive number"
            raise ApiError(400, f"{where} must be {what}", param=where)
        out[name] = number
    return out


def check_schema(schema: Any, where: str) -> dict[str, Any]:
    """A JSON Schema object whose every ``$ref`` is local (``#...``): nothing is fetched."""
    if not isinstance(schema, dict):
        raise ApiError(400, f"{where} must be a JSON Schema object", param=where)
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None and not (isinstance(ref, str) and ref.startswith("#")):
                raise ApiError(
                    400,
                    f"{where}: only local $ref ('#/...') is allowed, got {short(ref)}",
                    param=where,
                )
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def _response_format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        raise ApiError(
            400,
            "response_format.type must be text, json_object or json_schema",
            param="response_format",
        )
    if value["type"] == "text":
        return None
    if value["type"] == "json_object":
        return {"type": "object"}
    spec = value.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
        raise ApiError(
            400, "response_format.json_schema.schema must be an object", param="response_format"
        )
    return check_schema(spec["schema"], "response_format.json_schema.schema")


def _session_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _SESSION_ID.fullmatch(value):
        raise ApiError(400, f"{where} must be 'new' or a session id", param=where)
    return value
