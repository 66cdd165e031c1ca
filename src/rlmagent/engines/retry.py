"""Retries with exponential backoff and jitter, the same for every network engine.

The SDKs' own retries are switched off (``max_retries=0``) and this module retries
instead, so every engine behaves alike: a failure is *transient* (HTTP 408, 409, 429,
5xx, a timeout, a dropped connection, a malformed body) or *fatal* (any other HTTP
status, e.g. 400 or 401). Transient failures are retried up to
:attr:`RetryPolicy.max_retries` times; the wait before retry ``n`` (0-based) is drawn
from ``[d/2, d]`` with ``d = min(max_delay, initial_delay * 2**n)`` ("equal jitter"),
and is never shorter than the server's ``Retry-After``. A ``Retry-After`` longer than
:attr:`RetryPolicy.max_retry_after` ends the retries at once instead of stalling a run.
When retries run out, an :class:`~rlmagent.errors.EngineError` names the provider, the
model, the last HTTP status (None for timeouts and dropped connections) and the attempts.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from rlmagent.errors import EngineError

T = TypeVar("T")

DEFAULT_MAX_RETRIES = 3
"""Retries after the first attempt (so four attempts in all)."""
DEFAULT_INITIAL_DELAY = 0.5
"""Seconds; the first backoff is drawn from [0.25, 0.5]."""
DEFAULT_MAX_DELAY = 8.0
"""Seconds; the cap on one backoff (before Retry-After)."""
DEFAULT_MAX_RETRY_AFTER = 60.0
"""Seconds; a server asking for a longer wait ends the retries."""

RETRYABLE_STATUSES = frozenset({408, 409, 429})
"""Statuses below 500 that are worth retrying (every 5xx is too)."""


def is_retryable_status(status: int) -> bool:
    """True for 408, 409, 429 and every 5xx."""
    return status in RETRYABLE_STATUSES or status >= 500


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, as an engine classifies it."""

    reason: str
    status: int | None = None
    retryable: bool = True
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``sleep``/``asleep`` are injectable for tests."""

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = DEFAULT_INITIAL_DELAY
    max_delay: float = DEFAULT_MAX_DELAY
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    asleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays must be >= 0")

    def backoff(self, retry: int) -> float:
        """The jittered backoff before retry number ``retry`` (0-based)."""
        ceiling = min(self.max_delay, self.initial_delay * (2**retry))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def delay(self, retry: int, failure: Failure) -> float | None:
        """Seconds to wait before retry ``retry``, or None when retrying is pointless."""
        if not failure.retryable or retry >= self.max_retries:
            return None
        wait = self.backoff(retry)
        if failure.retry_after is not None:
            if failure.retry_after > self.max_retry_after:
                return None
            wait = max(wait, failure.retry_after)
        return wait


def _give_up(
    failure: Failure, attempts: int, policy: RetryPolicy, provider: str, model: str
) -> EngineError:
    status = f"HTTP {failure.status}" if failure.status is not None else "no HTTP status"
    tries = f"{attempts} attempt" + ("s" if attempts != 1 else "")
    if not failure.retryable:
        status += ", not retryable"
    elif (
        failure.retry_after is not None
        and failure.retry_after > policy.max_retry_after
        and attempts <= policy.max_retries
    ):
        status += (
            f", server asked to wait {failure.retry_after:g} s,"
            f" more than max_retry_after={policy.max_retry_after:g}"
        )
    return EngineError(
        f"{provider} model {model!r} failed after {tries} ({status}): {failure.reason}",
        provider=provider,
        model=model,
        status=failure.status,
    )


Classifier = Callable[[BaseException], Failure | None]
"""Maps an exception to a Failure; None means "not a model-call failure": re-raise it."""


def call_with_retries(
    attempt: Callable[[], T],
    classify: Classifier,
    policy: RetryPolicy,
    *,
    provider: str,
    model: str,
) -> T:
    """Call ``attempt()`` until it succeeds, retrying transient failures."""
    retry = 0
    while True:
        try:
            return attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            wait = policy.delay(retry, failure)
            if wait is None:
                raise _give_up(failure, retry + 1, policy, provider, model) from exc
        policy.sleep(wait)
        retry += 1


async def acall_with_retries(
    attempt: Callable[[], Awaitable[T]],
    classify: Classifier,
    policy: RetryPolicy,
    *,
    provider: str,
    model: str,
) -> T:
    """The async twin of :func:`call_with_retries`."""
    retry = 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            wait = policy.delay(retry, failure)
            if wait is None:
                raise _give_up(failure, retry + 1, policy, provider, model) from exc
        await policy.asleep(wait)
        retry += 1
