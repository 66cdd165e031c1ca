"""What every engine tells its callers besides completions: the Engine protocol's price,
context window, cache identity and wrapped engine, for each built-in engine and for the
completion cache's wrapper around it. No request is sent."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlmagent import CachedEngine, CompletionCache, FunctionEngine, ScriptedEngine
from rlmagent.budget import price_of
from rlmagent.cache import engine_identity
from rlmagent.engines import (
    ContextWindowTable,
    Engine,
    EngineBase,
    EngineWrapper,
    NamedEngine,
    Price,
    get_engine,
    register_engine,
    unregister_engine,
)
from rlmagent.engines.local import DEFAULT_N_CTX
from rlmagent.engines.pricing import FREE
from rlmagent.engines.windows import BUILTIN_CONTEXT_WINDOWS
from rlmagent.errors import UsageError
from rlmagent.types import Completion

from .helpers import API_KEY, MODELS, OPENAI_PRESETS

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
URL = "http://127.0.0.1:9/v1"  # never contacted
HOSTED = ("openai", "openrouter", "anthropic")  # self-hosted servers cost 0.0


@dataclass(frozen=True)
class Case:
    """One engine and what it must answer for ``model``."""

    build: Callable[[Path], Any]
    model: str
    identity: str
    price: Price | None
    window: int | None
    unknown: tuple[Price | None, int | None] = (None, None)
    """The price and window of a model the engine has never heard of."""


def _network(provider: str, **options: Any) -> Callable[[Path], Any]:
    return lambda tmp: get_engine(
        f"{provider}:{MODELS[provider]}", base_url=URL, api_key=API_KEY, **options
    )


CASES: dict[str, Case] = {
    "openai": Case(
        _network("openai"), "gpt-5-mini", f"openai@{URL}", Price(0.25, 2.0, 0.025), 400_000
    ),
    "openrouter": Case(
        _network("openrouter"),
        "openai/gpt-4o",
        f"openrouter@{URL}",
        Price(2.5, 10.0, 1.25),
        128_000,
    ),
    "anthropic": Case(
        _network("anthropic"),
        "claude-sonnet-4-6",
        f"anthropic@{URL}",
        Price(3.0, 15.0, 0.3),
        200_000,
    ),
    **{
        preset: Case(_network(preset), MODELS[preset], f"{preset}@{URL}", FREE, None, (FREE, None))
        for preset in OPENAI_PRESETS
        if preset not in HOSTED
    },
    "vllm-with-overrides": Case(
        _network("vllm", prices={"Qwen/Qwen3-8B": (0.1, 0.2)}, context_windows={"Qwen3": 32_768}),
        "Qwen/Qwen3-8B",
        f"vllm@{URL}",
        Price(0.1, 0.2),
        32_768,
        (FREE, None),
    ),
    "local": Case(
        lambda tmp: get_engine("local:qwen2.5-coder-1.5b", cache_dir=tmp),
        "any-label",
        "local",
        FREE,
        DEFAULT_N_CTX,
        (FREE, DEFAULT_N_CTX),  # one model file, whatever the label
    ),
    "local-n_ctx": Case(
        lambda tmp: get_engine("local:qwen2.5-coder-1.5b", cache_dir=tmp, n_ctx=2048),
        "qwen2.5-coder-1.5b",
        "local",
        FREE,
        2048,
        (FREE, 2048),
    ),
    "scripted": Case(lambda tmp: ScriptedEngine(["a"]), "m", "scripted", None, None),
    "scripted-priced": Case(
        lambda tmp: ScriptedEngine(["a"], price=(3, 4), context_window=4096),
        "m",
        "scripted",
        Price(3.0, 4.0),
        4096,
        (Price(3.0, 4.0), 4096),  # the same for every model
    ),
    "function": Case(lambda tmp: FunctionEngine(lambda m, model: "x"), "m", "function", None, None),
    "function-priced": Case(
        lambda tmp: FunctionEngine(lambda m, model: "x", price=Price(1, 2, 0.5), context_window=8),
        "m",
        "function",
        Price(1.0, 2.0, 0.5),
        8,
        (Price(1.0, 2.0, 0.5), 8),
    ),
}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Any, Case]]:
    name = str(request.param)
    if name.startswith("local") and not HAVE_LLAMA:
        pytest.skip("llama-cpp-python is not installed")
    spec = CASES[name]
    engine = spec.build(tmp_path)
    yield engine, spec
    close = getattr(engine, "close", None)
    if close is not None:
        close()


def test_every_engine_implements_the_protocol(case: tuple[Any, Case]) -> None:
    engine, _ = case
    assert isinstance(engine, Engine)
    assert isinstance(engine, EngineBase)
    assert isinstance(engine.provider, str) and engine.provider
    assert isinstance(engine.identity, str) and engine.identity
    assert engine.wrapped is None  # base engines answer themselves


def test_price_window_and_identity(case: tuple[Any, Case]) -> None:
    engine, spec = case
    assert engine.identity == spec.identity
    assert engine.price(spec.model) == spec.price
    assert engine.context_window(spec.model) == spec.window
    # the thin helpers of the budget and the cache only ask the protocol
    assert price_of(engine, spec.model) == spec.price
    assert engine_identity(engine) == spec.identity


def test_unknown_models(case: tuple[Any, Case]) -> None:
    engine, spec = case
    nobody = "a-model-nobody-knows"
    assert (engine.price(nobody), engine.context_window(nobody)) == spec.unknown


def test_the_cache_engine_reports_its_wrapped_engine(
    case: tuple[Any, Case], tmp_path: Path
) -> None:
    engine, spec = case
    with CompletionCache(tmp_path / "c.sqlite") as cache:
        cached = CachedEngine(engine, cache)
        assert isinstance(cached, Engine) and isinstance(cached, EngineWrapper)
        assert cached.wrapped is engine and cached.inner is engine
        assert cached.provider == engine.provider
        assert cached.identity == engine_identity(cached) == spec.identity
        assert cached.price(spec.model) == price_of(cached, spec.model) == spec.price
        assert cached.context_window(spec.model) == spec.window
        assert isinstance(cached, NamedEngine) == isinstance(engine, NamedEngine)
        if isinstance(engine, NamedEngine):
            assert cached.model == engine.model
        twice = CachedEngine(cached, cache)  # a wrapper of a wrapper: the innermost speaks
        assert twice.wrapped is cached
        assert (twice.identity, twice.price(spec.model)) == (spec.identity, spec.price)


# --- wrappers -------------------------------------------------------------------------


class Router(EngineWrapper):
    """A wrapper that passes calls through, counting them (what a router builds on)."""

    def __init__(self, wrapped: Engine) -> None:
        super().__init__(wrapped)
        self.calls = 0

    async def agenerate(self, messages: Any, *, model: str, **kwargs: Any) -> Completion:
        self.calls += 1
        return await super().agenerate(messages, model=model, **kwargs)


def test_a_wrapper_passes_calls_and_questions_through() -> None:
    inner = ScriptedEngine(["one", "two"], price=(1, 1), context_window=100)
    router = Router(inner)
    assert router.generate([{"role": "user", "content": "q"}], model="m").content == "one"
    answer = asyncio.run(router.agenerate([{"role": "user", "content": "q"}], model="m"))
    assert (answer.content, router.calls, len(inner.calls)) == ("two", 1, 2)
    assert (router.provider, router.identity, router.wrapped) == ("scripted", "scripted", inner)
    assert router.price("m") == Price(1.0, 1.0) and router.context_window("m") == 100
    assert not isinstance(router, NamedEngine)  # the scripted engine names no model


def test_wrappers_and_the_registry_want_the_whole_protocol(tmp_path: Path) -> None:
    class Partial:
        """generate/agenerate and a provider, but nothing else the protocol asks."""

        provider = "partial"

        def generate(self, messages: Any, **kwargs: Any) -> Completion:
            return Completion("x", "m")

        async def agenerate(self, messages: Any, **kwargs: Any) -> Completion:
            return Completion("x", "m")

    assert not isinstance(Partial(), Engine)
    with pytest.raises(UsageError, match="CachedEngine needs an Engine"):
        CachedEngine(Partial(), CompletionCache(tmp_path / "c.sqlite"))  # type: ignore[arg-type]
    register_engine("partial", lambda model: Partial())
    try:
        with pytest.raises(UsageError, match="not an Engine"):
            get_engine("partial:m")
    finally:
        unregister_engine("partial")


# --- context windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("gpt-4o", 128_000),
        ("gpt-4o-mini", 128_000),
        ("gpt-4o-2024-08-06", 128_000),
        ("gpt-4.1", 1_047_576),
        ("gpt-4.1-nano", 1_047_576),
        ("gpt-5", 400_000),
        ("gpt-5-mini", 400_000),
        ("gpt-5-nano-2025-08-07", 400_000),
        ("gpt-5-chat-latest", 128_000),  # the longest matching family wins
        ("o1", 200_000),
        ("o1-mini", 128_000),
        ("o3-mini", 200_000),
        ("o4-mini", 200_000),
        ("claude-3-5-haiku-latest", 200_000),
        ("claude-sonnet-4-5-20250929", 200_000),
        ("claude-opus-4-1", 200_000),
        ("claude-haiku-4-5", 200_000),
        ("openai/gpt-4o-mini", 128_000),  # OpenRouter's vendor prefix
        ("anthropic/claude-opus-4", 200_000),
        # a family's name must end where the model's name has a hyphen
        ("gpt-5.1", None),
        ("gpt-4oo", None),
        ("o10", None),
        ("claude-3", 200_000),
        ("claude-30-x", None),
        ("Qwen/Qwen3-8B", None),
        ("", None),
    ],
)
def test_builtin_context_windows_match_families_by_prefix(model: str, window: int | None) -> None:
    assert ContextWindowTable().lookup(model) == window


def test_user_context_windows_win_and_match_the_same_way() -> None:
    table = ContextWindowTable({"gpt-4o": 64_000, "my-model": 32_768, "gpt-4o-mini": 16_000})
    assert table.lookup("gpt-4o") == 64_000
    assert table.lookup("gpt-4o-2024-08-06") == 64_000
    assert table.lookup("gpt-4o-mini") == 16_000  # the longest user entry
    assert table.lookup("my-model-v2") == 32_768
    assert table.lookup("vendor/my-model") == 32_768
    assert table.lookup("gpt-5-mini") == 400_000  # the built-in table still answers
    assert ContextWindowTable({"x": 5}, builtin={}).lookup("gpt-4o") is None
    assert BUILTIN_CONTEXT_WINDOWS["gpt-4o"] == 128_000  # overrides leave it alone


def test_context_windows_must_be_a_mapping() -> None:
    with pytest.raises(UsageError, match="context_windows must be a mapping"):
        ContextWindowTable([("gpt-4o", 1)])  # type: ignore[arg-type]


@pytest.mark.parametrize("tokens", [0, -1, 1.5, True, "8k", None])
def test_context_windows_must_be_positive_ints(tokens: Any) -> None:
    with pytest.raises(UsageError, match="must be a positive int"):
        ContextWindowTable({"m": tokens})


@pytest.mark.parametrize("provider", ["openai", "anthropic", "vllm"])
def test_engines_take_context_windows(provider: str) -> None:
    engine = get_engine(
        f"{provider}:{MODELS[provider]}",
        base_url=URL,
        api_key=API_KEY,
        context_windows={MODELS[provider]: 12_345},
    )
    try:
        assert engine.context_window(MODELS[provider]) == 12_345
    finally:
        engine.close()  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match="must be a positive int"):
        get_engine(
            f"{provider}:{MODELS[provider]}",
            base_url=URL,
            api_key=API_KEY,
            context_windows={"m": 0},
        )


def test_self_hosted_servers_know_only_the_users_windows() -> None:
    engine = get_engine("vllm:gpt-4o", base_url=URL)
    try:
        assert engine.context_window("gpt-4o") is None  # the server decides its window
    finally:
        engine.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("tokens", [0, -5, 2.0, True, "4096"])
def test_test_engines_check_their_window(tokens: Any) -> None:
    with pytest.raises(UsageError, match="context_window must be a positive int"):
        ScriptedEngine([], context_window=tokens)
    with pytest.raises(UsageError, match="context_window must be a positive int"):
        FunctionEngine(lambda m, model: "x", context_window=tokens)


@pytest.mark.parametrize("price", [(1,), (1, 2, 3, 4), (-1, 2), "12", (1, True)])
def test_test_engines_check_their_price(price: Any) -> None:
    with pytest.raises(UsageError, match="price for"):
        ScriptedEngine([], price=price)
    with pytest.raises(UsageError, match="price for"):
        FunctionEngine(lambda m, model: "x", price=price)


def test_a_test_engines_price_makes_its_cost() -> None:
    engine = FunctionEngine(lambda m, model: "four char", price=(1_000_000, 2_000_000))
    done = engine.generate([{"role": "user", "content": "12345678"}], model="m")
    assert done.usage.prompt_tokens == 2 and done.usage.completion_tokens == 3
    assert done.cost_usd == pytest.approx(2 * 1 + 3 * 2)
    assert FunctionEngine(lambda m, model: "x").generate([], model="m").cost_usd is None
