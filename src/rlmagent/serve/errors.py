"""OpenAI-style error objects: what every failed request of ``rlm serve`` answers.

The body is ``{"error": {"message", "type", "param", "code"}}``, the shape the official
OpenAI clients parse into their ``APIStatusError`` subclasses. Messages name what is
wrong; they never echo a client's input back at length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}


@dataclass(frozen=True)
class ApiError(Exception):
    """A request that fails with ``status``; ``headers`` go on the response (Retry-After)."""

    status: int
    message: str
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, code=self.code, param=self.param)


def error_body(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "server_error"),
            "param": param,
            "code": code,
        }
    }


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about client input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
