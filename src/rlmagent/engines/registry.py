"""``"provider:model"`` strings to engines, through a registry fed by entry points.

Every provider, built-in or third-party, is an entry point in the group
``rlmagent.engines`` whose value is ``"module:factory"``; ``factory(model, **options)``
returns an engine. Nothing is imported until a provider is chosen: importing rlmagent
never imports openai, anthropic or llama_cpp. A plugin package registers a provider
with, in its pyproject.toml::

    [project.entry-points."rlmagent.engines"]
    myprovider = "my_package.engine:make_engine"

:func:`register_engine` does the same at run time, without packaging.

:func:`get_engine` returns the engine itself; its ``model`` attribute holds the model
named in the spec (the default for ``generate``), and ``provider`` the provider::

    engine = get_engine("openai:gpt-5-mini")
    agent = RLMAgent(engine, engine.model)
"""

from __future__ import annotations

import difflib
import inspect
import threading
from collections.abc import Callable
from importlib import metadata
from typing import Any

from rlmagent.engines.base import Engine, NamedEngine
from rlmagent.errors import UsageError

ENTRY_POINT_GROUP = "rlmagent.engines"
DEFAULT_ENGINE_SPEC = "local:qwen2.5-coder-1.5b"
"""The engine used when no model is given: the embedded local model (no server, no key)."""

BUILTIN_DISTRIBUTION = "rlmagent"


EngineFactory = Callable[..., Engine]
"""``factory(model: str, **options) -> Engine``."""

_lock = threading.Lock()
_runtime: dict[str, EngineFactory] = {}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"`` on the first colon (``"ollama:qwen3:8b"`` keeps its tag)."""
    if not isinstance(spec, str):
        raise UsageError(f"an engine spec must be a str like 'openai:gpt-5-mini', got {spec!r}")
    provider, sep, model = spec.strip().partition(":")
    provider = provider.strip().lower()
    if not sep or not provider or not model.strip():
        raise UsageError(
            f"engine spec {spec!r} must look like 'provider:model', e.g. 'openai:gpt-5-mini', "
            f"'ollama:qwen3:8b' or {DEFAULT_ENGINE_SPEC!r}"
        )
    return provider, model.strip()


def _entry_points() -> dict[str, metadata.EntryPoint]:
    """The group's entry points by name; rlmagent's own win over a plugin's duplicate."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        name = ep.name.lower()
        builtin = ep.dist is not None and ep.dist.name == BUILTIN_DISTRIBUTION
        if name not in found or builtin:
            found[name] = ep
    return found


def available_providers() -> list[str]:
    """Names of every provider that :func:`get_engine` accepts, sorted."""
    with _lock:
        runtime = set(_runtime)
    return sorted(runtime | set(_entry_points()))


def register_engine(name: str, factory: EngineFactory, *, replace: bool = False) -> None:
    """Add a provider at run time (takes precedence over an entry point of that name)."""
    if not callable(factory):
        raise UsageError(f"the factory for {name!r} must be callable")
    key = name.strip().lower()
    if not key or ":" in key:
        raise UsageError(f"a provider name must be non-empty and colon-free, got {name!r}")
    with _lock:
        if key in _runtime and not replace:
            raise UsageError(f"provider {key!r} is already registered (pass replace=True)")
        _runtime[key] = factory


def unregister_engine(name: str) -> None:
    """Remove a provider added with :func:`register_engine` (no-op when absent)."""
    with _lock:
        _runtime.pop(name.strip().lower(), None)


def _unknown(provider: str) -> UsageError:
    known = available_providers()
    close = difflib.get_close_matches(provider, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UsageError(
        f"unknown engine provider {provider!r}.{hint} Known providers: {', '.join(known)}."
    )


def get_factory(provider: str) -> EngineFactory:
    """The factory of ``provider``, importing its module only now."""
    with _lock:
        factory = _runtime.get(provider)
    if factory is not None:
        return factory
    ep = _entry_points().get(provider)
    if ep is None:
        raise _unknown(provider)
    loaded = ep.load()
    if not callable(loaded):
        raise UsageError(f"entry point {provider!r} ({ep.value}) is not callable")
    return loaded  # type: ignore[no-any-return]


def _check_options(provider: str, factory: EngineFactory, model: str, options: dict) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins and C callables: let the call decide
        return
    try:
        signature.bind(model, **options)
    except TypeError:
        takes = [
            p.name
            for p in list(signature.parameters.values())[1:]
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        unknown = sorted(set(options) - set(takes))
        raise UsageError(
            f"the {provider} engine does not take option(s) {', '.join(unknown) or '?'}; "
            f"it takes: {', '.join(takes) or 'none'}"
        ) from None


def get_engine(spec: str | None = None, **options: Any) -> NamedEngine:
    """Build the engine named by ``spec`` (``"provider:model"``; None: the default).

    ``options`` go to the provider's factory: ``base_url``, ``api_key``, ``timeout``,
    ``max_retries``, ``prices`` for network engines; ``n_ctx``, ``cache_dir`` ... for
    the local one. Unknown providers and options are a :class:`UsageError`; a missing
    optional dependency is an :class:`~rlmagent.errors.EngineNotAvailable`.
    """
    provider, model = parse_spec(DEFAULT_ENGINE_SPEC if spec is None else spec)
    factory = get_factory(provider)
    _check_options(provider, factory, model, options)
    engine = factory(model, **options)
    if not isinstance(engine, Engine):
        raise UsageError(f"the {provider} factory returned {type(engine).__name__}, not an Engine")
    if not (isinstance(engine, NamedEngine) and isinstance(engine.model, str)):
        try:
            engine.model = model  # type: ignore[attr-defined]
        except AttributeError:  # a slotted or frozen engine: wrap nothing, say so
            raise UsageError(
                f"the {provider} engine has no 'model' attribute and cannot be given one"
            ) from None
    return engine  # type: ignore[return-value]
