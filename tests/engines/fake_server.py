"""A real HTTP server on loopback that speaks two chat wire formats, with fault injection.

It answers ``POST {prefix}/chat/completions`` (OpenAI chat completions) and
``POST {prefix}/messages`` (Anthropic messages) like a tiny deterministic model: the reply
is ``"echo: "`` followed by the words of the last user message, cut to ``max_tokens``
words (then the finish reason says so). A token is a whitespace-separated word, so tests
can predict usage exactly. ``responder=fn`` replaces the echo: ``fn(messages, model)``
gets the request's messages as ``{"role", "content"}`` dicts (Anthropic's ``system``
first, as a system message) and returns the reply, sent whole (finish reason ``stop``).

Faults are queued with :meth:`FakeLLMServer.push` and consumed one per request, in order:

* ``Fault.status(429, retry_after="2")`` -- an HTTP error with a JSON error body
* ``Fault.hang(seconds)`` -- read the request, then say nothing for ``seconds``
* ``Fault.malformed()`` -- 200 with a truncated JSON body
* ``Fault.drop()`` -- close the connection without a response
* ``Fault.reply(payload)`` -- 200 with this JSON payload instead of the real answer

``delay`` (seconds) makes every normal answer wait first (used by the benchmark);
:meth:`FakeLLMServer.answer_together` holds requests until a number of them are in.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour, applied to one request."""

    kind: str
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0
    payload: Any = None

    @classmethod
    def error(cls, status: int, retry_after: str | None = None) -> Fault:
        return cls("status", status=status, retry_after=retry_after)

    @classmethod
    def hang(cls, seconds: float = 30.0) -> Fault:
        return cls("hang", seconds=seconds)

    @classmethod
    def malformed(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def drop(cls) -> Fault:
        return cls("drop")

    @classmethod
    def reply(cls, payload: Any) -> Fault:
        return cls("reply", payload=payload)


@dataclass
class Recorded:
    """One request the server saw."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    client_port: int = 0


Responder = Callable[[list[dict[str, str]], str], str]
"""``fn(messages, model) -> reply``: a stand-in model instead of the echo."""


def _words(text: str) -> list[str]:
    return text.split()


def _content_text(content: Any) -> str:
    """Text of a message's content (a string, or a list of Anthropic text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def _plain(messages: Any) -> list[dict[str, str]]:
    """A request's messages as ``{"role", "content"}`` dicts of text."""
    if not isinstance(messages, list):
        return []
    return [
        {"role": str(m.get("role", "")), "content": _content_text(m.get("content"))}
        for m in messages
        if isinstance(m, dict)
    ]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients can reuse connections
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # silence stderr
        return

    def do_GET(self) -> None:
        """``GET /stats``: how many requests, and over how many client connections."""
        if self.path != "/stats":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        seen = self.server.owner.requests
        self._send(200, {"requests": len(seen), "connections": len({r.client_port for r in seen})})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Recorded(self.path, headers, body, self.client_address[1])
        fault = owner._record_and_pop(seen)
        if fault is not None and self._apply(fault):
            return
        barrier = owner.barrier
        if barrier is not None:
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                message = f"fewer than {barrier.parties} requests arrived together"
                self._send(504, {"error": {"message": message}})
                return
        if owner.delay:
            time.sleep(owner.delay)
        if self.path == owner.prefix + "/chat/completions":
            self._openai(body)
        elif self.path == owner.prefix + "/messages":
            self._anthropic(body)
        else:
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

    def _apply(self, fault: Fault) -> bool:
        """Carry out a fault; True when the request is finished."""
        if fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            payload = {"error": {"message": f"injected {fault.status}", "type": "injected"}}
            self._send(fault.status, payload, extra)
            return True
        if fault.kind == "hang":
            self.server.owner.stopping.wait(fault.seconds)
            self.close_connection = True
            return True
        if fault.kind == "malformed":
            self._send_raw(200, b'{"id": "chatcmpl-broken", "choices": [{"mess')
            return True
        if fault.kind == "reply":
            self._send(200, fault.payload)
            return True
        if fault.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return True
        raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _authorised(self, *accepted: tuple[str, str]) -> bool:
        """True when one (header, template) pair carries the key; else answer 401."""
        key = self.server.owner.api_key
        if key is None or any(
            self.headers.get(header) == template.format(key=key) for header, template in accepted
        ):
            return True
        self._send(401, {"error": {"message": "bad api key", "type": "authentication_error"}})
        return False

    def _reply(
        self, messages: list[dict[str, str]], model: str, max_tokens: int
    ) -> tuple[str, bool]:
        """The reply and whether it was cut by ``max_tokens``."""
        responder = self.server.owner.responder
        if responder is not None:
            return responder(messages, model), False
        users = [m["content"] for m in messages if m["role"] == "user"]
        words = ["echo:", *_words(users[-1] if users else "")]
        return " ".join(words[:max_tokens]), len(words) > max_tokens

    def _openai(self, body: dict[str, Any]) -> None:
        if not self._authorised(("authorization", "Bearer {key}")):
            return
        messages = _plain(body.get("messages", []))
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 10_000
        text, cut = self._reply(messages, body.get("model", ""), limit)
        prompt = sum(len(_words(m["content"])) for m in messages)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(_words(text)),
            "total_tokens": prompt + len(_words(text)),
        }
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "length" if cut else "stop",
        }
        self._send(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [choice],
                "usage": usage,
            },
        )

    def _anthropic(self, body: dict[str, Any]) -> None:
        if not self._authorised(("x-api-key", "{key}"), ("authorization", "Bearer {key}")):
            return
        if not self.headers.get("anthropic-version"):
            self._send(400, {"type": "error", "error": {"message": "no anthropic-version"}})
            return
        messages = body.get("messages", [])
        if any(m.get("role") == "system" for m in messages):
            error = {"type": "invalid_request_error", "message": "system role in messages"}
            self._send(400, {"type": "error", "error": error})
            return
        system = _content_text(body.get("system", ""))
        plain = _plain(([{"role": "system", "content": system}] if system else []) + messages)
        text, cut = self._reply(plain, body.get("model", ""), int(body.get("max_tokens", 10_000)))
        prompt = sum(len(_words(m["content"])) for m in plain)
        self._send(
            200,
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body.get("model", ""),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if cut else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt, "output_tokens": len(_words(text))},
            },
        )

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default listen backlog of 5 drops bursts of connects
    owner: FakeLLMServer


