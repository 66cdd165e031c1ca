"""Frozen result types shared by the whole package.

Everything a run produces is one of these immutable, fully typed dataclasses.
Serialisation to plain JSON-able dicts lives in one place: :func:`to_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

Message: TypeAlias = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens of one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer from an engine.

    ``cost_usd`` is None when the price of ``model`` is unknown (never a silent 0).
    ``finish_reason`` is ``"stop"`` or ``"length"`` (cut by ``max_tokens``), or whatever
    else the provider reports. ``cached`` marks an answer served from the sub-call cache.
    """

    content: str
    model: str
    usage: TokenUsage = field(default_factory=TokenUsage)
    finish_reason: str = "stop"
    cost_usd: float | None = None
    cached: bool = False


def add_costs(a: float | None, b: float | None) -> float | None:
    """``a + b`` USD, where an unknown cost (None) makes the sum unknown."""
    return None if a is None or b is None else a + b


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """Calls, tokens and cost of one model (or of a whole run)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    cached_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, completion: Completion) -> ModelUsage:
        """This usage plus one completion. Unknown cost anywhere makes the sum unknown."""
        return ModelUsage(
            calls=self.calls + 1,
            prompt_tokens=self.prompt_tokens + completion.usage.prompt_tokens,
            completion_tokens=self.completion_tokens + completion.usage.completion_tokens,
            cost_usd=add_costs(self.cost_usd, completion.cost_usd),
            cached_calls=self.cached_calls + int(completion.cached),
        )

    def merge(self, other: ModelUsage) -> ModelUsage:
        """The sum of two usages (an unknown cost in either makes the sum unknown)."""
        return ModelUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=add_costs(self.cost_usd, other.cost_usd),
            cached_calls=self.cached_calls + other.cached_calls,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """Totals over the root call and every sub-call of a run, plus a per-model breakdown."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    cached_calls: int = 0
    by_model: Mapping[str, ModelUsage] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_models(cls, by_model: Mapping[str, ModelUsage]) -> Usage:
        total = ModelUsage()
        for usage in by_model.values():
            total = total.merge(usage)
        return cls(
            calls=total.calls,
            prompt_tokens=total.prompt_tokens,
            completion_tokens=total.completion_tokens,
            cost_usd=total.cost_usd,
            cached_calls=total.cached_calls,
            by_model=dict(by_model),
        )


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one code cell did inside the sandbox.

    ``output`` holds stdout followed by the display of a bare last expression; ``error``
    a trimmed traceback when the cell raised (errors in model code are data, never
    exceptions). ``final`` is set when the cell called ``FINAL`` / ``FINAL_VAR``.
    ``state_lost`` is True when the worker was killed (timeout, crash) and restarted.
    """

    output: str = ""
    stderr: str = ""
    error: str | None = None
    final: str | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    state_lost: bool = False


RECORD_CHARS = 20_000
"""Longest prompt, answer or error a :class:`SubCall` keeps (and the events and the trace
file with it): a longer one keeps its first characters and a note; the full length is in
``prompt_chars`` / ``answer_chars``. The model always gets the whole answer."""
RUN_RECORD_CHARS = 4_000_000
"""Characters of prompts and answers one run keeps in its records; past it, each further
text keeps :data:`SHORT_RECORD_CHARS` (a run's records stay bounded however many calls a
cell makes)."""
SHORT_RECORD_CHARS = 500


def record_text(text: str, limit: int = RECORD_CHARS) -> str:
    """``text`` as a record keeps it: whole, or its first ``limit`` characters and a note
    of how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[... {len(text) - limit:,} more characters not kept]"


@dataclass(frozen=True, slots=True)
class SubCall:
    """One ``llm_query`` / ``llm_batch`` item (or child RLM) made by a code cell.

    A child RLM (``rlm_query`` / ``rlm_batch`` below ``max_depth``) has ``child_run_id``
    set to the run it started and ``turns`` to that run's turns; its ``usage`` and
    ``cost_usd`` are the child's totals, and ``cached`` is True when every call of the
    child came from the completion cache.

    ``prompt`` and ``answer`` are kept to :data:`RECORD_CHARS` (see
    :func:`record_text`); ``prompt_chars`` and ``answer_chars`` are their full lengths
    (None given: the length of what is kept; ``answer_chars`` 0 without an answer).
    """

    call_id: str
    prompt: str
    answer: str | None
    model: str
    depth: int
    usage: TokenUsage = field(default_factory=TokenUsage)
    cost_usd: float | None = None
    started_at: float = 0.0
    latency_s: float = 0.0
    error: str | None = None
    cached: bool = False
    batch_id: str | None = None
    child_run_id: str | None = None
    turns: int = 0
    prompt_chars: int | None = None
    answer_chars: int | None = None

    def __post_init__(self) -> None:
        if self.prompt_chars is None:
            object.__setattr__(self, "prompt_chars", len(self.prompt))
        if self.answer_chars is None:
            object.__setattr__(self, "answer_chars", len(self.answer or ""))


@dataclass(frozen=True, slots=True)
class Cell:
    """One code block of a root reply, with what it did and the sub-calls it made."""

    code: str
    result: ExecResult
    sub_calls: tuple[SubCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One root turn: the model's reply, the cells it ran and the observation sent back."""

    turn: int
    reply: str
    finish_reason: str = "stop"
    cells: tuple[Cell, ...] = ()
    observation: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)
    latency_s: float = 0.0


STOP_REASONS = (
    "final",
    "final_repeated",
    "answer_without_final",
    "max_turns",
    "stalled",
    "budget",
    "cancelled",
    "error",
)
"""Why a run ended. The first three are confident answers; the rest are not."""


@dataclass(frozen=True, slots=True)
class AgentResult:
    """The outcome of :meth:`rlmagent.RLMAgent.run`.

    ``stop_reason`` is one of :data:`STOP_REASONS`. ``partial_answer`` is the last FINAL
    value the model wrote, on a run that ended without a confident answer.
    ``budget_limit`` names the budget limit that stopped the run (``"calls"``,
    ``"tokens"``, ``"cost"``, ``"seconds"``), and ``budget`` is the ledger's summary
    (spent and limits) when a budget was set. ``isolation`` is the sandbox tier the
    REPL ran in, and ``isolation_fallback`` why the strongest tier was not used.
    ``answer_checked``: True when the support check accepted the answer, False when it
    did not and the answer stood anyway, None when no check ran. ``value`` is the
    answer validated against the run's ``output_type`` (an int, a dataclass, JSON data
    for a JSON Schema...), None for an untyped run; ``content`` stays the text.
    ``metadata`` is for what callers add.
    """

    content: str
    turns: int
    usage: Usage
    trajectory: tuple[Step, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = ""
    stop_reason: str | None = None
    elapsed_s: float = 0.0
    isolation: str | None = None
    isolation_fallback: str | None = None
    partial_answer: str | None = None
    budget_limit: str | None = None
    budget: Mapping[str, Any] | None = None
    answer_checked: bool | None = None
    value: Any = None

    @property
    def max_turns_exceeded(self) -> bool:
        """Whether the run used every turn and answered on the forced final turn."""
        return self.stop_reason == "max_turns"


def to_dict(obj: Any) -> Any:
    """Turn any of this module's dataclasses (nested, in containers) into JSON-able data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    return obj
