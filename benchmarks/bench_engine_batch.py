"""Concurrency of the real OpenAI-compatible engine over loopback (issue 3).

    python benchmarks/bench_engine_batch.py [--repeats 5] [--delay 0.1]

A loopback server speaking the OpenAI chat-completions API answers every request after
``delay`` seconds (100 ms). Measured, median of ``repeats`` runs after one warm-up:

1. engine: 64 concurrent ``agenerate`` calls through ``get_engine("openai:...")``,
   at most 16 in flight (an asyncio.Semaphore). Each run is its own ``asyncio.run``
   (a fresh event loop, as a user's script would have). Ideal: 4 x delay.
   engine-ungated: the same with the engine's send gate held open (each request then
   waits for all the others started with it to be built before it is written).
2. sdk-httpx / sdk-aiohttp (baselines): the same batch straight through one
   ``openai.AsyncOpenAI`` client on one long-lived event loop, no rlmagent code: what the
   SDK itself costs, on its default httpx transport and on its aiohttp one (which the
   engine uses when aiohttp is installed).
3. agent: a whole RLM run whose one cell does ``llm_batch`` of 64 prompts, with a
   ScriptedEngine as root and the OpenAI engine as ``sub_engine``
   (``max_concurrency=16``). Ideal: 4 x delay, plus the run's fixed cost (sandbox,
   root turns); also reported: the batch's own span in the trajectory, from the first
   sub-call's start to the last one's end.

The server runs in its own process (as a real one would), so its request handling does
not share the benchmark's GIL. Also reported: how many TCP connections the server saw
(the engine reuses them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from rlmagent.engines import get_engine, sdk

SERVER = Path(__file__).resolve().parent.parent / "tests" / "engines" / "fake_server.py"

N_CALLS = 64
CONCURRENCY = 16


def bench_engine(engine, delay: float, repeats: int) -> dict:
    async def batch() -> float:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> str:
            async with gate:
                reply = await engine.agenerate([{"role": "user", "content": f"item {i}"}])
                return reply.content

        answers = await asyncio.gather(*(one(i) for i in range(N_CALLS)))
        assert answers == [f"echo: item {i}" for i in range(N_CALLS)]

    return measure(lambda: asyncio.run(batch()), delay, repeats)


@contextlib.contextmanager
def send_gate_open():
    """Patch the engines' send gate to let every request through at once."""

    @contextlib.asynccontextmanager
    async def open_gate(self):
        yield

    building = sdk.SendGate.building
    sdk.SendGate.building = open_gate
    try:
        yield
    finally:
        sdk.SendGate.building = building


def measure(run, delay: float, repeats: int) -> dict:
    """Median wall time of ``run()`` after a warm-up, and this process's CPU per call."""
    run()  # warm-up: client creation, first connections
    walls, cpus = [], []
    for _ in range(repeats):
        cpu0, t0 = time.process_time(), time.perf_counter()
        run()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
    ideal = (N_CALLS / CONCURRENCY) * delay
    median = statistics.median(walls)
    return {
        "median_s": median,
        "ideal_s": ideal,
        "ratio": median / ideal,
        "client_cpu_ms_per_call": statistics.median(cpus) / N_CALLS * 1000,
        "runs": walls,
    }


def bench_sdk(base_url: str, delay: float, repeats: int, transport: str) -> dict:
    import openai

    loop = asyncio.new_event_loop()
    http_client = openai.DefaultAioHttpClient() if transport == "aiohttp" else None
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key="bench", max_retries=0, http_client=http_client
    )

    async def batch() -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(i: int) -> str:
            async with gate:
                body = {"model": "gpt-5-mini", "messages": [{"role": "user", "content": f"{i}"}]}
                return await client.post("/chat/completions", body=body, cast_to=str)

        texts = await asyncio.gather(*(one(i) for i in range(N_CALLS)))
        assert all("echo" in t for t in texts)

    try:
        return measure(lambda: loop.run_until_complete(batch()), delay, repeats)
    finally:
        loop.run_until_complete(client.close())
        loop.close()


def bench_agent(engine, delay: float, repeats: int) -> dict | None:
    try:
        from rlmagent import RLMAgent, ScriptedEngine
    except ImportError:
        return None
    code = (
        f"r = llm_batch([f'item {{i}}' for i in range({N_CALLS})])\n"
        "print(sum(a.startswith('echo') for a in r))"
    )
    final = "```repl\nFINAL('done')\n```"
    spans: list[float] = []

    def once() -> None:
        root = ScriptedEngine([f"```repl\n{code}\n```", final])
        agent = RLMAgent(
            root, "root", sub_engine=engine, sub_model=engine.model, max_concurrency=CONCURRENCY
        )
        cell = agent.run("q", context="c").trajectory[0].cells[0]
        assert cell.result.output.strip() == str(N_CALLS), cell.result.output
        calls = cell.sub_calls
        spans.append(
            max(c.started_at + c.latency_s for c in calls) - min(c.started_at for c in calls)
        )

    figures = measure(once, delay, repeats)
    batch = statistics.median(spans[1:])  # not the warm-up
    figures.update(batch_span_s=batch, batch_ratio=batch / figures["ideal_s"])
    return figures


def connections(base_url: str) -> int:
    root = base_url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(root + "/stats", timeout=5) as response:
        return int(json.load(response)["connections"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.1)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--delay", str(args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        figures: dict[str, dict] = {}
        with get_engine("openai:gpt-5-mini", base_url=url, api_key="bench") as engine:
            figures["engine"] = bench_engine(engine, args.delay, args.repeats)
            figures["engine"]["connections"] = connections(url)
        seen = figures["engine"]["connections"]
        with send_gate_open(), get_engine("openai:gpt-5-mini", base_url=url, api_key="b") as engine:
            figures["engine-ungated"] = bench_engine(engine, args.delay, args.repeats)
            figures["engine-ungated"]["connections"] = connections(url) - seen
            seen += figures["engine-ungated"]["connections"]
        for transport in ("httpx", "aiohttp"):
            name = f"sdk-{transport}"
            figures[name] = bench_sdk(url, args.delay, args.repeats, transport)
            figures[name]["connections"] = connections(url) - seen
            seen += figures[name]["connections"]
        with get_engine("openai:gpt-5-mini", base_url=url, api_key="bench") as engine:
            agent = bench_agent(engine, args.delay, args.repeats)
            if agent is not None:
                agent["connections"] = connections(url) - seen
                figures["agent"] = agent
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait(timeout=10)
    figures["load_average_1m"] = os.getloadavg()[0]  # type: ignore[assignment]
    print(json.dumps(figures, indent=2))
    for name, fig in figures.items():
        if not isinstance(fig, dict):
            continue
        print(
            f"{name}: median {fig['median_s'] * 1000:.0f} ms over {args.repeats} runs, "
            f"ideal {fig['ideal_s'] * 1000:.0f} ms, ratio {fig['ratio']:.2f}x, "
            f"client CPU {fig['client_cpu_ms_per_call']:.1f} ms/call, "
            f"{fig['connections']} TCP connections"
        )
    if "agent" in figures:
        agent = figures["agent"]
        print(
            f"agent's batch span: median {agent['batch_span_s'] * 1000:.0f} ms, "
            f"ratio {agent['batch_ratio']:.2f}x (the rest of the run is its fixed cost)"
        )
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
