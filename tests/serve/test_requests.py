"""The request rules of `rlm serve`, without a server: context rule, checks, caps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlmagent.budget import Budget
from rlmagent.serve.backend import RunSlots, cap_budget
from rlmagent.serve.errors import ApiError
from rlmagent.serve.paths import AllowedDirs, PathRefused
from rlmagent.serve.requests import FALLBACK_QUESTION, parse_chat, split_question


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def test_a_short_single_message_is_the_question_with_no_context():
    chat = parse_chat({"model": "rlm", "messages": [_user("  What is 2+2?  ")]})
    assert chat.question == "What is 2+2?" and chat.context is None and not chat.derived_context


def test_earlier_messages_become_a_transcript_and_text_parts_are_joined():
    chat = parse_chat(
        {
            "model": "rlm",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "assistant", "content": None},  # e.g. a tool-call turn: no text
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                },
                _user("q?"),
            ],
        }
    )
    assert chat.question == "q?"
    assert chat.context == "[system]\nsys\n\n[user]\na\nb"
    assert chat.derived_context


def test_a_long_last_message_keeps_its_last_short_paragraph_as_the_question():
    long = "x" * 500
    assert split_question(f"{long}\n\nWhat is it?", 100) == ("What is it?", long)
    # the last paragraph is long too: the first one is the question
    assert split_question(f"Summarise this:\n\n{long}", 100) == ("Summarise this:", long)
    # no short paragraph at all: all of it is context, and the question says so
    assert split_question(long, 100) == (FALLBACK_QUESTION, long)
    chat = parse_chat({"model": "rlm", "messages": [_user(long)]}, question_chars=100)
    assert chat.question == FALLBACK_QUESTION and chat.context == f"[user, last]\n{long}"


def test_an_explicit_context_replaces_the_rule():
    long = "y" * 500 + "\n\nq?"
    chat = parse_chat(
        {
            "model": "rlm",
            "messages": [_user("earlier"), _user(long)],
            "rlm": {"context": ["a", "b"], "contexts": {"notes": "n"}},
        },
        question_chars=100,
    )
    assert chat.question == long.strip() and chat.context == ["a", "b"]
    assert chat.contexts == {"notes": "n"} and not chat.derived_context


def test_the_session_header_is_read_and_a_follow_up_does_not_split():
    long = "z" * 500 + "\n\nq?"
    chat = parse_chat(
        {"model": "rlm", "messages": [_user(long)]}, question_chars=100, session_header="abc_123"
    )
    assert chat.session == "abc_123" and chat.question == long and chat.context is None
    body = {"model": "rlm", "messages": [_user("q")], "rlm": {"session": "new"}}
    assert parse_chat(body, session_header="other").session == "new"  # the body wins


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([], "must be a JSON object"),
        ({"model": "rlm", "messages": [{"role": "robot", "content": "q"}]}, "role must be one of"),
        (
            {"model": "rlm", "messages": [_user("q"), {"role": "assistant", "content": "a"}]},
            "last message must be from the user",
        ),
        ({"model": "rlm", "messages": [_user("q")], "n": 2}, "'n' must be 1"),
        (
            {"model": "rlm", "messages": [_user("q")], "temperature": True},
            "'temperature' has the wrong type",
        ),
        (
            {"model": "rlm", "messages": [_user("q")], "rlm": {"contexts": {"1bad": "x"}}},
            "not a valid name",
        ),
        ({"model": "rlm", "messages": [_user("q")], "rlm": {"context": 5}}, "rlm.context must be"),
        (
            {"model": "rlm", "messages": [_user("q")], "rlm": {"budget": {"max_money": 1}}},
            "unknown budget field",
        ),
        ({"model": "rlm", "messages": [_user("q")], "rlm": {"max_depth": 0}}, "positive integer"),
        ({"model": "rlm", "messages": [_user("q")], "rlm": {"session": "../etc"}}, "rlm.session"),
        (
            {"model": "rlm", "messages": [_user("q")], "response_format": {"type": "xml"}},
            "response_format.type",
        ),
        (
            {
                "model": "rlm",
                "messages": [_user("q")],
                "rlm": {"output_type": {"items": [{"$ref": "file:///etc/passwd"}]}},
            },
            "only local $ref",
        ),
    ],
)
def test_bad_bodies_name_what_is_wrong(body, needle):
    with pytest.raises(ApiError) as bad:
        parse_chat(body)
    assert bad.value.status == 400 and needle in bad.value.message


def test_a_long_unknown_value_is_not_echoed_back():
    with pytest.raises(ApiError) as bad:
        parse_chat({"model": "rlm", "messages": [{"role": "x" * 10_000, "content": "q"}]})
    assert len(bad.value.message) < 200


def test_response_format_json_object_and_local_refs():
    body = {"model": "rlm", "messages": [_user("q")], "response_format": {"type": "json_object"}}
    assert parse_chat(body).output_type == {"type": "object"}
    schema = {"$defs": {"n": {"type": "integer"}}, "type": "array", "items": {"$ref": "#/$defs/n"}}
    body["response_format"] = {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": schema},
    }
    assert parse_chat(body).output_type == schema


def test_the_budget_never_exceeds_the_servers():
    server = Budget(max_calls=10, max_seconds=60)
    capped = cap_budget(server, {"max_calls": 1000, "max_tokens": 500, "max_seconds": 5})
    assert capped == Budget(max_calls=10, max_tokens=500, max_seconds=5)
    assert cap_budget(None, {}) is None
    assert cap_budget(server, {}) == server


def test_run_slots_refuse_with_retry_after():
    now = [0.0]
    slots = RunSlots(2, clock=lambda: now[0])
    a, b = slots.acquire(), slots.acquire()
    with pytest.raises(ApiError) as full:
        slots.acquire()
    assert full.value.status == 429 and full.value.headers["Retry-After"] == "1"
    now[0] = 7.2
    slots.release(a)
    slots.release(b)
    assert slots.active == 0 and slots.retry_after() == 8  # the median run took 7.2 s


def test_allowed_dirs_refuse_outside_symlinks_binaries_and_specials(tmp_path: Path):
    root = tmp_path / "ok"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("hello")
    (tmp_path / "secret.txt").write_text("no")
    (root / "out").symlink_to(tmp_path / "secret.txt")
    (root / "in").symlink_to(root / "sub" / "a.txt")  # a symlink that stays inside is fine
    (root / "dirlink").symlink_to(tmp_path)
    (root / "bin").write_bytes(b"ab\x00cd")
    os.mkfifo(root / "fifo")
    allowed = AllowedDirs.of([root])
    assert allowed.read_text("sub/a.txt") == "hello"
    assert allowed.read_text(str(root / "in")) == "hello"
    cases = {
        "../secret.txt": "outside the allowed directories",
        str(tmp_path / "secret.txt"): "outside the allowed directories",
        "out": "symlink leading outside",
        "dirlink/secret.txt": "symlink leading outside",
        "bin": "binary file",
        "sub": "is a directory",
        "fifo": "not a regular file",
        "missing.txt": "does not exist",
        "": "non-empty string",
    }
    for name, needle in cases.items():
        with pytest.raises(PathRefused, match=needle):
            allowed.read_text(name)
    small = AllowedDirs.of([root], max_file_bytes=3)
    with pytest.raises(PathRefused, match="over the limit"):
        small.read_text("sub/a.txt")


def test_server_flags_refuse_what_makes_no_sense_and_know_loopback():
    from rlmagent.cli import build_parser
    from rlmagent.cli.serve import check_server_args, is_loopback
    from rlmagent.errors import UsageError

    parser = build_parser()
    for argv, needle in (
        (["serve", "--trace", "t.jsonl"], "--trace is not an option of a server"),
        (["serve", "--json"], "--json is not an option"),
        (["mcp", "--sandbox", "inprocess"], "no isolation"),
    ):
        with pytest.raises(UsageError, match=needle):
            check_server_args(parser.parse_args(argv))
    check_server_args(parser.parse_args(["serve", "--max-calls", "5"]))  # fine
    assert all(map(is_loopback, ["127.0.0.1", "127.8.0.1", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.2", "example.com"]))


def test_backend_agents_share_the_template_and_an_allowed_model_gets_its_own_profile():
    from rlmagent import FunctionEngine, RLMAgent
    from rlmagent.events import EventBus
    from rlmagent.serve.backend import Backend

    class Local(FunctionEngine):
        provider = "local"  # the embedded model's provider: the small profile by default

    root, other = Local(lambda m, x: "r"), FunctionEngine(lambda m, x: "o")
    template = RLMAgent(root, "tiny", max_turns=3, max_depth=2, budget=Budget(max_calls=9))
    backend = Backend(template, models={"function:big": other})
    agent = backend.agent(bus=EventBus(), max_depth=1)
    assert agent.settings.root.engine is root and agent.settings.prompt_profile == "small"
    assert agent.settings.max_turns == 3 and agent.settings.max_depth == 1
    assert agent.settings.sandbox is template.settings.sandbox  # one sandbox factory
    big = backend.agent(bus=EventBus(), model_id="rlm:function:big")
    assert big.settings.root.engine is other and big.settings.prompt_profile == "capable"
    assert big.settings.sub.engine is root  # sub-calls stay on the server's sub-model
    with pytest.raises(ApiError) as unknown:
        backend.agent(bus=EventBus(), model_id="rlm:function:nope")
    assert unknown.value.status == 404
    with pytest.raises(ApiError, match="above this server's limit of 2"):
        backend.agent(bus=EventBus(), max_depth=3)
