"""The frozen settings of a batch, and the agent each worker builds from them.

A batch never ships live engines or clients to its workers: :class:`BatchSettings` names
engines by ``provider:model`` spec plus options, and each worker process builds its own
(once per process: :func:`engines_for` keeps them, so a Ray worker that runs many jobs
imports the SDK and opens its connections once).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlmagent.errors import UsageError
from rlmagent.settings import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TURNS,
    DEFAULT_SUB_MAX_TOKENS,
    root_max_tokens_for,
    root_temperature_for,
    sub_temperature_for,
)


@dataclass(frozen=True, slots=True)
class BatchSettings:
    """What every job of a batch runs with. ``model`` / ``sub_model``: engine specs
    (None: the embedded local model; ``sub_model`` None: ``model``). ``base_urls``: one
    or more OpenAI-compatible endpoints (several: the multi-endpoint engine).
    ``engine_options``: more options for :func:`~rlmagent.engines.get_engine`.
    ``temperature`` / ``sub_temperature`` / ``max_tokens`` None: the defaults of
    ``rlm run`` (temperature 0 and short replies for the local model)."""

    model: str | None = None
    sub_model: str | None = None
    base_urls: tuple[str, ...] = ()
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    max_turns: int = DEFAULT_MAX_TURNS
    temperature: float | None = None
    max_tokens: int | None = None
    sub_temperature: float | None = None
    sub_max_tokens: int = DEFAULT_SUB_MAX_TOKENS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_depth: int = DEFAULT_MAX_DEPTH
    sandbox: str = "subprocess"
    """``subprocess`` (default), a tier by name, or ``inprocess`` (no isolation)."""
    prompt_profile: str | None = None
    check_answers: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sandbox, str) or not self.sandbox:
            raise UsageError(f"sandbox must be a sandbox name, got {self.sandbox!r}")
        if isinstance(self.base_urls, str):
            object.__setattr__(self, "base_urls", (self.base_urls,))
        if not all(isinstance(u, str) and u for u in self.base_urls):
            raise UsageError(f"base_urls must be non-empty strings, got {self.base_urls!r}")
        if "base_url" in self.engine_options:
            raise UsageError("give endpoints as base_urls=, not engine_options['base_url']")

    def engine_kwargs(self) -> dict[str, Any]:
        options = dict(self.engine_options)
        if len(self.base_urls) == 1:
            options["base_url"] = self.base_urls[0]
        elif self.base_urls:
            options["base_url"] = list(self.base_urls)
        return options


_engines: dict[tuple[Any, ...], tuple[Any, Any]] = {}
_engines_lock = threading.Lock()


def engines_for(settings: BatchSettings) -> tuple[Any, Any]:
    """The (root, sub) engines of ``settings`` in this process, built on first use."""
    from rlmagent.engines import get_engine

    key = (
        settings.model,
        settings.sub_model,
        settings.base_urls,
        tuple(sorted((k, repr(v)) for k, v in settings.engine_options.items())),
    )
    with _engines_lock:
        if key not in _engines:
            options = settings.engine_kwargs()
            root = get_engine(settings.model, **options)
            sub = get_engine(settings.sub_model or settings.model, **options)
            _engines[key] = (root, sub)
        return _engines[key]


def _sandbox(name: str) -> Any:
    """``inprocess`` (no isolation), ``subprocess`` (the best tier that works) or one
    tier of the subprocess sandbox by name (as ``rlm run --sandbox`` takes them)."""
    from rlmagent.sandbox import InProcessSandbox, SubprocessSandbox

    if name == "inprocess":
        return InProcessSandbox()
    if name == "subprocess":
        return SubprocessSandbox()
    return SubprocessSandbox(isolation=name)


def build_agent(settings: BatchSettings, *, budget: Any = None, bus: Any = None) -> Any:
    """An :class:`~rlmagent.RLMAgent` for one job (engines shared within the process)."""
    from rlmagent.agent import RLMAgent

    engine, sub_engine = engines_for(settings)
    temperature = settings.temperature
    if temperature is None:
        temperature = root_temperature_for(engine)
    sub_temperature = settings.sub_temperature
    if sub_temperature is None:
        sub_temperature = sub_temperature_for(sub_engine)
    max_tokens = settings.max_tokens or root_max_tokens_for(engine)
    return RLMAgent(
        engine,
        engine.model,
        sub_engine=sub_engine,
        sub_model=sub_engine.model,
        bus=bus,
        max_turns=settings.max_turns,
        temperature=temperature,
        max_tokens=max_tokens,
        sub_temperature=sub_temperature,
        sub_max_tokens=settings.sub_max_tokens,
        max_concurrency=settings.max_concurrency,
        sandbox=_sandbox(settings.sandbox),
        max_depth=settings.max_depth,
        budget=budget,
        prompt_profile=settings.prompt_profile,
        check_answers=settings.check_answers,
    )
