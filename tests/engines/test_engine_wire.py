"""Provider quirks, keys, connection reuse and concurrency of the network engines,
over the loopback server."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlmagent.engines import Engine, get_engine
from rlmagent.engines.base import estimate_tokens
from rlmagent.errors import EngineError, EngineNotAvailable, UsageError

from .fake_server import FakeLLMServer, Fault
from .helpers import ALL_PROVIDERS, API_KEY, OPENAI_PRESETS

USER = [{"role": "user", "content": "hello there"}]


def body(server: FakeLLMServer) -> dict:
    return server.requests[-1].body


def test_openai_reasoning_models_get_no_temperature(make_engine, server) -> None:
    make_engine("openai", "gpt-5-mini").generate(USER, temperature=0.2, max_tokens=7)
    sent = body(server)
    assert sent["max_completion_tokens"] == 7
    assert "temperature" not in sent and "max_tokens" not in sent


def test_openai_chat_models_get_temperature(make_engine, server) -> None:
    make_engine("openai", "gpt-4o").generate(USER, temperature=0.2, max_tokens=7)
    sent = body(server)
    assert sent["temperature"] == 0.2 and sent["max_completion_tokens"] == 7


@pytest.mark.parametrize("preset", [p for p in OPENAI_PRESETS if p != "openai"])
def test_other_servers_get_max_tokens(make_engine, server, preset: str) -> None:
    make_engine(preset, "gpt-5-mini").generate(USER, temperature=0.2, max_tokens=7)
    sent = body(server)
    assert sent["max_tokens"] == 7 and sent["temperature"] == 0.2


def test_openai_extra_options_go_into_body(make_engine, server) -> None:
    make_engine("vllm").generate(USER, stop=["\n\n"], seed=7, top_k=20)
    sent = body(server)
    assert (sent["stop"], sent["seed"], sent["top_k"]) == (["\n\n"], 7, 20)


def test_anthropic_system_messages_go_to_system_parameter(make_engine, server) -> None:
    messages = [
        {"role": "system", "content": "Rule one."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "again"},
    ]
    result = make_engine("anthropic").generate(messages)
    sent = body(server)
    assert sent["system"] == "Rule one.\n\nRule two."
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert result.content == "echo: again"


def test_anthropic_stop_becomes_stop_sequences(make_engine, server) -> None:
    make_engine("anthropic").generate(USER, stop="END", top_k=5)
    sent = body(server)
    assert sent["stop_sequences"] == ["END"] and sent["top_k"] == 5


@pytest.mark.parametrize(
    ("model", "sends_temperature"),
    [("claude-sonnet-4-6", True), ("claude-haiku-4-5", True), ("claude-opus-5", False)],
)
def test_anthropic_temperature_only_where_accepted(
    make_engine, server, model: str, sends_temperature: bool
) -> None:
    make_engine("anthropic", model).generate(USER, temperature=0.3)
    assert ("temperature" in body(server)) is sends_temperature


def test_self_hosted_servers_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    with FakeLLMServer() as open_server, get_engine("vllm:m", base_url=open_server.url) as e:
        assert e.generate(USER).content == "echo: hello there"
        assert open_server.requests[-1].headers["authorization"] == "Bearer not-needed"


def test_key_from_environment(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    with get_engine("openai:gpt-5-mini", base_url=server.url) as engine:
        assert engine.generate(USER).content == "echo: hello there"


@pytest.mark.parametrize(
    ("spec", "variable"),
    [
        ("openai:gpt-5-mini", "OPENAI_API_KEY"),
        ("openrouter:openai/gpt-5-mini", "OPENROUTER_API_KEY"),
        ("anthropic:claude-sonnet-4-6", "ANTHROPIC_API_KEY"),
    ],
)
def test_missing_key_names_the_variable(
    spec: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(variable, raising=False)
    with pytest.raises(EngineNotAvailable, match=variable):
        get_engine(spec)


def test_sync_calls_reuse_one_connection(make_engine, server) -> None:
    engine = make_engine("openai")
    for _ in range(5):
        engine.generate(USER)
    assert len({r.client_port for r in server.requests}) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_async_client_survives_new_event_loops(make_engine, server, provider: str) -> None:
    engine = make_engine(provider)
    for _ in range(3):  # each asyncio.run is a new loop; the engine's client lives on
        assert asyncio.run(engine.agenerate(USER)).content == "echo: hello there"
    assert len({r.client_port for r in server.requests}) == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_async_requests_go_through_aiohttp(make_engine, provider: str) -> None:
    pytest.importorskip("aiohttp")
    engine = make_engine(provider)
    assert asyncio.run(engine.agenerate(USER)).content == "echo: hello there"
    assert "AioHttp" in type(engine._clients.async_._client).__name__


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_concurrent_async_calls(make_engine, provider: str) -> None:
    engine = make_engine(provider)

    async def batch() -> list[str]:
        calls = [engine.agenerate([{"role": "user", "content": f"item {i}"}]) for i in range(20)]
        return [c.content for c in await asyncio.gather(*calls)]

    assert asyncio.run(batch()) == [f"echo: item {i}" for i in range(20)]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_concurrent_requests_are_in_flight_together(make_engine, server, provider: str) -> None:
    """The send gate makes building serial, never the wait for answers."""
    engine = make_engine(provider)
    server.answer_together(8)  # answers nothing until all 8 are in

    async def batch() -> list[str]:
        calls = [engine.agenerate([{"role": "user", "content": f"item {i}"}]) for i in range(8)]
        return [c.content for c in await asyncio.gather(*calls)]

    assert asyncio.run(batch()) == [f"echo: item {i}" for i in range(8)]


def test_request_failing_before_it_is_sent_frees_the_send_gate(make_engine) -> None:
    engine = make_engine("openai")

    async def failed_then_fine() -> str:
        with pytest.raises(TypeError, match="JSON serializable"):
            await engine.agenerate(USER, unsendable=object())
        return (await asyncio.wait_for(engine.agenerate(USER), 10)).content

    assert asyncio.run(failed_then_fine()) == "echo: hello there"


def test_concurrent_sync_calls_from_threads(make_engine) -> None:
    engine = make_engine("anthropic")
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda i: engine.generate([{"role": "user", "content": f"n {i}"}]).content,
                range(16),
            )
        )
    assert answers == [f"echo: n {i}" for i in range(16)]


def test_cancelled_call_leaves_engine_usable(make_engine, server) -> None:
    engine = make_engine("openai")
    server.push(Fault.hang(10))

    async def cancelled_then_fine() -> str:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.agenerate(USER), 0.3)
        return (await engine.agenerate(USER)).content

    assert asyncio.run(cancelled_then_fine()) == "echo: hello there"


def test_missing_usage_is_estimated(make_engine, server) -> None:
    server.push(Fault.reply({"choices": [{"message": {"content": "abcd efgh ijkl"}}]}))
    result = make_engine("vllm").generate(USER)
    assert result.content == "abcd efgh ijkl"
    assert result.usage.completion_tokens == estimate_tokens("abcd efgh ijkl")
    assert result.usage.prompt_tokens == estimate_tokens("hello there")
    assert result.finish_reason == "stop"


def test_content_parts_are_joined(make_engine, server) -> None:
    parts = [{"type": "text", "text": "one "}, {"type": "text", "text": "two"}]
    payload = {"choices": [{"message": {"content": parts}, "finish_reason": "stop"}]}
    server.push(Fault.reply(payload))
    assert make_engine("lmstudio").generate(USER).content == "one two"


def test_error_inside_a_200_body(make_engine, server) -> None:
    gateway_error = {"error": {"message": "upstream overloaded", "code": 502}}
    server.push(Fault.reply(gateway_error))
    assert make_engine("openrouter").generate(USER).content == "echo: hello there"
    server.push(Fault.reply(gateway_error), Fault.reply(gateway_error))
    with pytest.raises(EngineError, match="upstream overloaded") as info:
        make_engine("openrouter", max_retries=1).generate(USER)
    assert info.value.status == 502


def test_no_choices_is_malformed(make_engine, server) -> None:
    server.push(Fault.reply({"id": "x", "choices": []}))
    with pytest.raises(EngineError, match="no choices"):
        make_engine("openai", max_retries=0).generate(USER)


def test_openai_cached_input_is_priced_lower(make_engine, server) -> None:
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"cached_tokens": 800},
    }
    payload = {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]}
    server.push(Fault.reply({**payload, "usage": usage}))
    result = make_engine("openai", "gpt-5-mini").generate(USER)
    assert result.usage.prompt_tokens == 1000
    assert result.cost_usd == pytest.approx((200 * 0.25 + 800 * 0.025 + 100 * 2.0) / 1e6)


def test_anthropic_cache_tokens_count_and_are_priced(make_engine, server) -> None:
    usage = {
        "input_tokens": 100,
        "cache_read_input_tokens": 800,
        "cache_creation_input_tokens": 100,
        "output_tokens": 10,
    }
    content = [{"type": "text", "text": "ok"}]
    server.push(Fault.reply({"content": content, "stop_reason": "end_turn", "usage": usage}))
    result = make_engine("anthropic", "claude-sonnet-4-6").generate(USER)
    assert result.usage.prompt_tokens == 1000
    expected = (100 * 3.0 + 800 * 0.3 + 100 * 3.0 * 1.25 + 10 * 15.0) / 1e6
    assert result.cost_usd == pytest.approx(expected)


@pytest.mark.parametrize(
    "messages",
    [[], "hello", [{"role": "tool", "content": "x"}], [{"role": "user", "content": 3}]],
)
def test_bad_messages_are_usage_errors(make_engine, messages) -> None:
    with pytest.raises(UsageError):
        make_engine("openai").generate(messages)


def test_bad_max_tokens_is_a_usage_error(make_engine) -> None:
    with pytest.raises(UsageError, match="max_tokens"):
        make_engine("anthropic").generate(USER, max_tokens=0)


@pytest.mark.parametrize("provider", ALL_PROVIDERS)
def test_engines_keep_the_protocol(make_engine, provider: str) -> None:
    engine = make_engine(provider)
    assert isinstance(engine, Engine)
    assert engine.provider == provider


def test_closed_engine_refuses_calls(make_engine) -> None:
    engine = make_engine("openai")
    asyncio.run(engine.agenerate(USER))
    engine.close()
    engine.close()  # twice is fine
    with pytest.raises(UsageError, match="closed"):
        engine.generate(USER)
    with pytest.raises(UsageError, match="closed"):
        asyncio.run(engine.agenerate(USER))


def test_close_during_a_call_ends_it_with_a_usage_error(make_engine, server) -> None:
    engine = make_engine("openai")
    server.push(Fault.hang(10))

    async def close_midway() -> None:
        call = asyncio.ensure_future(engine.agenerate(USER))
        for _ in range(500):  # until the request has reached the server (5 s at most)
            if server.requests:
                break
            await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(None, engine.close)
        with pytest.raises(UsageError, match="closed during the call"):
            await call

    asyncio.run(close_midway())
