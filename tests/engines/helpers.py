"""Shared pieces of the engine tests: models, prices, a recording retry policy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from rlmagent.engines import RetryPolicy
from rlmagent.types import Completion

from .fake_server import FakeLLMServer

API_KEY = "test-key-123"

OPENAI_PRESETS = ("openai", "openrouter", "vllm", "sglang", "ollama", "llamacpp", "lmstudio")
ALL_PROVIDERS = (*OPENAI_PRESETS, "anthropic")

MODELS = {
    "openai": "gpt-5-mini",
    "openrouter": "openai/gpt-5-mini",
    "vllm": "Qwen/Qwen3-8B",
    "sglang": "Qwen/Qwen3-8B",
    "ollama": "qwen3:8b",
    "llamacpp": "qwen",
    "lmstudio": "qwen2.5-7b-instruct",
    "anthropic": "claude-sonnet-4-6",
}
"""A model of each provider; priced ones use the built-in table's list price."""

EXPECTED_PRICE = {
    "openai": (0.25, 2.0),
    "openrouter": (0.25, 2.0),
    "anthropic": (3.0, 15.0),
}
"""USD per million tokens; self-hosted servers cost 0.0."""


@dataclass
class SleepLog:
    """A retry policy whose waits are recorded instead of slept."""

    waits: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)

    def policy(self, **overrides: Any) -> RetryPolicy:
        options: dict[str, Any] = {"initial_delay": 0.01, "max_delay": 0.04}
        options.update(overrides)
        return RetryPolicy(sleep=self.sleep, asleep=self.asleep, **options)


def base_url(provider: str, server: FakeLLMServer) -> str:
    return server.root_url if provider == "anthropic" else server.url


def call(engine: Any, mode: str, messages: list[dict[str, str]], **kwargs: Any) -> Completion:
    """``engine.generate`` (mode "sync") or ``engine.agenerate`` in a fresh loop (the
    others: "async" on the aiohttp transport, "async-httpx" on the SDK's default)."""
    if mode == "sync":
        return engine.generate(messages, **kwargs)
    return asyncio.run(engine.agenerate(messages, **kwargs))
