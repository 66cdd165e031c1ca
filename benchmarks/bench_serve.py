"""rlm serve: its overhead over an in-process run, requests/s, memory per idle session.

    python benchmarks/bench_serve.py [--repeats 30] [--clients 16] [--per-client 8]
                                     [--sessions 10]

Everything on loopback. The model is the fake OpenAI-compatible server of the tests
(tests/engines/fake_server.py) in its own process, answering every root call at once
with a one-cell reply that runs code and ends with FINAL: a 1-turn run, one engine call.
Rows:

* **in-process**: ``RLMAgent.run`` (engine ``vllm:`` on the fake server, the default
  subprocess sandbox), one run after another, median wall ms;
* **served**: the same run through ``rlm serve`` (a subprocess) with the official
  ``openai`` client, one request after another, median wall ms; the difference is the
  server's overhead (HTTP, JSON, a fresh agent per request);
* **requests/s**: ``--clients`` threads, each with its own client, ``--per-client``
  requests each, server at ``--max-concurrent-runs`` = clients; and the same number of
  concurrent ``arun`` in one process for reference;
* **idle session**: RSS of the server process and of its sandbox processes before and
  after opening ``--sessions`` sessions (each with a 1,000-character context).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPLY = "```repl\nn = len(context or '')\nprint(n)\nFINAL('done')\n```"


def model_server() -> None:
    """``--model-server``: serve the fake model until stdin closes; print its URL."""
    sys.path.insert(0, str(ROOT / "tests" / "engines"))
    from fake_server import FakeLLMServer

    def responder(messages: list[dict[str, str]], model: str) -> str:
        return REPLY

    with FakeLLMServer(responder=responder) as server:
        print(server.url, flush=True)
        sys.stdin.read()


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def start_serve(url: str, concurrent: int, sessions: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rlmagent", "serve", "--port", "0", "--model", "vllm:bench",
         "--base-url", url, "--no-log", "--max-concurrent-runs", str(concurrent),
         "--max-sessions", str(sessions + 1)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line = proc.stderr.readline()  # first the sandbox tier, then the address
    if "listening on" not in line:
        line = proc.stderr.readline()
    found = re.search(r"http://\S+", line)
    if not found:
        raise SystemExit(f"rlm serve did not start: {line}")
    return proc, found.group(0)


def in_process(url: str, repeats: int) -> list[float]:
    from rlmagent import RLMAgent
    from rlmagent.engines import get_engine

    engine = get_engine("vllm:bench", base_url=url)
    agent = RLMAgent(engine, engine.model)
    agent.run("q", context="x" * 100)  # warm-up: sandbox probe, first connection
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = agent.run("q", context="x" * 100)
        times.append(time.perf_counter() - t0)
        assert result.content == "done", result.content
    return times


def in_process_concurrent(url: str, clients: int, per_client: int) -> float:
    from rlmagent import RLMAgent
    from rlmagent.engines import get_engine

    engine = get_engine("vllm:bench", base_url=url)
    agent = RLMAgent(engine, engine.model)

    async def worker() -> None:
        for _ in range(per_client):
            assert (await agent.arun("q", context="x" * 100)).content == "done"

    async def everything() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - t0

    return clients * per_client / asyncio.run(everything())


def served(base: str, repeats: int) -> list[float]:
    import openai

    client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
    messages = [{"role": "user", "content": "q"}]
    body = {"rlm": {"context": "x" * 100}}
    client.chat.completions.create(model="rlm", messages=messages, extra_body=body)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.chat.completions.create(model="rlm", messages=messages, extra_body=body)
        times.append(time.perf_counter() - t0)
        assert r.choices[0].message.content == "done"
    return times


def served_concurrent(base: str, clients: int, per_client: int) -> tuple[float, int]:
    import openai

    failures: list[str] = []
    gate = threading.Barrier(clients + 1)

    def one() -> None:
        client = openai.OpenAI(base_url=base, api_key="none", max_retries=0, timeout=120)
        client.models.list()  # connect before the clock starts
        gate.wait()
        for _ in range(per_client):
            try:
                r = client.chat.completions.create(
                    model="rlm",
                    messages=[{"role": "user", "content": "q"}],
                    extra_body={"rlm": {"context": "x" * 100}},
                )
                if r.choices[0].message.content != "done":
                    failures.append("wrong answer")
            except openai.APIError as exc:
                failures.append(type(exc).__name__)

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return (clients * per_client - len(failures)) / elapsed, len(failures)


def idle_sessions(proc: subprocess.Popen[str], base: str, n: int) -> dict[str, float]:
    import openai

    client = openai.OpenAI(base_url=base, api_key="none", max_retries=0)
    time.sleep(1.0)
    before_server = rss_kb(proc.pid)
    before_kids = sum(rss_kb(p) for p in descendants(proc.pid))
    for i in range(n):
        client.chat.completions.create(
            model="rlm",
            messages=[{"role": "user", "content": "q"}],
            extra_body={"rlm": {"session": "new", "context": f"{i} " + "y" * 1000}},
        )
    time.sleep(1.0)
    after_server = rss_kb(proc.pid)
    kids = descendants(proc.pid)
    after_kids = sum(rss_kb(p) for p in kids)
    return {
        "server_kb_per_session": (after_server - before_server) / n,
        "sandbox_kb_per_session": (after_kids - before_kids) / n,
        "processes_per_session": len(kids) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--per-client", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    if args.model_server:
        model_server()
        return
    model = subprocess.Popen(
        [sys.executable, __file__, "--model-server"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert model.stdout is not None
    url = model.stdout.readline().strip()
    proc, base = start_serve(url, args.clients, args.sessions)
    try:
        local = in_process(url, args.repeats)
        remote = served(base, args.repeats)
        med_local, med_remote = statistics.median(local) * 1000, statistics.median(remote) * 1000
        print(f"1-turn run, median of {args.repeats}:")
        print(f"  in-process RLMAgent.run  {med_local:7.1f} ms")
        print(
            f"  through rlm serve        {med_remote:7.1f} ms   "
            f"overhead {med_remote - med_local:+.1f} ms"
        )
        rps, failed = served_concurrent(base, args.clients, args.per_client)
        local_rps = in_process_concurrent(url, args.clients, args.per_client)
        print(f"{args.clients} concurrent clients x {args.per_client} requests:")
        print(f"  rlm serve   {rps:6.1f} requests/s ({failed} failed)")
        print(f"  in-process  {local_rps:6.1f} runs/s ({args.clients} concurrent arun)")
        memory = idle_sessions(proc, base, args.sessions)
        print(f"{args.sessions} idle sessions:")
        print(f"  server process  {memory['server_kb_per_session'] / 1024:6.2f} MB per session")
        print(f"  sandboxes       {memory['sandbox_kb_per_session'] / 1024:6.2f} MB per session "
              f"({memory['processes_per_session']:.0f} processes each)")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(15)
        model.stdin.close()  # type: ignore[union-attr]
        model.wait(10)


if __name__ == "__main__":
    main()
