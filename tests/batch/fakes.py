"""A scripted RLM on the loopback chat server: what the batch tests and benchmarks run.

The root (a request with a system message) is answered with one code block that makes
``SUBS`` sub-calls (one ``llm_batch``; one ``llm_query`` when ``SUBS`` is 1) and ends
with ``FINAL`` of the question's last word, upper-cased, and the number of answers: the
answer shows the job ran and its sub-calls came back. Sub-calls get the server's echo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engines.fake_server import FakeLLMServer

MODEL = "vllm:fake-model"


def root_reply(question: str, subs: int) -> str:
    word = question.split()[-1]
    if subs == 0:
        return f"```repl\nFINAL({word.upper()!r})\n```"
    if subs == 1:
        call = f"r = [llm_query({('about ' + word)!r})]"
    else:
        call = f"r = llm_batch([{('about ' + word)!r} + str(i) for i in range({subs})])"
    return f"```repl\n{call}\nFINAL({word.upper()!r} + ':' + str(len(r)))\n```"


def question_of(messages: list[dict[str, str]]) -> str:
    """The question of a root request (the first user message names it)."""
    first = next(m["content"] for m in messages if m["role"] == "user")
    for line in first.splitlines():
        if line.startswith("Question:"):
            return line.removeprefix("Question:").strip()
    return first.split()[-1]


def scripted(subs: int = 1, hook: Any = None) -> Any:
    """A responder: scripted root replies, echoed sub-calls. ``hook(question)`` runs
    first on every root request (tests use it to kill or stall a job)."""

    def respond(messages: list[dict[str, str]], model: str) -> str:
        if messages and messages[0]["role"] == "system":
            question = question_of(messages)
            if hook is not None:
                hook(question)
            return root_reply(question, subs)
        users = [m["content"] for m in messages if m["role"] == "user"]
        return "echo: " + (users[-1] if users else "")

    return respond


def server(subs: int = 1, hook: Any = None, delay: float = 0.0) -> FakeLLMServer:
    return FakeLLMServer(responder=scripted(subs, hook), delay=delay)


def write_jobs(path: Path, n: int, *, extra: list[str] | None = None) -> Path:
    lines = [
        json.dumps({"id": f"j{i}", "question": f"what is word{i}", "context": f"text {i}"})
        for i in range(n)
    ]
    path.write_text("\n".join([*lines, *(extra or [])]) + "\n", encoding="utf-8")
    return path


def root_requests(srv: FakeLLMServer) -> int:
    return sum(1 for r in srv.requests if r.body.get("messages", [{}])[0].get("role") == "system")
