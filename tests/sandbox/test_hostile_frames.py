"""Issue 15, the channel: what model code sends out cannot end the run, grow the host or
make the host echo it.

Worker-to-host frames are bounded in bytes (16 MiB), in array elements and object
members (500,000) and in nesting (100) before they are parsed; every reply the host
builds encodes (an error reply when the value cannot be sent); host messages cut the
worker's text. Each case runs on every tier, through ``RLMAgent.run`` where the outcome
is the run's, and asserts the host's outcome.
"""

from __future__ import annotations

import json

import pytest

from rlmagent.sandbox import protocol
from rlmagent.sandbox.worker import FIT_FINAL_CHARS

from .helpers import Recorder, assert_continues, open_session
from .hostile import FIND_HOST, MB, PIPES, can_measure, cell, memory_growth, run_cells

RAW_CALL = (
    PIPES
    + """
body = (b'{{"type":"call","id":1,"method":"llm_query","params":{{"args":[['
        + b'{{}},' * ({n} - 1) + b'{{}}]],"kwargs":{{}}}}}}')
send_raw(len(body).to_bytes(4, "big") + body)
del body
"""
)


def test_a_huge_host_function_name_is_an_error_the_model_sees(tier):
    # 5,000,000 x U+2028 fits a frame (15 MB); its repr is six times longer: echoed in
    # full, the host's reply outgrew every frame and FrameError ended run()
    code = FIND_HOST + (
        "try:\n    host('\\u2028' * 5_000_000, {'args': [], 'kwargs': {}})\n"
        "except HostCallError as exc:\n    print(exc)\n"
    )
    result = run_cells(tier, code)
    seen = cell(result)
    assert seen.error is None, seen.error
    assert "NameError: no host function named '\\u2028" in seen.output
    assert "(5,000,000 characters)" in seen.output and len(seen.output) < 500
    assert result.stop_reason == "final"


def test_a_call_over_the_frame_limit_fails_in_the_cell_and_the_state_is_kept(tier):
    with open_session(tier) as session:
        session.execute("x = 41")
        result = session.execute(
            FIND_HOST + "host('\\u2028' * 10_000_000, {'args': [], 'kwargs': {}})"
        )
        assert not result.state_lost
        assert "HostCallError" in result.error and "the call is too large" in result.error
        assert "exceeds the limit of 16,777,216" in result.error
        big = session.execute("llm_query('x' * 17_000_000)")
        assert "HostCallError: llm_query: the call is too large" in big.error
        assert_continues(session, state="x")


def test_a_frame_of_millions_of_empty_objects_is_refused_before_it_is_parsed(tier):
    # 5,500,000 empty objects in 16.5 MB... of a 16 MiB limit: the same shape as the
    # issue's 12,000,000 (36 MB, which a limit of 64 MiB let through) within the new one
    code = RAW_CALL.format(n=5_000_000)
    with open_session(tier) as session:
        result, peak, _ = memory_growth(lambda: session.execute(code))
        assert result.state_lost
        assert "more than 500,000 array elements and object members" in result.error
        if peak is not None:  # parsed, it was ~400 MB of dicts
            assert peak < 150 * MB, f"the host grew by {peak / MB:.0f} MB"
        assert_continues(session)


def test_the_issues_36_mb_frame_is_refused_by_its_length(tier):
    result = run_cells(tier, RAW_CALL.format(n=12_000_000))
    seen = cell(result)
    assert seen.state_lost and "announced frame of 36,000,077 bytes exceeds" in seen.error
    assert result.stop_reason == "final"


def test_a_deeply_nested_frame_is_refused_before_it_is_parsed(tier):
    code = (
        PIPES
        + "body = b'{\"type\":\"x\",\"v\":' + b'[' * 101 + b']' * 101 + b'}'\n"
        + "send_raw(len(body).to_bytes(4, 'big') + body)\n"
    )
    with open_session(tier) as session:
        result = session.execute(code)
        assert result.state_lost and "nests deeper than 100 levels" in result.error
        assert_continues(session)


def test_a_reply_that_cannot_be_built_is_an_error_reply(tier):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    answers = iter([object(), ValueError("e" * 10_000_000), Unprintable()])

    def handler(name, params):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    with open_session(tier, handler=handler) as session:
        for expected in ("the result cannot be sent: TypeError", "ValueError: eee", "Unprintable"):
            result = session.execute("llm_query('a')")
            assert not result.state_lost, result.error
            assert "HostCallError" in result.error and expected in result.error
            assert len(result.error) < protocol.MAX_REPLY_ERROR_CHARS + 1_000
        assert_continues(session)


