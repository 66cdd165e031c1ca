"""Frozen settings of a run, and every default the library, the CLI and the bench share.

:class:`ModelSettings` is one model role (the root, or the sub-calls): engine, model,
temperature and token limit. :class:`RunSettings` is everything one run of the loop
reads: both roles, the REPL's tools and sandbox, the limits, the prompt profile, and
the settings of child runs. :class:`~rlmagent.RLMAgent` builds one from its arguments;
nothing below the agent reads the agent itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from rlmagent.engines.base import Engine
from rlmagent.errors import UsageError

if TYPE_CHECKING:
    from rlmagent.sandbox.base import Sandbox
    from rlmagent.tools import Tool

DEFAULT_MAX_TURNS = 10
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 2048
DEFAULT_SUB_TEMPERATURE = 0.3
DEFAULT_SUB_MAX_TOKENS = 1024
DEFAULT_MAX_OUTPUT_CHARS = 10_000
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_MAX_DEPTH = 1

LOCAL_ROOT_TEMPERATURE = 0.0
"""Measured on the 1.5B local root: temperature 0 beat 0.3 (see FACTS / BENCHMARKS)."""
LOCAL_ROOT_MAX_TOKENS = 384
"""The 1.5B root's useful replies stay under ~100 tokens; longer ones are invented output."""
LOCAL_SUB_TEMPERATURE = 0.0

PROMPT_PROFILES = ("small", "capable")
"""``small``: worked examples and one-line operator patterns for small local roots;
``capable``: the paper's strategies for frontier models."""

MAX_ANSWER_CHECKS = 2
"""How many times an answer the support check rejects is sent back before it stands."""


def profile_for(engine: Engine) -> str:
    """The prompt profile an engine gets by default: ``small`` for the embedded model."""
    return "small" if engine.provider == "local" else "capable"


def root_temperature_for(engine: Engine) -> float:
    """The root's temperature where none is given: the embedded model's, or the default."""
    return LOCAL_ROOT_TEMPERATURE if engine.provider == "local" else DEFAULT_TEMPERATURE


def sub_temperature_for(engine: Engine) -> float:
    """The sub-calls' temperature where none is given, by the sub-engine."""
    return LOCAL_SUB_TEMPERATURE if engine.provider == "local" else DEFAULT_SUB_TEMPERATURE


def root_max_tokens_for(engine: Engine) -> int:
    """The root's reply tokens where none are given (the small root's replies are short)."""
    return LOCAL_ROOT_MAX_TOKENS if engine.provider == "local" else DEFAULT_MAX_TOKENS


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """One model role: which engine and model, and how it samples."""

    engine: Engine
    model: str
    temperature: float
    max_tokens: int

    def __post_init__(self) -> None:
        if not isinstance(self.engine, Engine):
            raise UsageError(f"engine must be an Engine, got {self.engine!r}")
        if not isinstance(self.model, str) or not self.model:
            raise UsageError("model must be a non-empty string")
        if not isinstance(self.max_tokens, int) or self.max_tokens < 1:
            raise UsageError(f"max_tokens must be a positive int, got {self.max_tokens!r}")


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Everything one run reads. ``child`` runs the children below ``max_depth``
    (None: these settings again)."""

    root: ModelSettings
    sub: ModelSettings
    sandbox: Sandbox
    tools: Mapping[str, Tool] = field(default_factory=lambda: MappingProxyType({}))
    max_turns: int = DEFAULT_MAX_TURNS
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_depth: int = DEFAULT_MAX_DEPTH
    sub_calls: bool = True
    system_prompt: str | None = None
    prompt_profile: str = "capable"
    check_answers: bool = False
    child: RunSettings | None = None

    def __post_init__(self) -> None:
        for name in ("max_turns", "max_output_chars", "max_concurrency", "max_depth"):
            number = getattr(self, name)
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
                raise UsageError(f"{name} must be a positive int, got {number!r}")
        if self.prompt_profile not in PROMPT_PROFILES:
            raise UsageError(
                f"prompt_profile must be one of {', '.join(PROMPT_PROFILES)}, "
                f"got {self.prompt_profile!r}"
            )

    @property
    def children(self) -> RunSettings:
        """The settings child runs use."""
        return self.child if self.child is not None else self

    def summary(self, *, max_depth: int) -> dict[str, object]:
        """The settings a trajectory records (``max_depth``: the tree's)."""
        return {
            "max_turns": self.max_turns,
            "temperature": self.root.temperature,
            "max_tokens": self.root.max_tokens,
            "sub_temperature": self.sub.temperature,
            "sub_max_tokens": self.sub.max_tokens,
            "max_concurrency": self.max_concurrency,
            "max_output_chars": self.max_output_chars,
            "sandbox": self.sandbox.isolation,
            "max_depth": max_depth,
            "prompt_profile": self.prompt_profile,
            "check_answers": self.check_answers,
        }

    def chain(self) -> list[RunSettings]:
        """These settings and those of each depth below, one per depth used."""
        chain: list[RunSettings] = [self]
        while len(chain) < self.max_depth:
            chain.append(chain[-1].children)
        return chain
