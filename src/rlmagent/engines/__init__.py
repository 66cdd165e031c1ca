"""Model backends behind one small protocol, chosen by ``"provider:model"`` strings.

``get_engine("openai:gpt-5-mini")`` returns an engine whose ``model`` attribute holds the
model named in the spec. Every engine implements :class:`Engine` (generation, price,
context window, cache identity); :class:`EngineBase` and :class:`EngineWrapper` give its
defaults. Providers come from the ``rlmagent.engines`` entry-point group
(built-ins included) and are imported only when chosen. See docs/ENGINES.md.
"""

from rlmagent.engines.base import (
    Engine,
    EngineBase,
    EngineWrapper,
    NamedEngine,
    estimate_tokens,
    run_blocking,
)
from rlmagent.engines.pricing import Price, PriceTable
from rlmagent.engines.registry import (
    DEFAULT_ENGINE_SPEC,
    ENTRY_POINT_GROUP,
    available_providers,
    get_engine,
    parse_spec,
    register_engine,
    unregister_engine,
)
from rlmagent.engines.retry import RetryPolicy
from rlmagent.engines.windows import ContextWindowTable

__all__ = [
    "DEFAULT_ENGINE_SPEC",
    "ENTRY_POINT_GROUP",
    "ContextWindowTable",
    "Engine",
    "EngineBase",
    "EngineWrapper",
    "NamedEngine",
    "Price",
    "PriceTable",
    "RetryPolicy",
    "available_providers",
    "estimate_tokens",
    "get_engine",
    "parse_spec",
    "register_engine",
    "run_blocking",
    "unregister_engine",
]
