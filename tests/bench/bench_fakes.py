"""A rule-based stand-in model for the sniah task (served over HTTP by
``FakeLLMServer(responder=solve)`` of tests/engines/fake_server.py).

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

import re

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
