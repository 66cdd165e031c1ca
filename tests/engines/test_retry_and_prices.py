"""Backoff arithmetic, Retry-After parsing, and the price table."""

from __future__ import annotations

import email.utils
import random
import time

import pytest

from rlmagent.engines.pricing import Price, PriceTable, as_price, builtin_prices
from rlmagent.engines.retry import (
    Failure,
    RetryPolicy,
    call_with_retries,
    is_retryable_status,
    parse_retry_after,
)
from rlmagent.errors import EngineError, UsageError


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), (" 1.5 ", 1.5), ("0", 0.0), ("-4", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after(when)
    assert seconds is not None and 25 <= seconds <= 31


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(408, True), (409, True), (429, True), (500, True), (529, True), (400, False), (404, False)],
)
def test_retryable_statuses(status: int, retryable: bool) -> None:
    assert is_retryable_status(status) is retryable


def test_backoff_grows_with_equal_jitter_and_a_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=4.0, rng=random.Random(7))
    for retry, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 4.0), (6, 4.0)]:
        waits = [policy.backoff(retry) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert max(waits) - min(waits) > ceiling / 4  # jittered, not constant


def test_delay_honours_retry_after_and_gives_up() -> None:
    policy = RetryPolicy(max_retries=2, initial_delay=0.1, max_delay=0.2, max_retry_after=10)
    assert policy.delay(0, Failure("x", 429, retry_after=3.0)) == 3.0
    assert policy.delay(0, Failure("x", 429, retry_after=11.0)) is None
    assert policy.delay(0, Failure("x", 400, retryable=False)) is None
    assert policy.delay(2, Failure("x", 500)) is None  # retries used up
    assert 0.05 <= (policy.delay(0, Failure("x", 500)) or 0) <= 0.1


def test_call_with_retries_counts_attempts() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("reset")
        return "ok"

    def classify(exc: BaseException) -> Failure | None:
        return Failure(str(exc)) if isinstance(exc, ConnectionError) else None

    waits: list[float] = []
    policy = RetryPolicy(max_retries=5, initial_delay=0.01, sleep=waits.append)
    assert call_with_retries(flaky, classify, policy, provider="p", model="m") == "ok"
    assert len(attempts) == 3 and len(waits) == 2


def test_unclassified_exceptions_propagate_untouched() -> None:
    def broken() -> str:
        raise KeyError("a bug, not a model failure")

    with pytest.raises(KeyError):
        call_with_retries(broken, lambda exc: None, RetryPolicy(), provider="p", model="m")


def test_exhausted_retries_name_provider_model_status() -> None:
    def always_503() -> str:
        raise RuntimeError("503")

    policy = RetryPolicy(max_retries=1, initial_delay=0, sleep=lambda s: None)
    with pytest.raises(EngineError) as info:
        call_with_retries(
            always_503, lambda e: Failure("busy", 503), policy, provider="prov", model="mod"
        )
    assert (info.value.provider, info.value.model, info.value.status) == ("prov", "mod", 503)
    assert "2 attempts" in str(info.value)


def test_negative_retries_rejected() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_retries=-1)


def test_builtin_table_has_current_models() -> None:
    table = builtin_prices()
    for model in ("gpt-5-mini", "gpt-4.1", "claude-sonnet-4-6", "claude-haiku-4-5"):
        price = table[model]
        assert 0 < price.input < price.output


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-5-mini", (0.25, 2.0)),
        ("openai/gpt-5-mini", (0.25, 2.0)),
        ("gpt-4.1-mini-2025-04-14", (0.4, 1.6)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0)),
        ("claude-3-5-haiku-latest", (0.8, 4.0)),
        ("gpt-4o-mini", (0.15, 0.6)),  # not gpt-4o's price: no bare prefix match
    ],
)
def test_lookup_variants(model: str, expected: tuple[float, float]) -> None:
    price = PriceTable().lookup(model)
    assert price is not None and (price.input, price.output) == expected


def test_unknown_model_has_no_price() -> None:
    assert PriceTable().lookup("gpt-4o-nonexistent-variant") is None
    assert PriceTable().lookup("my-finetune") is None


def test_user_prices_win_and_extend() -> None:
    table = PriceTable({"gpt-5-mini": (1, 2), "mine": (0.5, 0.5, 0.1)})
    assert table.lookup("gpt-5-mini") == Price(1.0, 2.0)
    assert table.lookup("mine") == Price(0.5, 0.5, 0.1)
    assert table.lookup("gpt-4o") == Price(2.5, 10.0, 1.25)


@pytest.mark.parametrize("bad", [(1,), (1, 2, 3, 4), (-1, 2), ("1", "2"), "1,2", 5, (True, 1)])
def test_bad_user_prices_are_usage_errors(bad: object) -> None:
    with pytest.raises(UsageError, match="price for 'x'"):
        as_price(bad, model="x")  # type: ignore[arg-type]


def test_prices_must_be_a_mapping() -> None:
    with pytest.raises(UsageError, match="mapping"):
        PriceTable([("gpt", (1, 2))])  # type: ignore[arg-type]


def test_cost_arithmetic() -> None:
    price = Price(2.0, 8.0, 0.5)
    assert price.cost(1_000_000, 0) == pytest.approx(2.0)
    assert price.cost(1000, 500, cached_tokens=600) == pytest.approx(
        (400 * 2.0 + 600 * 0.5 + 500 * 8.0) / 1e6
    )
    assert Price(2.0, 8.0).cost(1000, 0, cached_tokens=1000) == pytest.approx(0.002)
