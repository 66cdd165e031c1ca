"""The contract every network engine keeps, checked over a real loopback HTTP server.

Parametrised over every OpenAI-compatible preset and Anthropic, each sync and async (the
async client on both HTTP transports the SDKs offer, aiohttp and httpx):
content, usage, finish reason, cost, retries (429 with Retry-After, 5xx, dropped
connections, malformed bodies, hung responses), and the EngineError when they run out.
"""

from __future__ import annotations

import pytest

from rlmagent.errors import EngineError

from .fake_server import FakeLLMServer, Fault
from .helpers import ALL_PROVIDERS, EXPECTED_PRICE, MODELS, SleepLog, call

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "find the needle"},
]
PROMPT_WORDS = 6  # the fake server counts a token per word: system 3 + user 3
REPLY = "echo: find the needle"

pytestmark = pytest.mark.parametrize("mode", ["sync", "async", "async-httpx"])


@pytest.fixture(params=ALL_PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_content_usage_finish_reason(make_engine, provider: str, mode: str) -> None:
    engine = make_engine(provider)
    result = call(engine, mode, MESSAGES)
    assert result.content == REPLY
    assert result.model == MODELS[provider]
    assert result.usage.prompt_tokens == PROMPT_WORDS
    assert result.usage.completion_tokens == len(REPLY.split())
    assert result.finish_reason == "stop"


def test_cut_by_max_tokens_is_length(make_engine, provider: str, mode: str) -> None:
    result = call(make_engine(provider), mode, MESSAGES, max_tokens=2)
    assert result.content == "echo: find"
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 2


def test_cost_from_price_table(make_engine, provider: str, mode: str) -> None:
    result = call(make_engine(provider), mode, MESSAGES)
    input_price, output_price = EXPECTED_PRICE.get(provider, (0.0, 0.0))
    expected = (PROMPT_WORDS * input_price + 4 * output_price) / 1e6
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd is not None


def test_user_prices_override(make_engine, provider: str, mode: str) -> None:
    engine = make_engine(provider, prices={MODELS[provider]: (100.0, 1000.0)})
    result = call(engine, mode, MESSAGES)
    assert result.cost_usd == pytest.approx((PROMPT_WORDS * 100.0 + 4 * 1000.0) / 1e6)


def test_unknown_price_is_none_for_hosted(make_engine, provider: str, mode: str) -> None:
    engine = make_engine(provider, model="a-model-nobody-priced")
    result = call(engine, mode, MESSAGES)
    if provider in EXPECTED_PRICE:
        assert result.cost_usd is None
    else:  # a server you run yourself costs nothing per token
        assert result.cost_usd == 0.0


def test_model_override_per_call(make_engine, server, provider: str, mode: str) -> None:
    result = call(make_engine(provider), mode, MESSAGES, model="other-model")
    assert result.model == "other-model"
    assert server.requests[-1].body["model"] == "other-model"


def test_retries_then_success(
    make_engine, server: FakeLLMServer, sleeps: SleepLog, provider: str, mode: str
) -> None:
    server.push(Fault.error(429, retry_after="0.5"), Fault.error(500), Fault.drop())
    result = call(make_engine(provider), mode, MESSAGES)
    assert result.content == REPLY
    assert len(server.requests) == 4
    assert len(sleeps.waits) == 3
    assert sleeps.waits[0] >= 0.5  # Retry-After is a floor on the wait
    assert all(w <= 0.04 for w in sleeps.waits[1:])  # backoff stays under max_delay


def test_malformed_body_is_retried(
    make_engine, server: FakeLLMServer, provider: str, mode: str
) -> None:
    server.push(Fault.malformed())
    assert call(make_engine(provider), mode, MESSAGES).content == REPLY
    assert len(server.requests) == 2


def test_malformed_body_error(make_engine, server: FakeLLMServer, provider: str, mode: str):
    server.push(Fault.malformed())
    with pytest.raises(EngineError, match="malformed JSON") as info:
        call(make_engine(provider, max_retries=0), mode, MESSAGES)
    assert info.value.status == 200


@pytest.mark.parametrize("status", [429, 503])
def test_retries_exhausted(
    make_engine, server: FakeLLMServer, provider: str, mode: str, status: int
) -> None:
    server.push(*[Fault.error(status)] * 3)
    engine = make_engine(provider, max_retries=2)
    with pytest.raises(EngineError) as info:
        call(engine, mode, MESSAGES)
    err = info.value
    assert (err.provider, err.model, err.status) == (provider, MODELS[provider], status)
    assert f"HTTP {status}" in str(err) and "3 attempts" in str(err)
    assert MODELS[provider] in str(err)
    assert len(server.requests) == 3


def test_client_error_is_not_retried(
    make_engine, server: FakeLLMServer, provider: str, mode: str
) -> None:
    server.push(Fault.error(400))
    with pytest.raises(EngineError, match="not retryable") as info:
        call(make_engine(provider), mode, MESSAGES)
    assert info.value.status == 400
    assert len(server.requests) == 1


def test_wrong_api_key(make_engine, server: FakeLLMServer, provider: str, mode: str) -> None:
    with pytest.raises(EngineError, match="bad api key") as info:
        call(make_engine(provider, api_key="wrong"), mode, MESSAGES)
    assert info.value.status == 401
    assert len(server.requests) == 1


def test_hung_response_times_out_then_retries(
    make_engine, server: FakeLLMServer, provider: str, mode: str
) -> None:
    server.push(Fault.hang(10))
    result = call(make_engine(provider, timeout=0.3), mode, MESSAGES)
    assert result.content == REPLY
    assert len(server.requests) == 2


def test_timeout_exhausted(make_engine, server: FakeLLMServer, provider: str, mode: str) -> None:
    server.push(Fault.hang(10), Fault.hang(10))
    engine = make_engine(provider, timeout=0.3, max_retries=1)
    with pytest.raises(EngineError, match="timed out") as info:
        call(engine, mode, MESSAGES)
    assert info.value.status is None
    assert "no HTTP status" in str(info.value)


def test_dropped_connection_error(
    make_engine, server: FakeLLMServer, provider: str, mode: str
) -> None:
    server.push(Fault.drop())
    with pytest.raises(EngineError, match="connection") as info:
        call(make_engine(provider, max_retries=0), mode, MESSAGES)
    assert info.value.status is None


def test_retry_after_beyond_limit_stops_at_once(
    make_engine, server: FakeLLMServer, sleeps: SleepLog, provider: str, mode: str
) -> None:
    server.push(Fault.error(429, retry_after="3600"))
    engine = make_engine(provider, retry=sleeps.policy(max_retry_after=30))
    with pytest.raises(EngineError, match="asked to wait 3600 s") as info:
        call(engine, mode, MESSAGES)
    assert info.value.status == 429
    assert sleeps.waits == []
