"""Model backends behind one small protocol, chosen by ``"provider:model"`` strings.

``get_engine("openai:gpt-5-mini")`` returns an engine whose ``model`` attribute holds the
model named in the spec. Providers come from the ``rlmagent.engines`` entry-point group
(built-ins included) and are imported only when chosen. See docs/ENGINES.md.
"""

from rlmagent.engines.base import Engine, estimate_tokens, run_blocking
from rlmagent.engines.pricing import Price, PriceTable
from rlmagent.engines.registry import (
    DEFAULT_ENGINE_SPEC,
    ENTRY_POINT_GROUP,
    NamedEngine,
    available_providers,
    get_engine,
    parse_spec,
    register_engine,
    unregister_engine,
)
from rlmagent.engines.retry import RetryPolicy

__all__ = [
    "DEFAULT_ENGINE_SPEC",
    "ENTRY_POINT_GROUP",
    "Engine",
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
