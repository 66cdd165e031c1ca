"""Context windows of models, in tokens (prompt plus answer), for engines that cannot ask.

The network engines know no window from their server, so they read this small built-in
table of well-known hosted model families, overlaid per engine by the user's
``context_windows={"model": tokens}``. A name matches an entry when it is the entry or
starts with the entry and a hyphen (``gpt-4o`` covers ``gpt-4o-mini`` and
``gpt-4o-2024-08-06``, ``gpt-5`` does not cover ``gpt-5.1``); the longest matching entry
wins, the user's before the built-in ones, and a ``vendor/`` prefix (OpenRouter's
spelling) is ignored. An unknown model has an unknown window (None), never a guess.

The windows are the providers' standard ones; a larger window a provider offers only on
request (a beta header, a separate tier) is the user's to declare.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from rlmagent.errors import UsageError

BUILTIN_CONTEXT_WINDOWS: Mapping[str, int] = {
    # OpenAI
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-5": 400_000,
    "gpt-5-chat": 128_000,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o1-preview": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    # Anthropic
    "claude-3": 200_000,
    "claude-opus-4": 200_000,
    "claude-sonnet-4": 200_000,
    "claude-haiku-4": 200_000,
}
"""Families of hosted models and their standard context windows."""


def _names(model: str) -> Iterator[str]:
    yield model
    bare = model.rsplit("/", 1)[-1]
    if bare != model:
        yield bare


def _longest_match(table: Mapping[str, int], name: str) -> int | None:
    best = ""
    for entry in table:
        if (name == entry or name.startswith(entry + "-")) and len(entry) > len(best):
            best = entry
    return table[best] if best else None


class ContextWindowTable:
    """The built-in windows, overlaid by a user's (see the module docstring)."""

    def __init__(
        self,
        overrides: Mapping[str, int] | None = None,
        *,
        builtin: Mapping[str, int] | None = None,
    ) -> None:
        if overrides is not None and not isinstance(overrides, Mapping):
            kind = type(overrides).__name__
            raise UsageError(f"context_windows must be a mapping model -> tokens, got {kind}")
        for name, tokens in (overrides or {}).items():
            if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
                raise UsageError(
                    f"context window of {name!r} must be a positive int (tokens), got {tokens!r}"
                )
        self._user = dict(overrides or {})
        self._builtin = BUILTIN_CONTEXT_WINDOWS if builtin is None else builtin

    def lookup(self, model: str) -> int | None:
        """The window of ``model`` in tokens, or None when it is unknown."""
        for table in (self._user, self._builtin):
            for name in _names(model):
                found = _longest_match(table, name)
                if found is not None:
                    return found
        return None
