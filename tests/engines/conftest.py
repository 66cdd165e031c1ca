"""Fixtures: a loopback chat server, a retry policy that records its waits, and a
factory of engines of every network provider pointed at that server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rlmagent.engines import get_engine, sdk

from .fake_server import FakeLLMServer
from .helpers import API_KEY, MODELS, SleepLog, base_url


@pytest.fixture(scope="module")
def _server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def server(_server: FakeLLMServer) -> FakeLLMServer:
    _server.reset()
    return _server


@pytest.fixture
def sleeps() -> SleepLog:
    return SleepLog()


@pytest.fixture
def make_engine(
    server: FakeLLMServer,
    sleeps: SleepLog,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    """``make_engine(provider, model=None, **options)`` -> an engine on the loopback server.

    In tests parametrised with ``mode="async-httpx"`` the engines' async clients use the
    SDK's default httpx transport, as they do where aiohttp is not installed.
    """
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("mode") == "async-httpx":
        monkeypatch.setattr(
            sdk, "async_http_client", lambda sdk, **opts: sdk.DefaultAsyncHttpxClient(**opts)
        )
    built: list[Any] = []

    def make(provider: str, model: str | None = None, **options: Any) -> Any:
        options.setdefault("base_url", base_url(provider, server))
        options.setdefault("api_key", API_KEY)
        options.setdefault("retry", sleeps.policy())
        options.setdefault("timeout", 5.0)
        engine = get_engine(f"{provider}:{model or MODELS[provider]}", **options)
        built.append(engine)
        return engine

    yield make
    for engine in built:
        engine.close()
