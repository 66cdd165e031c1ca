"""A rule-based stand-in model for the sniah task, and a loopback OpenAI-style server.

The stand-in reads what each method sends and answers the way a competent model would,
by regular expressions on the text it is actually given: so a method that loses the
needle (a context overflow, a passage not retrieved, a chunk never read) gets no answer.
It tells the prompts apart by their system message:

- the RLM root (the REPL system prompt): writes code. With ``llm_batch`` available it
  splits ``context`` into chunks and asks a sub-model about each; without, it searches
  ``context`` with a regular expression. Either way the code ends with ``FINAL(...)``.
- a sub-call (one user message): the value for the key in that chunk, or NONE;
- the summary method: keeps notes (the value once seen);
- direct / bm25 / the summary's last call: the value in the prompt, or "unknown".
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rlmagent.bench.methods import DIRECT_SYSTEM, SUMMARY_SYSTEM

KEY = re.compile(r"special magic number for (\S+) mentioned")


def _value(text: str, key: str) -> str | None:
    found = re.search(rf"magic numbers for {re.escape(key)} is: (\d+)", text)
    return found.group(1) if found else None


def solve(messages: list[dict[str, str]], model: str) -> str:
    """The stand-in model (a FunctionEngine function)."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    user = "\n".join(m["content"] for m in messages if m["role"] == "user")
    key_match = KEY.search(user)
    if "persistent Python REPL" in system:
        key = key_match.group(1) if key_match else "?"
        if "llm_batch" in system:
            return (
                "```repl\n"
                "chunks = [context[i:i + 6000] for i in range(0, len(context), 6000)]\n"
                f"answers = llm_batch([f'Find the magic number for {key}.\\n' + c "
                "for c in chunks])\n"
                "hits = [a for a in answers if a.strip() != 'NONE']\n"
                "FINAL(hits[0] if hits else 'unknown')\n"
                "```"
            )
        return (
            "```repl\n"
            "import re\n"
            f"m = re.search(r'magic numbers for {re.escape(key)} is: (\\d+)', context)\n"
            "FINAL(m.group(1) if m else 'unknown')\n"
            "```"
        )
    if not system:  # a sub-call
        asked = re.match(r"Find the magic number for (\S+)\.", user)
        return (_value(user, asked.group(1)) if asked else None) or "NONE"
    key = key_match.group(1) if key_match else "?"
    if system == SUMMARY_SYSTEM:
        notes = re.search(r"Notes so far:\n(.*?)\n\nPart \d+", user, re.S)
        kept = notes.group(1) if notes and "none yet" not in notes.group(1) else ""
        found = _value(user.split("of the document:", 1)[-1], key)
        return f"value: {found}" if found else kept
    if system == DIRECT_SYSTEM:
        noted = re.search(r"value: (\d+)", user)
        value = _value(user, key) or (noted.group(1) if noted else None)
        return value or "unknown"
    raise AssertionError(f"unexpected prompt: {system[:80]!r}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        if self.path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        messages = body["messages"]
        text = solve(messages, body.get("model", ""))
        self.server.requests.append(body)  # type: ignore[attr-defined]
        prompt = sum(len(m["content"]) // 4 for m in messages)
        self._send(
            200,
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": len(text) // 4 + 1,
                    "total_tokens": prompt + len(text) // 4 + 1,
                },
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LoopbackServer:
    """An OpenAI chat-completions server on 127.0.0.1 answering with :func:`solve`."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.requests = []  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.httpd.requests  # type: ignore[attr-defined,no-any-return]

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
