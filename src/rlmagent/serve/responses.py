"""The OpenAI objects ``rlm serve`` answers with: completions, stream chunks, usage.

``usage`` always counts the whole run tree (the root and every sub-call and child run).
What is RLM-specific (run id, stop reason, calls, cost, the session) goes in an extra
``rlm`` object that OpenAI clients keep as an extra field and otherwise ignore.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from rlmagent.types import AgentResult, Usage, to_dict


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def finish_reason(result: AgentResult) -> str:
    """``stop`` for a confident answer, ``length`` when a limit (turns, budget) ended it."""
    return "stop" if result.stop_reason in (None, "final") else "length"


def answer_text(result: AgentResult) -> str:
    """The message content: the typed value as JSON when there is one, else the answer."""
    value = getattr(result, "value", None)
    if value is not None:
        return json.dumps(value, ensure_ascii=False)
    if not result.content and result.partial_answer:
        return result.partial_answer  # a run that ended without a confident answer
    return result.content


def rlm_object(result: AgentResult, session: str | None) -> dict[str, Any]:
    usage = result.usage
    out: dict[str, Any] = {
        "run_id": result.run_id,
        "stop_reason": result.stop_reason,
        "turns": result.turns,
        "calls": usage.calls,
        "cached_calls": usage.cached_calls,
        "cost_usd": usage.cost_usd,
        "elapsed_s": round(result.elapsed_s, 4),
        "isolation": result.isolation,
        "budget": to_dict(result.budget),
        "session": session,
    }
    value = getattr(result, "value", None)
    if value is not None:
        out["value"] = value
    return out


def completion(
    result: AgentResult, *, model: str, session: str | None, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer_text(result)},
                "finish_reason": finish_reason(result),
            }
        ],
        "usage": usage_object(result.usage),
        "rlm": rlm_object(result, session),
    }


class ChunkWriter:
    """Server-Sent Events of one streamed completion, in the OpenAI chunk format."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.model = model
        self.created = int(time.time())

    def _event(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return self._event([{"index": 0, "delta": delta, "finish_reason": finish}])

    def start(self) -> bytes:
        return self.delta({"role": "assistant", "content": ""})

    def progress(self, text: str) -> bytes:
        """A progress line as a ``reasoning_content`` delta (chat UIs show it as thinking)."""
        return self.delta({"reasoning_content": text})

    def answer(self, result: AgentResult, session: str | None) -> list[bytes]:
        """The answer, the finishing chunk, then the usage of the whole tree."""
        return [
            self.delta({"content": answer_text(result)}),
            self.delta({}, finish=finish_reason(result)),
            self._event([], usage=usage_object(result.usage), rlm=rlm_object(result, session)),
        ]

    def error(self, body: dict[str, Any]) -> bytes:
        """An error after the stream started: an ``error`` event, as OpenAI streams do."""
        return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

    @staticmethod
    def done() -> bytes:
        return b"data: [DONE]\n\n"

    @staticmethod
    def ping() -> bytes:
        return b": keep-alive\n\n"
