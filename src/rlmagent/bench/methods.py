"""The methods compared: the RLM and the baselines a user would try instead.

=============  ==========================================================================
``rlm``        :class:`~rlmagent.RLMAgent`, depth 1: REPL + ``llm_query`` / ``llm_batch``
``rlm-nosub``  the same REPL without sub-calls (``RLMAgent(sub_calls=False)``)
``direct``     the whole context in one prompt; if it does not fit the model's window the
               item is a *context overflow*: no call, score 0 (as in the RLM paper)
``summary``    iterative compaction: read the context chunk by chunk, rewriting notes
               kept for the question, then answer from the notes
``bm25``       split into passages, rank them with BM25 (``rank-bm25``) against the
               question, put the best that fit the window in one prompt
=============  ==========================================================================

Prompt sizes are estimated at 4 characters a token (:func:`estimate_tokens`); the window
is :attr:`MethodConfig.window`. All calls go through ``agenerate`` so that items run
concurrently.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlmagent.bench.items import BenchItem
from rlmagent.budget import Budget
from rlmagent.engines.base import Engine, estimate_tokens
from rlmagent.errors import EngineError, RLMError, UsageError
from rlmagent.settings import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_TURNS,
    DEFAULT_SUB_TEMPERATURE,
)
from rlmagent.settings import DEFAULT_MAX_TOKENS as DEFAULT_RLM_MAX_TOKENS
from rlmagent.types import Completion, Message, ModelUsage

DEFAULT_WINDOW = 8192
DEFAULT_MAX_TOKENS = 1024
DEFAULT_PASSAGE_TOKENS = 512
OVERFLOW_CHECKS = ("estimate", "engine")
PROMPT_OVERHEAD = 300
"""Estimated tokens of a baseline's instructions and chat template, kept free in the window."""

KNOWN_WINDOWS: dict[str, int] = {
    "anthropic": 200_000,
    "openai": 128_000,
    "openrouter": 128_000,
}
"""Context windows (tokens) assumed per provider when none is given; a safe lower bound."""

METHODS: dict[str, str] = {
    "rlm": "RLM, depth 1: the context in a REPL, with llm_query/llm_batch sub-calls",
    "rlm-nosub": "the same REPL without sub-calls",
    "direct": "the whole context in the prompt (context overflow = score 0)",
    "summary": "iterative compaction: notes rewritten chunk by chunk, then an answer",
    "bm25": "BM25 retrieval of the best passages that fit the window, then an answer",
}

