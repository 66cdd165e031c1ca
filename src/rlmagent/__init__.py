"""rlmagent: Recursive Language Models.

An RLM answers a question over an input far longer than any context window: the input
lives as ``context`` in a sandboxed Python REPL, and the root model writes code to
inspect it and to ask sub-models about pieces of it.

>>> from rlmagent import RLMAgent, ScriptedEngine
"""

from rlmagent.agent import RLMAgent
from rlmagent.budget import Budget
from rlmagent.cache import CachedEngine, CompletionCache
from rlmagent.engines import get_engine
from rlmagent.engines.base import Engine
from rlmagent.engines.scripted import FunctionEngine, ScriptedEngine
from rlmagent.errors import (
    BudgetExceeded,
    ContextTypeError,
    EngineError,
    EngineNotAvailable,
    OutputTypeError,
    ProtocolError,
    RLMError,
    SandboxError,
    UsageError,
)
from rlmagent.events import Event, EventBus
from rlmagent.session import Session
from rlmagent.tools import Tool, function_tool
from rlmagent.trace import Trajectory
from rlmagent.types import (
    AgentResult,
    Cell,
    Completion,
    ExecResult,
    ModelUsage,
    Step,
    SubCall,
    TokenUsage,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "AgentResult",
    "Budget",
    "BudgetExceeded",
    "CachedEngine",
    "Cell",
    "Completion",
    "CompletionCache",
    "ContextTypeError",
    "Engine",
    "EngineError",
    "EngineNotAvailable",
    "Event",
    "EventBus",
    "ExecResult",
    "FunctionEngine",
    "ModelUsage",
    "OutputTypeError",
    "ProtocolError",
    "RLMAgent",
    "RLMError",
    "SandboxError",
    "ScriptedEngine",
    "Session",
    "Step",
    "SubCall",
    "TokenUsage",
    "Tool",
    "Trajectory",
    "Usage",
    "UsageError",
    "__version__",
    "function_tool",
    "get_engine",
]
