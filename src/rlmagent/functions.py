"""The REPL's host functions as the model sees them: their prompt lines, the operator
table, and the checks of the arguments model code sends (hostile input: every check
names what is wrong)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rlmagent import operators
from rlmagent.engines.base import estimate_tokens
from rlmagent.sandbox.protocol import shown

MAX_BATCH_SIZE = 10_000
ERROR_PREFIX = "Error: "

LLM_QUERY_DOC = (
    "`llm_query(prompt: str) -> str`: ask a sub-model. It sees only `prompt`, so put the "
    "text it needs (e.g. a slice of `context`) inside it."
)
LLM_BATCH_DOC = (
    "`llm_batch(prompts: list[str]) -> list[str]`: ask many prompts at once, concurrently; "
    "answers come back in order (a failed item is a string starting with 'Error:')."
)
RLM_QUERY_DOC = (
    "`rlm_query(prompt: str, context=None) -> str`: start a child RLM, a model like you "
    "with its own REPL whose `context` is the `context` you pass (str, list or dict); it "
    "answers `prompt` by writing code. Slower and costlier than llm_query: use it for a "
    "piece too big or too hard for one sub-model call."
)
RLM_BATCH_DOC = (
    "`rlm_batch(items: list) -> list[str]`: many rlm_query calls at once, concurrently; "
    "each item is a prompt or a (prompt, context) pair; answers come back in order (a "
    "failed item is a string starting with 'Error:')."
)
RLM_QUERY_LEAF_DOC = (
    "`rlm_query(prompt: str, context=None) -> str`: at this depth, one plain sub-model "
    "call, like llm_query, on `prompt` followed by the text of `context`."
)
RLM_BATCH_LEAF_DOC = (
    "`rlm_batch(items: list) -> list[str]`: at this depth, like llm_batch; each item is a "
    "prompt or a (prompt, context) pair."
)
LLM_FILTER_DOC = (
    "`llm_filter(items: list, condition: str) -> list`: the items for which a sub-model "
    'says `condition` holds (e.g. "is about a billing problem"), in order; each item is '
    "judged by its own text."
)
LLM_MAP_DOC = (
    "`llm_map(items: list, instruction: str) -> list[str]`: one sub-model answer per item, "
    'in order (e.g. "the city named here, or none").'
)
LLM_CLASSIFY_DOC = (
    "`llm_classify(items: list, labels: list[str] | dict[str, str]) -> list`: one of "
    "`labels` per item, in order (None where no label could be read); a dict gives each "
    "label's meaning."
)
OPERATORS = {
    "llm_filter": (operators.llm_filter, ("items", "condition"), LLM_FILTER_DOC),
    "llm_map": (operators.llm_map, ("items", "instruction"), LLM_MAP_DOC),
    "llm_classify": (operators.llm_classify, ("items", "labels"), LLM_CLASSIFY_DOC),
}
"""The semantic operators: host function name -> (function, arguments, prompt line)."""
RECURSIVE_FUNCTIONS = ("rlm_query", "rlm_batch")
CHARS_PER_TOKEN_LOW = 3
"""A low count of characters a token, to keep operator prompts inside a window."""


def prompt_room(window: int | None, max_tokens: int) -> int:
    """The longest operator prompt, in characters, that fits a sub-model's ``window``
    (tokens; None: unknown) with ``max_tokens`` kept for its answer."""
    if window is None:
        return operators.MAX_PROMPT_CHARS
    room = (window - max_tokens) * CHARS_PER_TOKEN_LOW
    return max(operators.MIN_PROMPT_CHARS, min(room, operators.MAX_PROMPT_CHARS))


def check_fits(fn: str, prompt: str, window: int | None, model: str, max_tokens: int) -> None:
    """The window guard: refuse, before any call, a prompt longer than the sub-model's
    ``window`` (tokens; None: unknown) with ``max_tokens`` kept for its answer."""
    if window is None:
        return
    tokens = estimate_tokens(prompt)
    if tokens + max_tokens > window:
        room = max(1_000, (window - max_tokens) * CHARS_PER_TOKEN_LOW)
        raise ValueError(
            f"{fn}: the prompt is about {tokens:,} tokens ({len(prompt):,} characters) "
            f"but the sub-model {model!r} has a {window:,}-token window, "
            f"{max_tokens:,} of them kept for its answer: split the text with "
            f"chunks(text, {room:,}) and ask about each piece (llm_batch), or use "
            "llm_filter / llm_map / llm_classify on its lines"
        )


def arguments(
    fn: str, names: tuple[str, ...], args: list[Any], kwargs: dict[str, Any]
) -> list[Any]:
    """Bind ``args`` / ``kwargs`` to ``names`` (the first required, the rest default None)."""
    unknown = [n for n in kwargs if n not in names]
    if unknown or len(args) > len(names):
        takes = ", ".join(repr(n) for n in names)
        named = ", ".join(  # text from the worker: never all of it
            n if n.isidentifier() and len(n) <= 40 else shown(n, 40) for n in unknown[:5]
        )
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        raise TypeError(f"{fn}() takes {takes}" + (f"; unknown: {named}{more}" if unknown else ""))
    values: list[Any] = list(args) + [None] * (len(names) - len(args))
    for index, name in enumerate(names):
        if name in kwargs:
            if index < len(args):
                raise TypeError(f"{fn}() got {name!r} twice")
            values[index] = kwargs[name]
    if len(args) == 0 and names[0] not in kwargs:
        raise TypeError(f"{fn}() missing its argument {names[0]!r}")
    return values


def check_prompt(where: str, prompt: Any) -> str:
    if not isinstance(prompt, str):
        raise TypeError(f"{where} must be a str, got {type(prompt).__name__}")
    return prompt


def check_size(fn: str, items: Sequence[Any]) -> None:
    if len(items) > MAX_BATCH_SIZE:
        raise ValueError(f"{fn} takes at most {MAX_BATCH_SIZE} items, got {len(items)}")


def rlm_item(index: int, item: Any) -> tuple[str, Any]:
    where = f"rlm_batch item {index}"
    if isinstance(item, str):
        return item, None
    if isinstance(item, list | tuple) and len(item) == 2:
        return check_prompt(f"{where} prompt", item[0]), item[1]
    if isinstance(item, dict) and "prompt" in item and set(item) <= {"prompt", "context"}:
        return check_prompt(f"{where} prompt", item["prompt"]), item.get("context")
    raise TypeError(
        f"{where} must be a prompt (str), a (prompt, context) pair or a dict with 'prompt' "
        f"and 'context', got {type(item).__name__}"
    )


def with_context(prompt: str, context: Any) -> str:
    """The prompt of a plain sub-call standing in for a child RLM: prompt, then context."""
    if context is None:
        return prompt
    text = context if isinstance(context, str) else json.dumps(context, ensure_ascii=False)
    return f"{prompt}\n\n{text}"
