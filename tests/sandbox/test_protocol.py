"""The frame codec: the same JSON as the json module, and strict about what it accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlmagent.sandbox import protocol

MESSAGES = [
    {"type": "done", "id": 1, "output": 'héllo ☃ \ud800 \t\n"\\ \x01', "final": None},
    {"type": "call", "params": {"args": [[[]], {}], "kwargs": {"k": [None, False, True]}}},
    {"type": "x", "n": [0, -1, 2.5, -0.0, 1e300, 10**30], "f": float("inf"), "g": -float("inf")},
]


@pytest.mark.parametrize("message", MESSAGES)
def test_encoding_is_the_json_modules(message):
    expected = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    assert protocol.dumps(message) == expected
    back = protocol.decode(protocol.encode(message)[protocol.HEADER.size :])
    assert json.dumps(back) == json.dumps(json.loads(expected))


def test_values_json_cannot_hold_are_errors():
    with pytest.raises(TypeError, match="not JSON serializable"):
        protocol.dumps({"type": "x", "value": object()})
    loop: dict = {"type": "x"}
    loop["self"] = loop
    with pytest.raises(ValueError, match="Circular"):
        protocol.dumps(loop)


@pytest.mark.parametrize(
    "body",
    [b"", b"notjs", b' {"type":"x"}', b'{"type":"x"} ', b'{"type":"x"}{}', b"[1]",
     b'{"type":1}', b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["empty", "garbage", "leading-space", "trailing-space", "two-values", "not-an-object",
         "type-not-str", "not-utf8", "deep-nesting"],
)  # fmt: skip
def test_decoding_rejects_anything_but_one_typed_object(body):
    with pytest.raises(protocol.FrameError):
        protocol.decode(body)


def test_the_worker_starts_without_the_costly_modules():
    # json (re, enum), typing and threading were most of the worker's start-up time.
    here = os.path.dirname(protocol.__file__)
    code = (
        f"import sys; sys.path.insert(0, {here!r}); import worker; "
        "print(sorted(m for m in ('re', 'json', 'enum', 'typing', 'threading') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "[]\n"
