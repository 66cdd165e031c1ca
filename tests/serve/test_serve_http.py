"""`rlm serve` as a subprocess on loopback, through the official openai client."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time

import httpx2 as httpx
import openai
import pytest

from conftest import API_KEY, PLANS, Served, responder, start_serve
from core.proctree import alive, sandbox_processes


def _rlm(response: object) -> dict:
    return response.model_extra["rlm"]  # type: ignore[attr-defined]


def test_plain_completion_takes_the_earlier_messages_as_context(client):
    response = client.chat.completions.create(
        model="rlm",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "the log: disk ok"},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": "[[plan:len]] How long is the context?"},
        ],
    )
    transcript = "[system]\nBe brief.\n\n[user]\nthe log: disk ok\n\n[assistant]\nnoted"
    assert response.choices[0].message.content == f"{len(transcript)} characters"
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "rlm"
    rlm = _rlm(response)
    assert rlm["stop_reason"] == "final" and rlm["calls"] == 1 and rlm["session"] is None
    reply_words = len(PLANS["len"][0].split())  # the fake model counts words as tokens
    assert response.usage.completion_tokens == reply_words
    assert response.usage.total_tokens == response.usage.prompt_tokens + reply_words


def test_a_long_last_message_is_split_into_question_and_context(client):
    document = "\n".join(f"line {i} of the pasted report" for i in range(40))
    response = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": f"{document}\n\n[[plan:len]] How long?"}],
    )
    # the server was started with --question-chars 200: the paragraph before the
    # question becomes the context, under a label
    expected = len("[user, the last message]\n" + document)
    assert response.choices[0].message.content == f"{expected} characters"


def test_usage_counts_the_root_and_every_sub_call(client, model_server):
    model_server.reset()
    response = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:batch]] ask three"}],
        extra_body={"rlm": {"context": "some text"}},
    )
    assert response.choices[0].message.content == "sub: alpha | sub: beta | sub: gamma"
    seen = [r.body for r in model_server.requests]
    assert len(seen) == 4 and _rlm(response)["calls"] == 4
    prompt = sum(len(m["content"].split()) for body in seen for m in body["messages"])
    completion = sum(len(responder(body["messages"], "").split()) for body in seen)
    assert response.usage.prompt_tokens == prompt
    assert response.usage.completion_tokens == completion
    assert {body["model"] for body in seen} == {"fake-root", "fake-sub"}


def test_streaming_sends_progress_then_the_answer_then_usage(client):
    stream = client.chat.completions.create(
        model="rlm",
        stream=True,
        messages=[{"role": "user", "content": "[[plan:batch]] ask three"}],
        extra_body={"rlm": {"context": "x"}},
    )
    chunks = list(stream)
    kinds = []
    for chunk in chunks:
        if not chunk.choices:
            kinds.append("usage")
            continue
        delta = chunk.choices[0].delta
        if (delta.model_extra or {}).get("reasoning_content"):
            kinds.append("progress")
        elif delta.content:
            kinds.append("answer")
    assert kinds[-2:] == ["answer", "usage"]
    assert kinds.count("answer") == 1 and kinds.count("progress") >= 3
    progress = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for c in chunks
        if c.choices
    )
    assert "turn 1 started" in progress and "sub-calls done 3 / 3" in progress
    assert "cell 1.1 ran" in progress
    answer = next(
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    )
    assert answer == "sub: alpha | sub: beta | sub: gamma"
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    usage = chunks[-1].usage
    assert usage is not None and usage.total_tokens > 0
    assert chunks[-1].model_extra["rlm"]["calls"] == 4


def test_a_plain_client_reads_a_stream_as_text(client):
    """What a client that ignores reasoning_content sees: exactly the answer."""
    stream = client.chat.completions.create(
        model="rlm", stream=True, messages=[{"role": "user", "content": "[[plan:len]] q"}]
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "0 characters"


def test_a_session_keeps_the_repl_across_requests(client, served: Served):
    first = client.chat.completions.with_raw_response.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:remember]] keep the word"}],
        extra_body={"rlm": {"session": "new", "context": "the secret word is tangerine"}},
    )
    session_id = first.headers["x-rlm-session"]
    parsed = first.parse()
    assert parsed.choices[0].message.content == "kept"
    assert _rlm(parsed)["session"] == session_id and len(session_id) >= 20
    second = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:recall]] what was it?"}],
        extra_headers={"X-RLM-Session": session_id},
    )
    assert second.choices[0].message.content == "tangerine"
    closed = httpx.delete(
        f"{served.url}/rlm/sessions/{session_id}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert closed.status_code == 200 and closed.json()["deleted"] is True
    with pytest.raises(openai.NotFoundError) as gone:
        client.chat.completions.create(
            model="rlm",
            messages=[{"role": "user", "content": "[[plan:recall]] again?"}],
            extra_body={"rlm": {"session": session_id}},
        )
    assert gone.value.body["code"] == "session_not_found"


def test_the_session_cap_answers_429(client, served: Served):
    opened = []
    try:
        for _ in range(3):  # --max-sessions 3
            raw = client.chat.completions.with_raw_response.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:len]] open"}],
                extra_body={"rlm": {"session": "new", "context": "c"}},
            )
            opened.append(raw.headers["x-rlm-session"])
        with pytest.raises(openai.RateLimitError) as full:
            client.chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:len]] one more"}],
                extra_body={"rlm": {"session": "new", "context": "c"}},
            )
        assert full.value.body["code"] == "too_many_sessions"
        assert int(full.value.response.headers["retry-after"]) >= 1
    finally:
        for sid in opened:
            httpx.delete(
                f"{served.url}/rlm/sessions/{sid}", headers={"Authorization": f"Bearer {API_KEY}"}
            )


def test_models_health_and_an_allowed_model(client, served: Served, model_server):
    assert [m.id for m in client.models.list()] == ["rlm", "rlm:vllm:fake-other"]
    health = httpx.get(f"{served.root}/health")  # no key needed
    assert health.status_code == 200 and health.json()["status"] == "ok"
    model_server.reset()
    response = client.chat.completions.create(
        model="rlm:vllm:fake-other", messages=[{"role": "user", "content": "[[plan:len]] q"}]
    )
    assert response.model == "rlm:vllm:fake-other"
    assert [r.body["model"] for r in model_server.requests] == ["fake-other"]


def test_the_budget_is_capped_by_the_servers(client):
    asked_more = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:len]] q"}],
        extra_body={"rlm": {"budget": {"max_calls": 1000, "max_seconds": 30}}},
    )
    limits = _rlm(asked_more)["budget"]["limits"]
    assert limits["calls"] == 20 and limits["seconds"] == 30  # --max-calls 20 wins
    asked_less = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:len]] q"}],
        extra_body={"rlm": {"budget": {"max_calls": 5}}},
    )
    assert _rlm(asked_less)["budget"]["limits"]["calls"] == 5


def test_response_format_json_schema_gives_a_typed_answer(client):
    schema = {
        "type": "object",
        "properties": {"count": {"type": "integer"}, "names": {"type": "array"}},
        "required": ["count", "names"],
    }
    response = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:json]] count them"}],
        extra_body={"rlm": {"context": "a b c"}},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    assert json.loads(response.choices[0].message.content) == {"count": 3, "names": ["a", "b"]}
    assert _rlm(response)["value"] == {"count": 3, "names": ["a", "b"]}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"model": "rlm", "messages": []}, "'messages' must be a non-empty list"),
        ({"model": "rlm", "messages": [{"role": "user", "content": "  "}]}, "is empty"),
        ({"model": "rlm", "messages": "hi"}, "'messages' must be a non-empty list"),
        ({"model": 3, "messages": [{"role": "user", "content": "q"}]}, "'model'"),
        (
            {"model": "rlm", "messages": [{"role": "user", "content": "q"}], "stream": "yes"},
            "'stream' has the wrong type",
        ),
        (
            {"model": "rlm", "messages": [{"role": "user", "content": "q"}], "rlm": {"contxt": 1}},
            "unknown rlm option 'contxt'",
        ),
        (
            {
                "model": "rlm",
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
                ],
            },
            "only text parts",
        ),
        (
            {
                "model": "rlm",
                "messages": [{"role": "user", "content": "q"}],
                "rlm": {"budget": {"max_calls": -1}},
            },
            "rlm.budget.max_calls must be a positive integer",
        ),
        (
            {
                "model": "rlm",
                "messages": [{"role": "user", "content": "q"}],
                "rlm": {"max_depth": 3},
            },
            "above this server's limit of 1",
        ),
        (
            {
                "model": "rlm",
                "messages": [{"role": "user", "content": "q"}],
                "rlm": {"output_type": {"$ref": "https://example.com/s.json"}},
            },
            "only local $ref",
        ),
    ],
)
def test_bad_requests_are_400_with_a_message(client, body, needle):
    with pytest.raises(openai.BadRequestError) as bad:
        client.post("/chat/completions", body=body, cast_to=httpx.Response)
    assert needle in bad.value.body["message"]
    assert bad.value.body["type"] == "invalid_request_error"


def test_malformed_json_is_400(served: Served):
    response = httpx.post(
        f"{served.url}/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_a_wrong_key_is_401(served: Served):
    bad = served.client(api_key="wrong-key")
    with pytest.raises(openai.AuthenticationError) as denied:
        bad.chat.completions.create(model="rlm", messages=[{"role": "user", "content": "q"}])
    assert denied.value.body["code"] == "invalid_api_key"
    none = httpx.get(f"{served.url}/models")
    assert none.status_code == 401


def test_an_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="rlm:openai:gpt-5", messages=[{"role": "user", "content": "q"}]
        )
    assert missing.value.body["code"] == "model_not_found"
    assert "rlm:vllm:fake-other" in missing.value.body["message"]


def test_an_unknown_route_is_an_openai_style_404(served: Served):
    response = httpx.get(f"{served.url}/nothing", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "no route GET /v1/nothing"


def test_a_body_over_the_limit_is_413(client):
    big = "x" * 300_000  # the server allows 0.25 MB
    with pytest.raises(openai.APIStatusError) as too_big:
        client.chat.completions.create(
            model="rlm",
            messages=[{"role": "user", "content": "[[plan:len]] q"}],
            extra_body={"rlm": {"context": big}},
        )
    assert too_big.value.status_code == 413
    assert "262,144 bytes" in too_big.value.body["message"]


def test_twenty_clients_on_four_runs_each_get_an_answer_or_429(served: Served):
    outcomes: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def one() -> None:
        client = served.client(timeout=60.0)
        start.wait()
        try:
            r = client.chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "[[plan:slow]] wait"}]
            )
            outcome = "answer" if r.choices[0].message.content == "slept" else "wrong"
        except openai.RateLimitError as exc:
            ok = int(exc.response.headers["retry-after"]) >= 1
            outcome = "429" if ok else "429 without Retry-After"
        except Exception as exc:  # a hang ends as a timeout error here
            outcome = f"{type(exc).__name__}: {exc}"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(outcomes) == 20, "a request hung"
    assert set(outcomes) <= {"answer", "429"}, outcomes
    assert outcomes.count("answer") >= 4 and outcomes.count("429") >= 1
    assert httpx.get(f"{served.root}/health").json()["runs"] == 0


def _wait_for(predicate, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_client_that_disconnects_mid_stream_has_its_sandbox_killed(served: Served):
    before = set(sandbox_processes(served.proc.pid))
    stream = served.client().chat.completions.create(
        model="rlm", stream=True, messages=[{"role": "user", "content": "[[plan:hang]] wait"}]
    )
    for chunk in stream:
        text = (
            (chunk.choices[0].delta.model_extra or {}).get("reasoning_content")
            if chunk.choices
            else None
        )
        if text and "turn 1 started" in text:
            break
    assert _wait_for(lambda: set(sandbox_processes(served.proc.pid)) - before)
    mine = sorted(set(sandbox_processes(served.proc.pid)) - before)
    stream.close()  # the client goes away mid-run
    assert _wait_for(lambda: not alive(mine)), f"sandbox processes left: {alive(mine)}"
    assert _wait_for(lambda: httpx.get(f"{served.root}/health").json()["runs"] == 0)


def test_a_client_that_times_out_has_its_run_cancelled(served: Served):
    before = set(sandbox_processes(served.proc.pid))
    raised: list[BaseException] = []

    def impatient() -> None:
        try:
            served.client(timeout=4.0).chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "[[plan:hang]] wait"}]
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=impatient)
    thread.start()
    assert _wait_for(lambda: set(sandbox_processes(served.proc.pid)) - before)
    mine = sorted(set(sandbox_processes(served.proc.pid)) - before)
    thread.join(30)
    assert len(raised) == 1 and isinstance(raised[0], openai.APITimeoutError)
    assert _wait_for(lambda: not alive(mine)), f"sandbox processes left: {alive(mine)}"
    assert _wait_for(lambda: httpx.get(f"{served.root}/health").json()["runs"] == 0)


def test_a_chunked_body_over_the_limit_is_413(served: Served):
    def chunks():
        for _ in range(40):
            yield b"x" * 10_000  # 400 KB, no Content-Length

    response = httpx.post(
        f"{served.url}/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_an_upstream_failure_mid_stream_is_an_error_event(client, model_server):
    from engines.fake_server import Fault

    model_server.reset()
    model_server.push(Fault.error(400))
    stream = client.chat.completions.create(
        model="rlm", stream=True, messages=[{"role": "user", "content": "[[plan:len]] q"}]
    )
    with pytest.raises(openai.APIError, match="the model behind this server failed"):
        list(stream)
    model_server.reset()


def test_a_non_loopback_host_without_a_key_is_refused(model_server):
    done = subprocess.run(
        [sys.executable, "-m", "rlmagent", "serve", "--host", "0.0.0.0", "--model", "vllm:x",
         "--base-url", model_server.url, "--no-log"],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--host 0.0.0.0 is reachable from other machines" in done.stderr
    assert "RLM_SERVE_API_KEY" in done.stderr


def test_the_inprocess_sandbox_is_refused(model_server):
    with pytest.raises(AssertionError, match="always uses the subprocess sandbox"):
        start_serve(model_server, "--sandbox", "inprocess")


def test_the_key_can_come_from_the_environment(model_server):
    server = start_serve(model_server, env={"RLM_SERVE_API_KEY": "from-env"})
    try:
        ok = server.client(api_key="from-env").chat.completions.create(
            model="rlm", messages=[{"role": "user", "content": "[[plan:len]] q"}]
        )
        assert ok.choices[0].message.content == "0 characters"
        with pytest.raises(openai.AuthenticationError):
            server.client(api_key=API_KEY).models.list()
    finally:
        server.stop()


def test_named_contexts_reach_the_repl(client):
    response = client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:names]] which contexts?"}],
        extra_body={"rlm": {"context": "main", "contexts": {"notes": "n", "log": ["a", "b"]}}},
    )
    assert response.choices[0].message.content == "context,log,notes"


def test_a_busy_session_answers_409(served: Served, client):
    raw = client.chat.completions.with_raw_response.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:len]] open"}],
        extra_body={"rlm": {"session": "new", "context": "c"}},
    )
    sid = raw.headers["x-rlm-session"]
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            served.client().chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:slow]] wait"}],
                extra_body={"rlm": {"session": sid}},
            )
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=slow)
    first.start()
    try:
        assert _wait_for(lambda: httpx.get(f"{served.root}/health").json()["runs"] >= 1)
        with pytest.raises(openai.ConflictError) as busy:
            client.chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:len]] now"}],
                extra_body={"rlm": {"session": sid}},
            )
        assert busy.value.body["code"] == "session_busy"
    finally:
        first.join(60)
        httpx.delete(
            f"{served.url}/rlm/sessions/{sid}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
    assert errors == []


def test_an_upstream_failure_is_502(client, model_server):
    from engines.fake_server import Fault

    model_server.reset()
    model_server.push(Fault.error(400))  # not retried by the engine
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="rlm", messages=[{"role": "user", "content": "[[plan:len]] q"}]
        )
    model_server.reset()
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "upstream_error"


def test_an_idle_session_expires_and_its_sandbox_is_killed(model_server):
    server = start_serve(model_server, "--session-ttl", "1")
    try:
        client = server.client(api_key="unused")  # no key on this server
        raw = client.chat.completions.with_raw_response.create(
            model="rlm",
            messages=[{"role": "user", "content": "[[plan:remember]] keep"}],
            extra_body={"rlm": {"session": "new", "context": "word kiwi"}},
        )
        sid = raw.headers["x-rlm-session"]
        workers = sandbox_processes(server.proc.pid)
        assert workers, "a live session keeps its sandbox"
        assert _wait_for(lambda: not alive(workers), 15), "the idle session's sandbox is alive"
        assert httpx.get(f"{server.root}/health").json()["sessions"] == 0
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:recall]] q"}],
                extra_body={"rlm": {"session": sid}},
            )
    finally:
        server.stop()


def test_a_body_nested_too_deeply_is_400(served: Served):
    deep = b'{"model": "rlm", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = httpx.post(
        f"{served.url}/chat/completions",
        content=deep,
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.json()["error"]["message"]


def test_closing_a_session_while_it_answers_ends_that_request_with_409(served: Served, client):
    raw = client.chat.completions.with_raw_response.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:len]] open"}],
        extra_body={"rlm": {"session": "new", "context": "c"}},
    )
    sid = raw.headers["x-rlm-session"]
    raised: list[BaseException] = []

    def ask() -> None:
        try:
            served.client().chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:hang]] wait"}],
                extra_body={"rlm": {"session": sid}},
            )
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    assert _wait_for(lambda: httpx.get(f"{served.root}/health").json()["runs"] >= 1)
    time.sleep(0.3)  # the question is in its cell
    closed = httpx.delete(
        f"{served.url}/rlm/sessions/{sid}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert closed.status_code == 200
    thread.join(30)
    assert len(raised) == 1 and isinstance(raised[0], openai.ConflictError), raised
    assert raised[0].body["code"] == "session_closed"
    assert _wait_for(lambda: httpx.get(f"{served.root}/health").json()["runs"] == 0)


def test_stopping_the_server_kills_every_sandbox(model_server):
    server = start_serve(model_server)
    client = server.client()
    client.chat.completions.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:remember]] keep"}],
        extra_body={"rlm": {"session": "new", "context": "word fig"}},
    )
    session_workers = set(sandbox_processes(server.proc.pid))
    assert session_workers, "the session keeps its sandbox"
    thread = threading.Thread(
        target=_ignore,
        args=(
            lambda: client.chat.completions.create(
                model="rlm", messages=[{"role": "user", "content": "[[plan:hang]] wait"}]
            ),
        ),
    )
    thread.start()
    assert _wait_for(lambda: set(sandbox_processes(server.proc.pid)) - session_workers)  # the run
    workers = sandbox_processes(server.proc.pid)
    server.proc.terminate()
    assert server.proc.wait(30) is not None
    thread.join(30)
    server.stop()
    assert _wait_for(lambda: not alive(workers), 15), f"left: {alive(workers)}"


def _ignore(fn) -> None:
    with contextlib.suppress(openai.APIError):  # the server went away mid-request
        fn()


def test_a_context_name_taken_in_a_session_is_400(served: Served, client):
    raw = client.chat.completions.with_raw_response.create(
        model="rlm",
        messages=[{"role": "user", "content": "[[plan:len]] open"}],
        extra_body={"rlm": {"session": "new", "contexts": {"notes": "a"}}},
    )
    sid = raw.headers["x-rlm-session"]
    try:
        added = client.chat.completions.create(
            model="rlm",
            messages=[{"role": "user", "content": "[[plan:names]] which?"}],
            extra_body={"rlm": {"session": sid, "contexts": {"log": "b"}}},
        )
        assert added.choices[0].message.content == "log,notes"
        with pytest.raises(openai.BadRequestError, match="already has a context named 'notes'"):
            client.chat.completions.create(
                model="rlm",
                messages=[{"role": "user", "content": "[[plan:names]] again"}],
                extra_body={"rlm": {"session": sid, "contexts": {"notes": "c"}}},
            )
    finally:
        httpx.delete(
            f"{served.url}/rlm/sessions/{sid}", headers={"Authorization": f"Bearer {API_KEY}"}
        )
