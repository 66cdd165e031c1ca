"""One engine for every server that speaks the OpenAI chat-completions API.

Built on the official ``openai`` SDK (``pip install "rlmagent[openai]"``), imported only
when such an engine is built. Presets give each provider its default base URL, the
environment variable holding its API key and its quirks:

=========== ================================ ==================== =========
preset      default base_url                 API key variable     price
=========== ================================ ==================== =========
openai      https://api.openai.com/v1        OPENAI_API_KEY       table
openrouter  https://openrouter.ai/api/v1     OPENROUTER_API_KEY   table
vllm        http://localhost:8000/v1         VLLM_API_KEY (opt.)  0.0
sglang      http://localhost:30000/v1        SGLANG_API_KEY (o.)  0.0
ollama      http://localhost:11434/v1        none                 0.0
llamacpp    http://localhost:8080/v1         LLAMACPP_API_KEY (o) 0.0
lmstudio    http://localhost:1234/v1         LMSTUDIO_API_KEY (o) 0.0
=========== ================================ ==================== =========

``base_url`` may be a list: one engine over several servers of the same model, each
request to the one with the fewest in flight, failing ones out for a while
(:mod:`rlmagent.engines.endpoints`).

Servers you run yourself need no key (a placeholder is sent) and cost 0.0 unless you pass
``prices=``. For OpenAI, ``max_tokens`` is sent as ``max_completion_tokens``, and
reasoning models (the o-series, gpt-5 and later), which accept only their default
temperature, are sent none. Extra keyword arguments of ``generate`` (``stop``,
``top_p``, ``seed``, ``reasoning_effort``, a server's own fields...) go into the request
body as they are.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rlmagent.engines.base import estimate_tokens
from rlmagent.engines.pricing import FREE, PriceLike, PriceTable
from rlmagent.engines.retry import RetryPolicy
from rlmagent.engines.sdk import (
    MalformedResponse,
    SDKEngine,
    normalise_finish_reason,
)
from rlmagent.engines.windows import ContextWindowTable
from rlmagent.errors import EngineNotAvailable, UsageError
from rlmagent.types import Completion, Message, TokenUsage

_REASONING_MODEL = re.compile(r"^(o\d|gpt-([5-9]|\d\d))")


@dataclass(frozen=True, slots=True)
class Preset:
    """Where a provider lives and how it differs from plain OpenAI."""

    name: str
    base_url: str
    api_key_env: str | None
    key_required: bool
    self_hosted: bool
    max_tokens_field: str = "max_tokens"
    omit_temperature: Callable[[str], bool] | None = None


PRESETS: Mapping[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "openai",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            key_required=True,
            self_hosted=False,
            max_tokens_field="max_completion_tokens",
            omit_temperature=lambda model: bool(_REASONING_MODEL.match(model)),
        ),
        Preset(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            key_required=True,
            self_hosted=False,
        ),
        Preset("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", False, True),
        Preset("sglang", "http://localhost:30000/v1", "SGLANG_API_KEY", False, True),
        Preset("ollama", "http://localhost:11434/v1", None, False, True),
        Preset("llamacpp", "http://localhost:8080/v1", "LLAMACPP_API_KEY", False, True),
        Preset("lmstudio", "http://localhost:1234/v1", "LMSTUDIO_API_KEY", False, True),
    )
}

PLACEHOLDER_API_KEY = "not-needed"
"""Sent to self-hosted servers that were given no key (the SDK insists on one)."""


def _import_openai(provider: str, model: str) -> Any:
    try:
        import openai
    except ImportError as exc:
        from rlmagent.extras import install_hint

        raise EngineNotAvailable(
            f"the {provider} engine needs the openai package: {install_hint('openai')}",
            provider=provider,
            model=model,
        ) from exc
    return openai


class OpenAICompatEngine(SDKEngine):
    """An engine for any OpenAI-compatible chat-completions server.

    ``model`` is the default model of ``generate``; ``preset`` one of :data:`PRESETS`.
    ``base_url`` and ``api_key`` override the preset's (the key is otherwise read from
    the preset's environment variable). ``timeout`` is seconds per attempt;
    ``max_retries`` / ``retry`` set the :class:`RetryPolicy`; ``prices`` overrides the
    price table and ``context_windows`` (``{model: tokens}``) the table of context windows
    (self-hosted servers know only the user's: their models' windows are the server's
    settings). Call :meth:`close` (or use ``with``) to release connections early.
    """

    client_classes = ("OpenAI", "AsyncOpenAI")

    def __init__(
        self,
        model: str,
        *,
        preset: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        prices: Mapping[str, PriceLike] | None = None,
        default_headers: Mapping[str, str] | None = None,
        context_windows: Mapping[str, int] | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
        self.preset = PRESETS[preset]
        sdk = _import_openai(preset, model)
        key = self._resolve_key(api_key, model)
        table = (
            PriceTable(prices, default=FREE, builtin={})
            if self.preset.self_hosted
            else PriceTable(prices)
        )
        windows = (
            ContextWindowTable(context_windows, builtin={})
            if self.preset.self_hosted
            else ContextWindowTable(context_windows)
        )
        super().__init__(
            model,
            provider=preset,
            sdk=sdk,
            base_url=base_url or self.preset.base_url,
            api_key=key,
            headers=default_headers,
            timeout=timeout,
            retry=retry,
            max_retries=max_retries,
            prices=table,
            windows=windows,
        )

    def _resolve_key(self, api_key: str | None, model: str) -> str:
        if api_key:
            return api_key
        env = self.preset.api_key_env
        from_env = os.environ.get(env) if env else None
        if from_env:
            return from_env
        if self.preset.key_required:
            raise EngineNotAvailable(
                f"the {self.preset.name} engine needs an API key: set {env} (the CLI's "
                "--api-key-env VAR reads it from another variable; Python: get_engine(..., "
                "api_key=...))",
                provider=self.preset.name,
                model=model,
            )
        return PLACEHOLDER_API_KEY

    def _build_request(
        self,
        messages: list[Message],
        model: str,
        temperature: float,
        max_tokens: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": messages,
            self.preset.max_tokens_field: max_tokens,
        }
        omit = self.preset.omit_temperature
        if omit is None or not omit(model):
            body["temperature"] = temperature
        body.update(extra.pop("extra_body", None) or {})
        body.update(extra)
        return body

    def _parse(
        self, data: dict[str, Any], model: str, status: int, messages: list[Message]
    ) -> Completion:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedResponse("response has no choices", status)
        message = choices[0].get("message")
        if not isinstance(message, dict):
            raise MalformedResponse("response choice has no message", status)
        content = message.get("content") or ""
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise MalformedResponse(f"message content is {type(content).__name__}", status)
        usage: dict[str, Any] = data["usage"] if isinstance(data.get("usage"), dict) else {}
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens")
        if not isinstance(prompt, int):  # some servers omit usage: estimate it
            prompt = sum(estimate_tokens(m["content"]) for m in messages)
        if not isinstance(completion, int):
            completion = estimate_tokens(content)
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return Completion(
            content=content,
            model=model,
            usage=TokenUsage(prompt_tokens=prompt, completion_tokens=completion),
            finish_reason=normalise_finish_reason(choices[0].get("finish_reason")),
            cost_usd=self.cost(
                model, prompt, completion, cached_tokens=cached if isinstance(cached, int) else 0
            ),
        )


def _preset_factory(name: str) -> Callable[..., OpenAICompatEngine]:
    def factory(model: str, **options: Any) -> OpenAICompatEngine:
        urls = options.get("base_url")
        if isinstance(urls, list | tuple):  # several servers: one engine over them all
            if not urls or not all(isinstance(u, str) and u for u in urls):
                raise UsageError(f"base_url must be a URL or a list of URLs, got {urls!r}")
            if len(urls) > 1:
                from rlmagent.engines.endpoints import MultiEndpointEngine

                engines = [
                    OpenAICompatEngine(model, preset=name, **{**options, "base_url": url})
                    for url in urls
                ]
                return MultiEndpointEngine(engines)  # type: ignore[return-value]
            options = {**options, "base_url": urls[0]}
        return OpenAICompatEngine(model, preset=name, **options)

    signature = inspect.signature(OpenAICompatEngine.__init__)
    params = [p for n, p in signature.parameters.items() if n not in ("self", "preset")]
    factory.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=OpenAICompatEngine
    )
    factory.__name__ = factory.__qualname__ = f"{name}_factory"
    factory.__doc__ = f"Build an :class:`OpenAICompatEngine` with the {name!r} preset."
    return factory


openai_factory = _preset_factory("openai")
openrouter_factory = _preset_factory("openrouter")
vllm_factory = _preset_factory("vllm")
sglang_factory = _preset_factory("sglang")
ollama_factory = _preset_factory("ollama")
llamacpp_factory = _preset_factory("llamacpp")
lmstudio_factory = _preset_factory("lmstudio")
