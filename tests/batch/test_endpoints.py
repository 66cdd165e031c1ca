"""The multi-endpoint engine against three loopback servers, one of which dies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fakes import MODEL, server, write_jobs

from engines.fake_server import FakeLLMServer, Fault
from rlmagent.batch import BatchSettings, run_batch
from rlmagent.batch.settings import engines_for
from rlmagent.engines import get_engine
from rlmagent.engines.endpoints import MultiEndpointEngine
from rlmagent.errors import EngineError

HELLO = [{"role": "user", "content": "hello there"}]


def test_a_list_of_base_urls_is_one_engine_over_them(tmp_path: Path) -> None:
    with FakeLLMServer() as a, FakeLLMServer() as b, FakeLLMServer() as c:
        engine = get_engine("vllm:m", base_url=[a.url, b.url, c.url])
        assert isinstance(engine, MultiEndpointEngine) and engine.model == "m"
        assert engine.price("m") is not None  # self-hosted: 0.0, as with one server
        single = get_engine("vllm:m", base_url=[a.url])
        assert not isinstance(single, MultiEndpointEngine)

        async def many() -> list[str]:
            done = await asyncio.gather(*(engine.agenerate(HELLO, model="m") for _ in range(60)))
            return [d.content for d in done]

        a.delay = b.delay = c.delay = 0.05
        answers = asyncio.run(many())
        assert answers == ["echo: hello there"] * 60
        shares = [len(s.requests) for s in (a, b, c)]
        assert sum(shares) == 60 and min(shares) >= 15, shares  # least in flight spreads
        assert [s.requests for s in engine.stats()] == shares
        engine.close()
        single.close()


def test_a_failing_endpoint_is_out_for_its_backoff_then_back() -> None:
    now = [0.0]
    with FakeLLMServer() as a, FakeLLMServer() as b, FakeLLMServer() as c:
        parts = [get_engine("vllm:m", base_url=s.url, max_retries=0) for s in (a, b, c)]
        engine = MultiEndpointEngine(parts, backoff_s=5, clock=lambda: now[0])
        a.push(Fault.error(503))
        first = engine.generate(HELLO)  # a fails (503), the request goes on to b
        assert first.content == "echo: hello there"
        assert [len(s.requests) for s in (a, b, c)] == [1, 1, 0]
        for _ in range(4):
            engine.generate(HELLO)
        assert len(a.requests) == 1  # out for 5 s
        assert not engine.stats()[0].up and engine.stats()[0].failures == 1
        now[0] = 6.0
        for _ in range(3):
            engine.generate(HELLO)
        assert len(a.requests) >= 2 and engine.stats()[0].up  # back, and well again
        engine.close()


def test_a_fatal_answer_is_the_requests_fault_and_not_retried_elsewhere() -> None:
    with FakeLLMServer() as a, FakeLLMServer() as b:
        parts = [get_engine("vllm:m", base_url=s.url, max_retries=0) for s in (a, b)]
        engine = MultiEndpointEngine(parts)
        a.push(Fault.error(400))
        with pytest.raises(EngineError) as caught:
            engine.generate(HELLO)
        assert caught.value.status == 400
        assert len(a.requests) + len(b.requests) == 1
        assert all(s.up for s in engine.stats())
        engine.close()


def test_every_endpoint_down_is_one_clear_error() -> None:
    engine = get_engine(
        "vllm:m", base_url=["http://127.0.0.1:9/v1", "http://127.0.0.1:11/v1"], max_retries=0
    )
    with pytest.raises(EngineError, match="every endpoint failed"):
        engine.generate(HELLO)
    engine.close()


def test_a_batch_survives_one_of_three_servers_dying(tmp_path: Path) -> None:
    doomed = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("serve_fake.py")), "4", "0.02"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None
        doomed_url = doomed.stdout.readline().strip()
        roots = [0]
        lock = threading.Lock()

        def kill_after_some(question: str) -> None:
            with lock:
                roots[0] += 1
                if roots[0] == 8:
                    doomed.send_signal(signal.SIGKILL)

        with (
            server(subs=4, hook=kill_after_some, delay=0.02) as a,
            server(subs=4, hook=kill_after_some, delay=0.02) as b,
        ):
            settings = BatchSettings(
                model=MODEL,
                base_urls=(a.url, b.url, doomed_url),
                engine_options={"max_retries": 0},
            )
            report = run_batch(
                write_jobs(tmp_path / "jobs.jsonl", 30), settings=settings, concurrency=4
            )
            engine, _sub = engines_for(settings)
        assert doomed.wait(timeout=10) == -signal.SIGKILL
        assert [r["status"] for r in report.results] == ["ok"] * 30
        assert all(r["answer"].endswith(":4") for r in report.results)
        stats = {s.identity.rsplit("@", 1)[1]: s for s in engine.stats()}
        dead = stats[doomed_url]
        assert dead.requests >= 1 and dead.failures >= 1 and not dead.up
        assert report.summary.calls == 30 * 5  # each job: one root turn, four sub-calls
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait()
        if doomed.stdout is not None:
            doomed.stdout.close()
