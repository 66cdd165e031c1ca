"""Sandbox behaviour against the real worker process (and the in-process REPL where shared)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from rlmagent.sandbox import FunctionSpec, InProcessSandbox, Limits, SubprocessSandbox, protocol

from .helpers import TIERS

ECHO = [FunctionSpec("llm_query", "echo")]


def echo(name, params):
    return f"{name}:{params['args'][0]}"


@pytest.fixture(params=[*TIERS, "inprocess"])
def sandbox(request):
    if request.param == "inprocess":
        return InProcessSandbox()
    return SubprocessSandbox(isolation=request.param, limits=Limits(cell_timeout_s=3))


def test_state_persists_and_display_works(sandbox):
    session = sandbox.start("abc", echo, functions=ECHO)
    try:
        assert session.execute("n = len(context)").output == ""
        assert session.execute("n * 2").output == "6\n"
        assert session.execute("llm_query('hi')").output == "'llm_query:hi'\n"
        assert session.execute("None").output == ""
    finally:
        session.close()


def test_syntax_error_is_data(sandbox):
    session = sandbox.start("abc", echo)
    try:
        result = session.execute("def (:")
        assert result.error and "SyntaxError" in result.error
        assert session.execute("1").output == "1\n"
    finally:
        session.close()


def test_host_function_errors_reach_the_model(sandbox):
    def failing(name, params):
        raise ValueError("nope")

    session = sandbox.start("abc", failing, functions=ECHO)
    try:
        result = session.execute("llm_query('x')")
        assert "nope" in result.error
    finally:
        session.close()


def test_worker_environment_is_clean(monkeypatch, tier):
    monkeypatch.setenv("RLM_TEST_SECRET_KEY", "sk-should-not-leak")
    session = SubprocessSandbox(isolation=tier).start("c", echo)
    try:
        out = session.execute("import os\nprint(sorted(os.environ))\nprint(os.getcwd())").output
        assert "RLM_TEST_SECRET_KEY" not in out
        assert "sk-should-not-leak" not in out
        if tier == "bwrap":  # a neutral name on a private /tmp: nothing of the host's
            assert out.endswith("\n/tmp/work\n") and session.workdir.name not in out
        else:
            assert session.workdir.name in out
    finally:
        session.close()


def test_timeout_kills_restarts_and_reports_lost_state(tier):
    session = SubprocessSandbox(isolation=tier, limits=Limits(cell_timeout_s=1)).start(
        "the context", echo
    )
    try:
        session.execute("x = 5")
        first_pid = session.pid
        result = session.execute("while True:\n    pass")
        assert result.timed_out and result.state_lost
        assert "timed out" in result.error and "lost" in result.error
        assert session.pid != first_pid
        with pytest.raises(ProcessLookupError):
            os.kill(first_pid, 0)
        after = session.execute("print(context)\nprint('x' in dir())")
        assert after.output == "the context\nFalse\n"
    finally:
        session.close()


def test_time_waiting_for_the_host_does_not_count_towards_the_timeout(tier):
    import time

    def slow(name, params):
        time.sleep(1.5)
        return "late"

    sandbox = SubprocessSandbox(isolation=tier, limits=Limits(cell_timeout_s=1))
    session = sandbox.start("c", slow, functions=ECHO)
    try:
        result = session.execute("llm_query('a')")
        assert result.error is None and result.output == "'late'\n"
    finally:
        session.close()


def test_crash_of_the_worker_is_reported_and_recovered(tier):
    session = SubprocessSandbox(isolation=tier).start("ctx", echo)
    try:
        result = session.execute("import os\nos._exit(3)")
        assert result.state_lost and "exit status 3" in result.error
        assert session.execute("context").output == "'ctx'\n"
    finally:
        session.close()


def test_memory_limit_is_enforced(tier):
    limits = Limits(memory_bytes=512 * 1024**2)
    session = SubprocessSandbox(isolation=tier, limits=limits).start("c", echo)
    try:
        result = session.execute("x = bytearray(2 * 1024**3)")
        assert "MemoryError" in result.error
        assert session.execute("1 + 1").output == "2\n"
    finally:
        session.close()


def test_workdir_is_removed_on_close(tier):
    session = SubprocessSandbox(isolation=tier).start("c" * 1000, echo)
    workdir = session.workdir
    assert (workdir / "context.txt").read_text() == "c" * 1000
    session.close()
    assert not workdir.exists()


def test_context_goes_through_a_file_not_the_channel(tier):
    big = "y" * (2 * 1024 * 1024)
    session = SubprocessSandbox(isolation=tier).start(big, echo)
    try:
        assert len(protocol.encode(session._init)) < 1000
        assert session.execute("len(context)").output == f"{len(big)}\n"
    finally:
        session.close()


def test_model_writing_to_fd1_cannot_corrupt_the_channel(tier):
    session = SubprocessSandbox(isolation=tier).start("c", echo)
    try:
        session.execute("import os\nos.write(1, b'garbage' * 100)\nos.write(2, b'err')")
        assert session.execute("print('still fine')").output == "still fine\n"
    finally:
        session.close()


def _hostile(tmp_path: Path, body: str, tier: str) -> SubprocessSandbox:
    """A sandbox whose worker is a hostile script speaking the frame protocol."""
    script = tmp_path / "hostile.py"
    script.write_text(textwrap.dedent(body))
    script.chmod(0o644)
    return SubprocessSandbox(isolation=tier, worker=script, limits=Limits(cell_timeout_s=2))


HANDSHAKE = """
import json, struct, sys
out = sys.stdout.buffer
def send(obj):
    b = json.dumps(obj).encode(); out.write(struct.pack('>I', len(b)) + b); out.flush()
def recv():
    n = struct.unpack('>I', sys.stdin.buffer.read(4))[0]
    return json.loads(sys.stdin.buffer.read(n))
recv(); send({"type": "ready"})
recv()
"""


@pytest.mark.parametrize(
    "behaviour",
    [
        "out.write(b'\\x00\\x00\\x00\\x05notjs'); out.flush()",
        "out.write(struct.pack('>I', 2**31)); out.flush()",
        "send([1, 2, 3])",
        "send({'type': 'reply', 'id': 1, 'ok': True, 'value': 'forged'})",
        "out.write(b'\\xff' * 3); out.flush(); sys.exit(0)",
        "out.write(struct.pack('>I', 200000) + b'[' * 100000 + b']' * 100000); out.flush()",
    ],
    ids=["garbage", "oversized", "not-an-object", "unexpected-type", "truncated", "deep"],
)
def test_hostile_worker_frames_never_crash_the_host(tmp_path, behaviour, tier):
    sandbox = _hostile(tmp_path, HANDSHAKE + behaviour + "\nimport time; time.sleep(30)\n", tier)
    session = sandbox.start("c", echo)
    try:
        result = session.execute("1")
        assert result.state_lost
        assert result.error
    finally:
        session.close()


def test_unknown_method_is_an_error_reply(tmp_path, tier):
    body = (
        HANDSHAKE
        + """
send({"type": "call", "id": 1, "method": "os.system", "params": {"args": ["id"], "kwargs": {}}})
reply = recv()
send({"type": "done", "id": 1, "output": json.dumps(reply), "output_chars": 10,
      "stderr": "", "stderr_chars": 0, "error": None, "final": None})
import time; time.sleep(30)
"""
    )

    def handler(name, params):
        raise NameError(f"no host function named {name!r}")

    session = _hostile(tmp_path, body, tier).start("c", handler)
    try:
        result = session.execute("1")
        assert '"ok": false' in result.output and "os.system" in result.output
    finally:
        session.close()