class FakeLLMServer:
    """The loopback server; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        prefix: str = "/v1",
        responder: Responder | None = None,
    ) -> None:
        self.api_key = api_key
        self.delay = delay
        self.prefix = prefix
        self.responder = responder
        self.requests: list[Recorded] = []
        self.stopping = threading.Event()
        self._faults: deque[Fault] = deque()
        self.barrier: threading.Barrier | None = None
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no path)."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI-style base URL, ``root_url`` plus the prefix (``/v1``)."""
        return self.root_url + self.prefix

    def push(self, *faults: Fault) -> None:
        """Queue faults for the next requests, one per request."""
        with self._lock:
            self._faults.extend(faults)

    def answer_together(self, n: int, timeout: float = 10.0) -> None:
        """From now on, answer requests only in groups of ``n`` arrived together.

        A request still waiting for its group after ``timeout`` seconds (and every one
        after it) is answered 504. ``reset()`` ends this.
        """
        self.barrier = threading.Barrier(n, timeout=timeout)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            if self.barrier is not None:
                self.barrier.abort()  # frees anything still held
            self.barrier = None

    def _record_and_pop(self, recorded: Recorded) -> Fault | None:
        with self._lock:
            self.requests.append(recorded)
            return self._faults.popleft() if self._faults else None

    def start(self) -> FakeLLMServer:
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="fake-llm-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until stdin closes: ``python fake_server.py [--delay S]`` prints the base URL."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="loopback chat server for benchmarks")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args(argv)
    with FakeLLMServer(delay=args.delay, api_key=args.api_key) as server:
        print(server.url, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
