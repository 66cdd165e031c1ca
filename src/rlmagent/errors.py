"""One exception tree for the whole package.

::

    RLMError
    ├── UsageError            misuse: bad arguments, unknown provider, bad context type
    │   └── ContextTypeError  (also a TypeError) context of an unsupported type
    ├── EngineError           a model call failed after retries (provider, model, status)
    │   └── EngineNotAvailable  the engine's optional dependency or model file is missing
    ├── SandboxError          the sandbox could not start or broke down
    │   └── ProtocolError     the worker sent something malformed or forbidden
    ├── BudgetExceeded        a hard budget was reached (spent, limit, partial_answer)
    └── OutputTypeError       the answer never matched output_type (raw, validation)

Errors raised by the model's own code are never exceptions: they come back as data in
:attr:`rlmagent.types.ExecResult.error`. Run failures carry the partial
:class:`~rlmagent.types.AgentResult` in ``partial`` when one exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlmagent.types import AgentResult


class RLMError(Exception):
    """Base of every exception rlmagent raises."""

    partial: AgentResult | None = None


class UsageError(RLMError):
    """The library was called the wrong way (arguments, configuration)."""


class ContextTypeError(UsageError, TypeError):
    """``context`` is of a type the REPL cannot hold."""


class EngineError(RLMError):
    """A model call failed for good (after retries)."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status


class EngineNotAvailable(EngineError):
    """The engine cannot be used here (missing extra, missing model file)."""


class SandboxError(RLMError):
    """The sandbox could not start, or its worker broke down beyond recovery."""


class ProtocolError(SandboxError):
    """The worker sent a frame that is malformed, oversized or not allowed."""


class BudgetExceeded(RLMError):
    """A hard limit of a :class:`rlmagent.Budget` was reached."""

    def __init__(
        self,
        message: str,
        *,
        limit_name: str,
        spent: Any,
        limit: Any,
        partial_answer: str | None = None,
    ) -> None:
        super().__init__(message)
        self.limit_name = limit_name
        self.spent = spent
        self.limit = limit
        self.partial_answer = partial_answer


class OutputTypeError(RLMError):
    """The final answer did not match the run's ``output_type``, even after the model
    was asked to correct it. ``raw`` is the answer as the model gave it, ``validation``
    what the validator said, ``expected`` the type's name."""

    def __init__(self, message: str, *, raw: str, validation: str, expected: str) -> None:
        super().__init__(message)
        self.raw = raw
        self.validation = validation
        self.expected = expected
