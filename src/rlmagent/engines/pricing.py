"""Prices of models in USD per million tokens, and the cost of one completion.

The built-in table is package data (``prices.json``: list prices of current OpenAI and
Anthropic models; its ``as_of`` field says when it was written). Users override or
extend it per engine with ``prices={"model": (input, output)}`` (or a third value, the
price of cached input tokens). A model with no price has an unknown cost (``None``),
never 0; self-hosted servers and the embedded local engine default to 0.0.

Lookup tries the exact name, then the name without a ``vendor/`` prefix (as OpenRouter
spells models), then without a dated or ``-latest`` suffix (``claude-sonnet-4-5-20250929``
costs what ``claude-sonnet-4-5`` costs). It never matches by bare prefix: ``gpt-4o-mini``
is not ``gpt-4o``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from rlmagent.errors import UsageError

_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens. ``cached_input`` None means cached input costs ``input``."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_tokens: int = 0,
        cache_write_tokens: int = 0,
        cache_write_factor: float = 1.25,
    ) -> float:
        """USD for one call. ``prompt_tokens`` includes the cached and cache-write ones."""
        cached_rate = self.input if self.cached_input is None else self.cached_input
        plain = max(0, prompt_tokens - cached_tokens - cache_write_tokens)
        dollars = (
            plain * self.input
            + cached_tokens * cached_rate
            + cache_write_tokens * self.input * cache_write_factor
            + completion_tokens * self.output
        )
        return dollars / 1_000_000


PriceLike = Price | Sequence[float]
"""A :class:`Price` or a tuple ``(input, output)`` / ``(input, output, cached_input)``."""

FREE = Price(0.0, 0.0, 0.0)


def as_price(value: PriceLike, *, model: str = "?") -> Price:
    """Validate a user's price; a :class:`UsageError` says what is wrong with it."""
    if isinstance(value, Price):
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise UsageError(
            f"price for {model!r} must be (input, output) USD per million tokens, got {value!r}"
        )
    numbers = list(value)
    if len(numbers) not in (2, 3) or not all(
        isinstance(n, int | float) and not isinstance(n, bool) and n >= 0 for n in numbers
    ):
        raise UsageError(
            f"price for {model!r} must be 2 or 3 non-negative numbers "
            f"(input, output[, cached_input]) USD per million tokens, got {value!r}"
        )
    return Price(float(numbers[0]), float(numbers[1]), *(float(n) for n in numbers[2:]))


@functools.cache
def builtin_prices() -> Mapping[str, Price]:
    """The package's price table (read once)."""
    text = resources.files("rlmagent.engines").joinpath("prices.json").read_text("utf-8")
    data = json.loads(text)
    return {name: as_price(value, model=name) for name, value in data["models"].items()}


def _candidates(model: str) -> Iterator[str]:
    yield model
    bare = model.rsplit("/", 1)[-1]
    if bare != model:
        yield bare
    undated = _SUFFIX.sub("", bare)
    if undated != bare:
        yield undated


class PriceTable:
    """The built-in prices, overlaid by a user's, with an optional fallback price."""

    def __init__(
        self,
        overrides: Mapping[str, PriceLike] | None = None,
        *,
        default: Price | None = None,
        builtin: Mapping[str, Price] | None = None,
    ) -> None:
        if overrides is not None and not isinstance(overrides, Mapping):
            raise UsageError(
                f"prices must be a mapping model -> (input, output), got {type(overrides).__name__}"
            )
        self._user = {name: as_price(p, model=name) for name, p in (overrides or {}).items()}
        self._builtin = builtin_prices() if builtin is None else builtin
        self.default = default

    def lookup(self, model: str) -> Price | None:
        """The price of ``model``; the user's table wins over the built-in one."""
        for table in (self._user, self._builtin):
            for name in _candidates(model):
                if name in table:
                    return table[name]
        return self.default
