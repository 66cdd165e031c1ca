"""Real servers on loopback: the fake model (tests/engines/fake_server.py) and `rlm serve`
started as a subprocess, driven by the official `openai` client.

The fake model follows plans: a root question carries ``[[plan:NAME]]`` and the fake
answers it with :data:`PLANS` ``[NAME][turn]``; any call without a plan is a sub-call,
answered ``sub: <the prompt's words>``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from engines.fake_server import FakeLLMServer  # noqa: E402

API_KEY = "serve-test-key"
PLANS: dict[str, list[str]] = {
    # one turn: code runs, then FINAL in the same cell
    "len": ["```repl\nn = len(context or '')\nprint(n)\nFINAL(f'{n} characters')\n```"],
    # the question itself, as the answer (checks the context rule from the model's side)
    "batch": [
        "```repl\nanswers = llm_batch(['alpha', 'beta', 'gamma'])\nprint(answers)\n"
        "FINAL(' | '.join(answers))\n```"
    ],
    "remember": ["```repl\nsecret = context.split()[-1]\nprint(secret)\nFINAL('kept')\n```"],
    "recall": ["```repl\nprint(secret)\nFINAL(secret)\n```"],
    "slow": ["```repl\nimport time\ntime.sleep(1.5)\nprint('slept')\nFINAL('slept')\n```"],
    "hang": ["```repl\nimport time\nprint('sleeping')\ntime.sleep(300)\nFINAL('never')\n```"],
    "names": ["```repl\nprint(sorted(contexts))\nFINAL(','.join(sorted(contexts)))\n```"],
    "json": ['```repl\nprint(len(context))\nFINAL(\'{"count": 3, "names": ["a", "b"]}\')\n```'],
}
_PLAN = re.compile(r"\[\[plan:(\w+)\]\]")


def responder(messages: list[dict[str, str]], model: str) -> str:
    for i in range(len(messages) - 1, -1, -1):
        found = _PLAN.findall(messages[i]["content"])
        if found:
            turns = PLANS[found[0]]  # the question comes first; history after it
            turn = sum(1 for m in messages[i + 1 :] if m["role"] == "assistant")
            return turns[min(turn, len(turns) - 1)]
    return "sub: " + " ".join(messages[-1]["content"].split()[:8])


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=responder) as server:
        yield server


@dataclass
class Served:
    """A running `rlm serve` process."""

    proc: subprocess.Popen[str]
    url: str  # the OpenAI base URL, .../v1
    clients: list[openai.OpenAI] = field(default_factory=list)

    @property
    def root(self) -> str:
        return self.url[: -len("/v1")]

    def client(self, **options: object) -> openai.OpenAI:
        kwargs = {"api_key": API_KEY, "max_retries": 0, "timeout": 60.0, **options}
        client = openai.OpenAI(base_url=self.url, **kwargs)
        self.clients.append(client)  # closed by close_clients(): no socket left to GC
        return client

    def close_clients(self) -> None:
        while self.clients:
            self.clients.pop().close()

    def stop(self) -> None:
        self.close_clients()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_serve(
    model_server: FakeLLMServer, *extra: str, env: dict[str, str] | None = None
) -> Served:
    command = [
        sys.executable, "-m", "rlmagent", "serve", "--port", "0",
        "--model", "vllm:fake-root", "--sub-model", "vllm:fake-sub",
        "--base-url", model_server.url, "--no-log", *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 60
    seen: list[str] = []
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        seen.append(proc.stderr.readline())
        if "listening on" in seen[-1] or not seen[-1]:
            break
    found = re.search(r"http://\S+", seen[-1])
    if found is None:
        proc.kill()
        proc.wait(5)
        seen.append(proc.stderr.read())
        proc.stderr.close()
        raise AssertionError(f"rlm serve did not start: {''.join(seen)}")
    return Served(proc, found.group(0))


@pytest.fixture(scope="module")
def served(model_server: FakeLLMServer) -> Iterator[Served]:
    """The server most tests share: an API key, small limits, one extra model."""
    server = start_serve(
        model_server,
        "--api-key", API_KEY, "--max-concurrent-runs", "4", "--max-sessions", "3",
        "--max-body-mb", "0.25", "--max-calls", "20", "--max-depth", "1",
        "--allow-model", "vllm:fake-other", "--question-chars", "200",
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture
def client(served: Served) -> Iterator[openai.OpenAI]:
    yield served.client()
    served.close_clients()