def test_a_call_id_that_is_not_an_int_is_never_echoed(tier):
    code = (
        PIPES
        + """
import json
body = json.dumps({"type": "call", "id": "i" * 100_000, "method": "llm_query",
                   "params": {"args": ["a"], "kwargs": {}}}).encode()
send_raw(len(body).to_bytes(4, "big") + body)
print(read_raw().decode())
"""
    )
    recorder = Recorder()
    with open_session(tier, handler=recorder) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        reply = json.loads(result.output)
        assert reply == {"type": "reply", "id": 0, "ok": False, "error": "malformed call"}
        assert recorder.calls == []  # nothing ran it


def test_a_result_over_the_frame_limit_is_cut_to_fit_not_a_dead_worker(tier):
    # 4 Mi control characters are 24 MB of JSON escapes: the worker cuts the answer to fit
    with open_session(tier) as session:
        session.execute("x = 1")
        result = session.execute("FINAL('\\x01' * 4_000_000)")
        assert not result.state_lost
        assert result.final == "\x01" * FIT_FINAL_CHARS
        assert "cut to fit a frame to the host" in result.error
        assert_continues(session, state="x")


def test_the_memory_figure_is_measured_here():
    # the peak assertion above must not be skipped silently where it should run
    assert can_measure()


# -- the shape check itself -----------------------------------------------------------


def _count(value):
    """What check_shape counts: each array or object, max(its length, 1)."""
    if isinstance(value, list):
        return max(len(value), 1) + sum(_count(v) for v in value)
    if isinstance(value, dict):
        return max(len(value), 1) + sum(_count(v) for v in value.values())
    return 0


SHAPES = [
    {"type": "x", "s": "a,b,[c]{d}" * 1000, "v": [1, [2, 3], {"k": "]]],"}]},
    {"type": "x", "s": 'quote \\" and \\\\', "v": [[], {}, [[{}]], ",", "\\\\", '"']},
    {"type": "x", "v": [{"a,": ["[", "{"]} for _ in range(300)]},
]


@pytest.mark.parametrize("value", SHAPES, ids=["commas-in-strings", "escapes", "many"])
def test_the_count_is_exact_outside_strings(value):
    body = protocol.dumps(value).encode()
    n = _count(value)
    assert body.count(b",") + body.count(b"[") + body.count(b"{") > n  # the slow path runs
    protocol.check_shape(body, n, 100)
    with pytest.raises(protocol.FrameError, match=f"more than {n - 1:,}"):
        protocol.check_shape(body, n - 1, 100)


def test_commas_inside_a_long_string_are_not_items():
    body = b'{"type":"x","s":"' + b"," * 2_000_000 + b'"}'
    protocol.check_shape(body, 10, 10)
    assert protocol.decode(body, max_items=10)["s"] == "," * 2_000_000


PAD = b'{"type":"x","pad":"' + b"," * 600_000 + b'",'  # commas in a string: tokenized


@pytest.mark.parametrize(
    "body, problem",
    [
        (PAD + b'"s":"' + b'\\"' * 1_000_000, "unterminated string"),
        (b'{"type":"x","s":[' + b'"",' * 600_000 + b'""]}', "more than 500,000"),
        (PAD + b'"s":' + b'""' * 1_100_000 + b"}", "more than 1,000,002 strings"),
        (b'{"type":"x","v":' + b"[" * 200 + b"]" * 200 + b"}", "deeper than 100"),
    ],
    ids=["unterminated", "many-strings-in-a-list", "strings-without-commas", "deep"],
)
def test_shapes_over_the_limits_are_frame_errors(body, problem):
    with pytest.raises(protocol.FrameError, match=problem):
        protocol.decode(body, max_items=500_000, max_depth=100)


def test_invalid_json_that_passes_the_count_is_refused_by_the_parser():
    for body in (b'{"type":"x","s":' + b'""' * 1_100_000 + b"}", b'{"type":"x","s":"\\"'):
        with pytest.raises(protocol.FrameError, match="not valid UTF-8 JSON"):
            protocol.decode(body, max_items=500_000, max_depth=100)


def test_nesting_at_the_limit_is_accepted():
    body = b'{"type":"x","v":' + b"[" * 99 + b"]" * 99 + b"}"
    assert protocol.decode(body, max_items=500_000, max_depth=100)["type"] == "x"


def test_names_are_shown_cut():
    assert protocol.shown("llm_query") == "'llm_query'"
    long = protocol.shown("\u2028" * 1_000_000)
    assert long.endswith("... (1,000,000 characters)") and len(long) < 600


def test_unknown_keywords_are_named_cut():
    from rlmagent.functions import arguments

    kwargs = {"k" * 1_000_000: 1, **{f"x{i}": i for i in range(10)}}
    with pytest.raises(TypeError) as info:
        arguments("llm_query", ("prompt",), [], kwargs)
    message = str(info.value)
    assert message.startswith("llm_query() takes 'prompt'; unknown: 'kkkk")
    assert "(1,000,000 characters)" in message and message.endswith("and 6 more")
    assert len(message) < 300
