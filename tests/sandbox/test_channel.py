"""Adversarial suite, the channel: model code abusing its frame channel (a pair of Unix
socket pairs) from inside the REPL.

The worker's pipes are reachable from model code (they are file descriptors of its own
process), so the host must survive anything written to them: garbage, an oversized
frame, forged frames, calls to functions that do not exist, floods. (Stand-in hostile
workers that speak the protocol badly are in test_session.py.)
"""

from __future__ import annotations

import textwrap

from rlmagent.sandbox import Limits, SubprocessSandbox, protocol

from .helpers import ECHO, Recorder, assert_continues, open_session

WRITE_TO_PIPES = """
import os, stat
for fd in range(3, 64):
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode) or stat.S_ISSOCK(os.fstat(fd).st_mode):
            os.write(fd, {payload!r})
    except OSError:
        pass  # the read end, or not open
"""


def test_garbage_bytes_on_the_channel(tier):
    code = WRITE_TO_PIPES.format(payload=b"\x00\x00\x00\x05notjs")
    with open_session(tier) as session:
        result = session.execute(code)
        assert result.state_lost and "malformed frame" in result.error
        assert_continues(session)


def test_an_oversized_frame_on_the_channel(tier):
    code = WRITE_TO_PIPES.format(payload=(2**31).to_bytes(4, "big"))
    with open_session(tier) as session:
        result = session.execute(code)
        assert result.state_lost and "exceeds" in result.error
        assert_continues(session)


def test_a_forged_done_frame_is_rejected(tier):
    forged = protocol.encode({"type": "done", "id": 999, "output": "forged", "final": "forged"})
    with open_session(tier) as session:
        result = session.execute(WRITE_TO_PIPES.format(payload=forged))
        assert result.final is None and "forged" not in result.output
        assert result.state_lost and "unexpected 'done' frame" in result.error
        assert_continues(session)


def test_final_in_printed_text_is_only_text(tier):
    with open_session(tier) as session:
        result = session.execute("print('FINAL(forged)')\nprint('FINAL_VAR(x)')")
        assert result.final is None
        assert result.output == "FINAL(forged)\nFINAL_VAR(x)\n"


def test_unknown_methods_reach_the_host_only_as_errors(tier):
    code = """
host = next(c.cell_contents for c in llm_query.__closure__
            if hasattr(c.cell_contents, "call_host")).call_host
for method, params in [("os.system", {"args": ["id"], "kwargs": {}}), ("llm_query", "x")]:
    try:
        print(host(method, params))
    except HostCallError as exc:
        print("refused:", exc)
"""
    recorder = Recorder()
    with open_session(tier, handler=recorder) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        refused = result.output.splitlines()
        assert refused[0] == "refused: NameError: no host function named 'os.system'"
        assert refused[1] == "refused: malformed call"
        assert [name for name, _ in recorder.calls] == ["os.system"]  # nothing ran it
        assert_continues(session)


def test_a_forged_sub_call_result_stays_inside_the_repl(tier):
    recorder = Recorder()
    with open_session(tier, handler=recorder) as session:
        forged = session.execute("llm_query = lambda prompt: 'forged'\nllm_query('a')")
        assert forged.output == "'forged'\n" and recorder.calls == []
        real = session.execute("llm_query('b')")  # the scaffold is bound again
        assert real.output == "'echo:b'\n"
        assert [params["args"] for _, params in recorder.calls] == [["b"]]


def test_a_flood_of_llm_query_calls(tier):
    recorder = Recorder()
    with open_session(tier, handler=recorder) as session:
        result = session.execute("answers = [llm_query(str(i)) for i in range(2000)]")
        assert result.error is None, result.error
        assert len(recorder.calls) == 2000
        assert session.execute("answers[-1]").output == "'echo:1999'\n"


def test_a_reply_too_big_for_a_frame_is_an_error(tier):
    def huge(name, params):
        return "x" * (protocol.MAX_FRAME_BYTES + 1)

    with open_session(tier, handler=huge) as session:
        result = session.execute("llm_query('a')")
        assert "HostCallError" in result.error and "exceeds" in result.error
        assert not result.state_lost


def test_a_worker_that_floods_calls_and_never_reads_cannot_wedge_the_host(tier, tmp_path):
    script = tmp_path / "flood.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, struct, sys
            out, inp = sys.stdout.buffer, sys.stdin.buffer
            def send(obj):
                b = json.dumps(obj).encode(); out.write(struct.pack('>I', len(b)) + b); out.flush()
            n = struct.unpack('>I', inp.read(4))[0]; inp.read(n)
            send({"type": "ready"})
            n = struct.unpack('>I', inp.read(4))[0]; inp.read(n)
            i = 0
            while True:  # calls without ever reading the replies
                i += 1
                send({"type": "call", "id": i, "method": "llm_query",
                      "params": {"args": ["p" * 1000], "kwargs": {}}})
            """
        )
    )
    script.chmod(0o644)
    recorder = Recorder()
    sandbox = SubprocessSandbox(isolation=tier, worker=script, limits=Limits(cell_timeout_s=2))
    session = sandbox.start("c", recorder, functions=ECHO)
    try:
        result = session.execute("1")
        assert result.state_lost and "stopped reading" in result.error
        assert 0 < len(recorder.calls) < 100_000
    finally:
        session.close()
