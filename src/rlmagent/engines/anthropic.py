"""The Anthropic engine, on the official ``anthropic`` SDK (``pip install "rlmagent[anthropic]"``).

The SDK is imported only when the engine is built. System messages are joined (blank
line between) into the ``system`` parameter; the other messages go as they are. The key
comes from ``api_key=`` or ``ANTHROPIC_API_KEY``. ``stop_reason`` is normalised:
``end_turn`` / ``stop_sequence`` -> ``"stop"``, ``max_tokens`` -> ``"length"``. Prompt
tokens include cache reads and writes (priced as cached input and at 1.25x input).
Extra keyword arguments of ``generate`` go into the request body, except ``stop``,
which becomes ``stop_sequences``.

``temperature`` is sent only to models that accept it: Claude models released after Opus 4.6 take
only their default sampling and are sent none. Names the engine does not recognise
(e.g. an Anthropic-compatible gateway's) are sent it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from rlmagent.engines.pricing import PriceLike, PriceTable
from rlmagent.engines.retry import RetryPolicy
from rlmagent.engines.sdk import (
    MalformedResponse,
    SDKEngine,
    normalise_finish_reason,
)
from rlmagent.engines.windows import ContextWindowTable
from rlmagent.errors import EngineNotAvailable
from rlmagent.types import Completion, Message, TokenUsage

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_KEY_ENV = "ANTHROPIC_API_KEY"

_CLAUDE_VERSION = re.compile(r"^claude-[a-z]+-(\d+)(?:-(\d{1,2}))?(?:-|$)")
LAST_MODEL_WITH_TEMPERATURE = (4, 6)
"""Claude models up to this version accept ``temperature``; later ones do not."""


def accepts_temperature(model: str) -> bool:
    """False for Claude models newer than Opus/Sonnet 4.6 (``claude-opus-4-7``, ``-5``...)."""
    match = _CLAUDE_VERSION.match(model)
    if match is None:  # claude-3-5-haiku style, or not a Claude name
        return True
    version = (int(match.group(1)), int(match.group(2) or 0))
    return version <= LAST_MODEL_WITH_TEMPERATURE


def _import_anthropic(model: str) -> Any:
    try:
        import anthropic
    except ImportError as exc:
        from rlmagent.extras import install_hint

        raise EngineNotAvailable(
            f"the anthropic engine needs the anthropic package: {install_hint('anthropic')}",
            provider="anthropic",
            model=model,
        ) from exc
    return anthropic


class AnthropicEngine(SDKEngine):
    """An engine for Anthropic's messages API.

    Options as for :class:`~rlmagent.engines.openai_compat.OpenAICompatEngine`:
    ``base_url``, ``api_key``, ``timeout`` (seconds per attempt), ``max_retries`` /
    ``retry``, ``prices``, ``context_windows``.
    """

    client_classes = ("Anthropic", "AsyncAnthropic")

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        default_headers: Mapping[str, str] | None = None,
        context_windows: Mapping[str, int] | None = None,
    ) -> None:
        sdk = _import_anthropic(model)
        key = api_key or os.environ.get(API_KEY_ENV)
        if not key:
            raise EngineNotAvailable(
                f"the anthropic engine needs an API key: set {API_KEY_ENV} (the CLI's "
                "--api-key-env VAR reads it from another variable; Python: get_engine(..., "
                "api_key=...))",
                provider="anthropic",
                model=model,
            )
        super().__init__(
            model,
            provider="anthropic",
            sdk=sdk,
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=key,
            headers=default_headers,
            timeout=timeout,
            retry=retry,
            max_retries=max_retries,
            prices=PriceTable(prices),
            windows=ContextWindowTable(context_windows),
        )

    path = "/v1/messages"

    def _build_request(
        self,
        messages: list[Message],
        model: str,
        temperature: float,
        max_tokens: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [m for m in messages if m["role"] != "system"],
        }
        if system:
            body["system"] = system
        if accepts_temperature(model):
            body["temperature"] = temperature
        stop = extra.pop("stop", None)
        if stop is not None:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        body.update(extra.pop("extra_body", None) or {})
        body.update(extra)
        return body

    def _parse(
        self, data: dict[str, Any], model: str, status: int, messages: list[Message]
    ) -> Completion:
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise MalformedResponse("response has no content blocks", status)
        text = "".join(
            b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        )
        usage = data.get("usage")
        if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
            raise MalformedResponse("response has no usage", status)
        written = usage.get("cache_creation_input_tokens") or 0
        read = usage.get("cache_read_input_tokens") or 0
        prompt = usage["input_tokens"] + written + read
        completion = int(usage.get("output_tokens") or 0)
        return Completion(
            content=text,
            model=model,
            usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion),
            finish_reason=normalise_finish_reason(data.get("stop_reason")),
            cost_usd=self.cost(
                model, prompt, completion, cached_tokens=read, cache_write_tokens=written
            ),
        )


def anthropic_factory(
    model: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float | None = None,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    prices: Mapping[str, PriceLike] | None = None,
    default_headers: Mapping[str, str] | None = None,
    context_windows: Mapping[str, int] | None = None,
) -> AnthropicEngine:
    """Build an :class:`AnthropicEngine` (the ``anthropic`` entry point)."""
    return AnthropicEngine(
        model,
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        max_retries=max_retries,
        retry=retry,
        prices=prices,
        default_headers=default_headers,
        context_windows=context_windows,
    )