DIRECT_SYSTEM = "Answer the question about the document. Follow the answer format asked for."
SUMMARY_SYSTEM = (
    "You read a long document one part at a time and keep notes for a question. Keep "
    "every fact that may help answer it: exact names, numbers and identifiers, and "
    "running counts when the question needs counting. Reply with the updated notes only."
)
_OVERFLOW = re.compile(
    r"context (window|length)|maximum context|too long|exceeds? .*(window|context|limit)",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Models:
    """The engines a method may use. ``sub_engine`` / ``sub_model`` serve RLM sub-calls."""

    engine: Engine
    model: str
    sub_engine: Engine | None = None
    sub_model: str | None = None


@dataclass(frozen=True, slots=True)
class MethodConfig:
    """Settings shared by every method.

    ``window`` is the model's context window in (estimated) tokens; ``max_tokens`` the
    answer (and notes) length of the baselines. ``max_turns``, ``rlm_max_tokens`` and
    ``max_concurrency`` go to :class:`~rlmagent.RLMAgent`; ``sandbox`` builds its
    sandbox (None: the agent's default, a subprocess); ``budget`` caps each RLM item
    (a :class:`~rlmagent.budget.Budget`; None: no cap); ``trace_dir``, where each RLM
    item's trajectory is written (``<item_id>-<method>.jsonl``; None: nowhere).
    ``overflow_check`` decides when ``direct`` is a context overflow: ``"estimate"`` (no
    call when the estimated prompt plus ``max_tokens`` exceeds ``window``) or
    ``"engine"`` (always call; the engine's own context-length error is the overflow,
    which uses the model's real tokenizer).
    """

    window: int = DEFAULT_WINDOW
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    passage_tokens: int = DEFAULT_PASSAGE_TOKENS
    max_turns: int = DEFAULT_MAX_TURNS
    rlm_max_tokens: int = DEFAULT_RLM_MAX_TOKENS
    sub_temperature: float = DEFAULT_SUB_TEMPERATURE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    sandbox: Callable[[], Any] | None = None
    overflow_check: str = "estimate"
    budget: Budget | None = None
    check_answers: bool | None = None
    trace_dir: str | None = None

    def __post_init__(self) -> None:
        if self.overflow_check not in OVERFLOW_CHECKS:
            raise UsageError(
                f"overflow_check must be one of {', '.join(OVERFLOW_CHECKS)}, "
                f"got {self.overflow_check!r}"
            )
        if self.window < 512:
            raise UsageError(f"the context window must be at least 512 tokens, got {self.window}")
        if self.max_tokens < 1 or self.max_tokens * 2 + PROMPT_OVERHEAD >= self.window:
            raise UsageError(
                f"max_tokens {self.max_tokens} leaves no room in a {self.window}-token window"
            )


@dataclass(frozen=True, slots=True)
class MethodOutput:
    """What one method produced on one item. ``status``: ok, overflow or error."""

    answer: str | None
    status: str = "ok"
    usage: ModelUsage = field(default_factory=ModelUsage)
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class _Caller:
    """Calls one engine and keeps the usage of every completion."""

    def __init__(self, models: Models, config: MethodConfig) -> None:
        self.models, self.config = models, config
        self.usage = ModelUsage()

    async def __call__(self, system: str, user: str) -> Completion:
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        completion = await self.models.engine.agenerate(
            messages,
            model=self.models.model,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        self.usage = self.usage.add(completion)
        return completion


def default_window(engine: Engine, model: str) -> tuple[int, str]:
    """The window to assume for ``engine`` and where it comes from.

    The engine's own ``context_window(model)`` wins (the local engine's n_ctx, the API
    engines' table); then :data:`KNOWN_WINDOWS` by provider; else
    :data:`DEFAULT_WINDOW`, which self-hosted servers should override.
    """
    window = engine.context_window(model)
    if window is not None:
        return window, "the engine's context window"
    provider = engine.provider
    if provider in KNOWN_WINDOWS:
        return KNOWN_WINDOWS[provider], f"the {provider} default"
    return DEFAULT_WINDOW, "a guess for an unknown window"


def fits(config: MethodConfig, *texts: str) -> bool:
    """Whether a prompt of ``texts`` plus the answer fits the window (estimated tokens)."""
    used = sum(estimate_tokens(t) for t in texts) + PROMPT_OVERHEAD // 3 + config.max_tokens
    return used <= config.window


def split_passages(text: str, max_chars: int) -> list[str]:
    """Consecutive pieces of at most ``max_chars``, cut at line ends where possible."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:  # a line longer than a piece: cut it
            if current:
                pieces.append("".join(current))
                current, size = [], 0
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if size + len(line) > max_chars and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append("".join(current))
    return [p for p in pieces if p.strip()]


def _document_prompt(document: str, question: str) -> str:
    return f"Document:\n{document}\n\nQuestion: {question}"


async def direct(item: BenchItem, models: Models, config: MethodConfig) -> MethodOutput:
    """The context in the prompt, or a context overflow."""
    user = _document_prompt(item.context, item.question)
    if config.overflow_check == "estimate" and not fits(config, DIRECT_SYSTEM, user):
        needed = estimate_tokens(DIRECT_SYSTEM + user) + config.max_tokens
        return MethodOutput(
            None,
            "overflow",
            error=f"context overflow: ~{needed} tokens needed, window {config.window}",
        )
    call = _Caller(models, config)
    completion = await call(DIRECT_SYSTEM, user)
    return MethodOutput(completion.content, usage=call.usage)


async def summary(item: BenchItem, models: Models, config: MethodConfig) -> MethodOutput:
    """Iterative compaction: notes rewritten over each chunk, then the answer from them."""
    free = config.window - 2 * config.max_tokens - PROMPT_OVERHEAD
    free -= estimate_tokens(item.question)
    if free < 256:
        raise UsageError(f"a {config.window}-token window leaves no room for summary chunks")
    chunks = split_passages(item.context, free * 4)
    call = _Caller(models, config)
    notes = ""
    for number, chunk in enumerate(chunks, 1):
        user = (
            f"Question: {item.question}\n\nNotes so far:\n{notes or '(none yet)'}\n\n"
            f"Part {number} of {len(chunks)} of the document:\n{chunk}\n\n"
            "Rewrite the notes, adding what this part says that matters for the question."
        )
        notes = (await call(SUMMARY_SYSTEM, user)).content[: config.max_tokens * 4]
    final = await call(
        DIRECT_SYSTEM,
        f"Notes taken while reading the document, part by part:\n{notes}\n\n"
        f"Question: {item.question}",
    )
    return MethodOutput(final.content, usage=call.usage, detail={"chunks": len(chunks)})


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


async def bm25(item: BenchItem, models: Models, config: MethodConfig) -> MethodOutput:
    """The best BM25 passages that fit the window, in document order, then one call."""
    try:
        from rank_bm25 import BM25Okapi
    except ImportError as exc:
        from rlmagent.extras import install_hint

        raise UsageError(f"the bm25 method needs rank-bm25: {install_hint('bench')}") from exc
    passages = split_passages(item.context, config.passage_tokens * 4) or [item.context]
    ranker = BM25Okapi([_words(p) for p in passages])
    scores = ranker.get_scores(_words(item.question))
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    budget = config.window - config.max_tokens - PROMPT_OVERHEAD
    budget -= estimate_tokens(DIRECT_SYSTEM + item.question)
    chosen: list[int] = []
    for index in order:
        cost = estimate_tokens(passages[index]) + 8
        if cost <= budget:
            chosen.append(index)
            budget -= cost
        if budget < 64:
            break
    document = "\n\n".join(f"[Passage {i + 1}]\n{passages[i]}" for i in sorted(chosen))
    call = _Caller(models, config)
    completion = await call(DIRECT_SYSTEM, _document_prompt(document, item.question))
    detail = {"passages": len(passages), "retrieved": len(chosen)}
    return MethodOutput(completion.content, usage=call.usage, detail=detail)


async def rlm(
    item: BenchItem, models: Models, config: MethodConfig, *, sub_calls: bool = True
) -> MethodOutput:
    """:class:`~rlmagent.RLMAgent` on the item (``sub_calls=False``: no llm_query)."""
    from rlmagent.agent import RLMAgent

    bus, writer = None, None
    if config.trace_dir is not None:
        from rlmagent.events import EventBus
        from rlmagent.trace import TraceWriter

        method = "rlm" if sub_calls else "rlm-nosub"
        writer = TraceWriter(Path(config.trace_dir) / f"{item.item_id}-{method}.jsonl")
        bus = EventBus()
        bus.subscribe(writer)
    agent = RLMAgent(
        models.engine,
        models.model,
        sub_engine=models.sub_engine,
        sub_model=models.sub_model,
        max_turns=config.max_turns,
        temperature=config.temperature,
        max_tokens=config.rlm_max_tokens,
        sub_temperature=config.sub_temperature,
        max_concurrency=config.max_concurrency,
        sandbox=config.sandbox() if config.sandbox is not None else None,
        sub_calls=sub_calls,
        budget=config.budget,
        check_answers=config.check_answers,
        bus=bus,
    )
    try:
        result = await agent.arun(item.question, context=item.context)
    except RLMError as exc:
        usage = exc.partial.usage if exc.partial is not None else None
        total = _model_usage(usage) if usage is not None else ModelUsage()
        partial = getattr(exc, "partial_answer", None)
        return MethodOutput(partial, "error", total, f"{type(exc).__name__}: {exc}")
    finally:
        if writer is not None:
            writer.close()
    detail = {
        "turns": result.turns,
        "stop_reason": result.stop_reason,
        "answer_checked": result.answer_checked,
        "sub_calls": sum(len(c.sub_calls) for s in result.trajectory for c in s.cells),
    }
    return MethodOutput(result.content, usage=_model_usage(result.usage), detail=detail)


def _model_usage(usage: Any) -> ModelUsage:
    return ModelUsage(
        calls=usage.calls,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
        cached_calls=usage.cached_calls,
    )


async def run_method(
    name: str, item: BenchItem, models: Models, config: MethodConfig
) -> MethodOutput:
    """Run method ``name`` on ``item``. Engine failures become an ``error`` output."""
    if name not in METHODS:
        raise UsageError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    try:
        if name == "direct":
            return await direct(item, models, config)
        if name == "summary":
            return await summary(item, models, config)
        if name == "bm25":
            return await bm25(item, models, config)
        return await rlm(item, models, config, sub_calls=name == "rlm")
    except EngineError as exc:
        status = "overflow" if name == "direct" and _OVERFLOW.search(str(exc)) else "error"
        return MethodOutput(None, status, error=f"{type(exc).__name__}: {exc}")
