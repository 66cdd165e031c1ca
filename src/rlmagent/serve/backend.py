"""What the servers run: one :class:`RLMAgent` per request, built from a template.

The template is the agent ``rlm run`` would build from the same flags
(:func:`rlmagent.cli.common.build_agent`): engines, temperatures, sandbox, prompt profile,
answer checks. Each request gets an agent of its own (cheap: settings only) so that it
has its own event bus (its progress never mixes with another request's), its own budget
(capped by the server's, :func:`cap_budget`) and its own depth (at most the server's).
The engines and the sandbox are shared.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmagent.agent import RLMAgent
from rlmagent.budget import Budget
from rlmagent.engines.base import Engine
from rlmagent.errors import (
    BudgetExceeded,
    EngineError,
    OutputTypeError,
    RLMError,
    SandboxError,
    UsageError,
)
from rlmagent.events import EventBus
from rlmagent.serve.errors import ApiError, short
from rlmagent.types import AgentResult

DEFAULT_MODEL_ID = "rlm"


@dataclass(frozen=True)
class ServeLimits:
    """The server's limits (CLI flags of ``rlm serve``)."""

    max_concurrent_runs: int = 4
    max_sessions: int = 16
    session_ttl_s: float = 600.0
    max_body_bytes: int = 32 * 2**20
    question_chars: int = 4000

    def __post_init__(self) -> None:
        for name in ("max_concurrent_runs", "max_sessions", "max_body_bytes", "question_chars"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not self.session_ttl_s > 0:
            raise UsageError(f"session_ttl_s must be positive, got {self.session_ttl_s!r}")


def cap_budget(server: Budget | None, asked: Mapping[str, float]) -> Budget | None:
    """The request's budget, each limit at most the server's (a client cannot raise one)."""
    limits: dict[str, Any] = {}
    for name in ("max_calls", "max_tokens", "max_cost_usd", "max_seconds"):
        mine = getattr(server, name) if server is not None else None
        theirs = asked.get(name)
        values = [v for v in (mine, theirs) if v is not None]
        limits[name] = min(values) if values else None
    budget = Budget(**limits)
    return budget if budget.limited else None


class RunSlots:
    """At most ``n`` runs at once; a request beyond that is refused with 429 at once.

    ``Retry-After`` is the median length of the last runs (at least 1 s), a fair guess of
    when a slot frees.
    """

    def __init__(self, n: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.n = n
        self.active = 0
        self._clock = clock
        self._recent: deque[float] = deque(maxlen=32)

    def retry_after(self) -> int:
        guess = statistics.median(self._recent) if self._recent else 1.0
        return max(1, math.ceil(guess))

    def acquire(self) -> float:
        if self.active >= self.n:
            raise ApiError(
                429,
                f"the server is running its maximum of {self.n} runs; retry later",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(self.retry_after())},
            )
        self.active += 1
        return self._clock()

    def release(self, started: float) -> None:
        self.active -= 1
        self._recent.append(self._clock() - started)


class Backend:
    """Builds the per-request agents and maps run failures to API errors."""

    def __init__(
        self,
        template: RLMAgent,
        *,
        models: Mapping[str, Engine] | None = None,
        log_dir: Path | None = None,
        prompt_profile: str | None = None,
        check_answers: bool | None = None,
    ) -> None:
        self.template = template
        self.models = dict(models or {})
        self.log_dir = log_dir
        self.prompt_profile = prompt_profile
        """The operator's choice (None: by the root's engine, also for ``rlm:SPEC``)."""
        self.check_answers = check_answers

    @property
    def budget(self) -> Budget | None:
        return self.template.budget

    @property
    def max_depth(self) -> int:
        return self.template.settings.max_depth

    def model_ids(self) -> Sequence[str]:
        return [DEFAULT_MODEL_ID, *(f"{DEFAULT_MODEL_ID}:{spec}" for spec in self.models)]

    def root_engine(self, model_id: str) -> Engine | None:
        """The engine of a model id (None: the server's own); 404 for an unknown id."""
        if model_id == DEFAULT_MODEL_ID:
            return None
        prefix = DEFAULT_MODEL_ID + ":"
        if model_id.startswith(prefix) and model_id[len(prefix) :] in self.models:
            return self.models[model_id[len(prefix) :]]
        raise ApiError(
            404,
            f"the model {short(model_id)} does not exist here; models: "
            + ", ".join(self.model_ids()),
            code="model_not_found",
            param="model",
        )

    def depth(self, asked: int | None) -> int:
        if asked is None:
            return self.max_depth
        if asked > self.max_depth:
            raise ApiError(
                400,
                f"rlm.max_depth {asked} is above this server's limit of {self.max_depth}",
                param="rlm.max_depth",
            )
        return asked

    def agent(
        self,
        *,
        bus: EventBus,
        model_id: str = DEFAULT_MODEL_ID,
        budget: Budget | None = None,
        max_depth: int | None = None,
    ) -> RLMAgent:
        """A fresh agent for one request (or one session) on the template's settings."""
        settings = self.template.settings
        engine = self.root_engine(model_id)
        root = settings.root
        profile: str | None = settings.prompt_profile
        check: bool | None = settings.check_answers
        if engine is not None:  # another root: its own default profile unless one was chosen
            root_engine, root_model = engine, getattr(engine, "model", root.model)
            profile, check = self.prompt_profile, self.check_answers
        else:
            root_engine, root_model = root.engine, root.model
        trace = None
        if self.log_dir is not None:
            from rlmagent.trace import new_run_path

            trace = new_run_path(self.log_dir)
        return RLMAgent(
            root_engine,
            root_model,
            sub_engine=settings.sub.engine,
            sub_model=settings.sub.model,
            bus=bus,
            max_turns=settings.max_turns,
            temperature=root.temperature,
            max_tokens=root.max_tokens,
            sub_temperature=settings.sub.temperature,
            sub_max_tokens=settings.sub.max_tokens,
            max_output_chars=settings.max_output_chars,
            max_concurrency=settings.max_concurrency,
            sandbox=settings.sandbox,
            trace=trace,
            max_depth=self.depth(max_depth),
            budget=budget,
            cache=self.template.cache,
            prompt_profile=profile,
            check_answers=check,
        )


def run_error(exc: BaseException) -> AgentResult | ApiError:
    """What a failed run answers: a partial result (budget) or an API error."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BudgetExceeded):
        partial = getattr(exc, "partial", None)
        if isinstance(partial, AgentResult):
            return partial
        return ApiError(
            400,
            f"the run's budget ran out before an answer ({exc})",
            code="budget_exceeded",
        )
    if isinstance(exc, OutputTypeError):
        return ApiError(
            502, f"the model's answer does not fit output_type: {exc}", code="output_type"
        )
    if isinstance(exc, UsageError):
        return ApiError(400, str(exc))
    if isinstance(exc, EngineError):
        return ApiError(502, f"the model behind this server failed: {exc}", code="upstream_error")
    if isinstance(exc, SandboxError):
        return ApiError(503, f"the sandbox failed: {exc}", code="sandbox_error")
    if isinstance(exc, RLMError):
        return ApiError(500, f"{type(exc).__name__}: {exc}")
    return ApiError(500, f"internal error ({type(exc).__name__}); see the server's log")
