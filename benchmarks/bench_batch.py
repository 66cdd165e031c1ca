"""Batch runs (issue 19): the Ray executor against the local one, fan-out, endpoints, ledger.

Run it as root inside private network and PID namespaces with only loopback (Ray left
alone binds to the machine's interface address; see tests/batch/ray_driver.py)::

    unshare --net --pid --fork --mount-proc sh -c \\
        'ip link set lo up && exec python benchmarks/bench_batch.py [--fanout-jobs N]'

It starts a Ray head (``--num-cpus 2``... as given) in the namespace and the loopback
chat server in this process, then measures, in one run on the same machine:

1. per-job overhead: 200 one-turn jobs (one root call, no sub-call), local vs Ray,
   concurrency 8, medians of 3 (jobs/s, ms a job);
2. fan-out: jobs that each make one ``llm_batch`` of 16 prompts, every request answered
   after 50 ms, local vs Ray at concurrency 32 (wall against the ideal, calls/s, peak
   resident memory of every process in the namespace over what it held before the
   batch: driver, server, Ray workers, sandboxes; a sum of RSS, shared pages counted
   in each process);
3. the multi-endpoint engine: 1,000 sub-calls (32 at once) over 3 servers that each
   answer 8 requests at a time in 50 ms, against one such server (share, wall);
4. the ledger actor: reserve + settle pairs per second from the driver (sequential) and
   from 4 tasks at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "batch")]

from fakes import MODEL, server, write_jobs  # noqa: E402

from engines.fake_server import FakeLLMServer  # noqa: E402
from rlmagent.batch import BatchSettings, run_batch  # noqa: E402

RAY = str(Path(sys.executable).parent / "ray")


def namespace_rss_mb() -> float:
    """Resident memory of every process this PID namespace holds, in MB."""
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                total += int((entry / "statm").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total * os.sysconf("SC_PAGE_SIZE") / 1e6


class PeakMemory:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.25):
            self.peak = max(self.peak, namespace_rss_mb())

    def __enter__(self) -> PeakMemory:
        self.peak = namespace_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def batch(
    url: str, jobs: Path, executor: str, address: str, concurrency: int, **kw: Any
) -> dict[str, Any]:
    settings = BatchSettings(model=MODEL, base_urls=(url,), max_turns=2, max_concurrency=16)
    extra = {"address": address, "job_cpus": 2 / concurrency} if executor == "ray" else {}
    started = time.perf_counter()
    baseline = namespace_rss_mb()
    with PeakMemory() as memory:
        report = run_batch(
            jobs, settings=settings, executor=executor, concurrency=concurrency, **extra, **kw
        )
    wall = time.perf_counter() - started
    s = report.summary
    assert s.ok == s.total, report.results[:3]
    return {"wall_s": wall, "jobs": s.total, "calls": s.calls, "peak_mb": memory.peak - baseline}


def overhead(address: str, tmp: Path, n: int, reps: int) -> dict[str, Any]:
    jobs = write_jobs(tmp / "overhead.jsonl", n)
    out: dict[str, Any] = {}
    with server(subs=0) as srv:
        batch(srv.url, write_jobs(tmp / "warm.jsonl", 8), "ray", address, 8)  # start workers
        runs: dict[str, list[float]] = {"local": [], "ray": []}
        for _ in range(reps):  # interleaved: the same conditions for both
            for executor in ("local", "ray"):
                runs[executor].append(batch(srv.url, jobs, executor, address, 8)["wall_s"])
    for executor, walls in runs.items():
        wall = statistics.median(walls)
        out[executor] = {
            "walls_s": [round(w, 2) for w in walls],
            "jobs_per_s": round(n / wall, 1),
            "ms_per_job": round(1000 * wall / n, 1),
        }
    return out


def fanout(address: str, tmp: Path, n: int) -> dict[str, Any]:
    jobs = write_jobs(tmp / "fanout.jsonl", n)
    ideal = (n / 32) * 2 * 0.05  # each job: a 50 ms root call, then 16 calls at once
    out: dict[str, Any] = {"jobs": n, "ideal_s": round(ideal, 2)}
    with server(subs=16, delay=0.05) as srv:
        batch(srv.url, write_jobs(tmp / "warm.jsonl", 32), "ray", address, 32)
        for executor in ("local", "ray"):
            got = batch(srv.url, jobs, executor, address, 32)
            out[executor] = {
                "wall_s": round(got["wall_s"], 2),
                "x_ideal": round(got["wall_s"] / ideal, 1),
                "calls": got["calls"],
                "calls_per_s": round(got["calls"] / got["wall_s"]),
                "peak_mb_over_idle": round(got["peak_mb"]),
            }
    return out


def endpoints(calls: int) -> dict[str, Any]:
    from rlmagent.engines import get_engine

    hello = [{"role": "user", "content": "hello"}]

    async def drive(engine: Any) -> float:
        gate = asyncio.Semaphore(32)

        async def one() -> None:
            async with gate:
                await engine.agenerate(hello, model="m", max_tokens=8)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        return time.perf_counter() - started

    def capped() -> Any:  # a server that answers 8 requests at a time, 50 ms each
        slots = threading.Semaphore(8)

        def answer(messages: list[dict[str, str]], model: str) -> str:
            with slots:
                time.sleep(0.05)
            return "ok"

        return answer

    out: dict[str, Any] = {"calls": calls, "server": "8 requests at a time, 50 ms each"}
    servers = [FakeLLMServer(responder=capped()).start() for _ in range(3)]
    try:
        for label, urls in (("one", [servers[0].url]), ("three", [s.url for s in servers])):
            for s in servers:
                s.reset()
            engine = get_engine("vllm:m", base_url=urls if len(urls) > 1 else urls[0])
            asyncio.run(drive(engine))  # warm: connections, SDK
            for s in servers:
                s.reset()
            wall = asyncio.run(drive(engine))
            out[label] = {
                "wall_s": round(wall, 2),
                "share": [len(s.requests) for s in servers],
            }
            engine.close()
    finally:
        for s in servers:
            s.stop()
    return out


def ledger_rate(address: str, pairs: int) -> dict[str, Any]:
    import ray

    from rlmagent.batch.ledger import RayPool, start_ledger
    from rlmagent.budget import Budget

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
    actor = start_ledger(Budget(max_calls=10**9))
    pool = RayPool(actor)

    def hammer(count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            grant = pool.reserve("bench", 100, 100, None, False)
            pool.settle(grant.tokens, grant.cost, 150, 0.0, False)
        pool.spent()  # waits for the last settlements
        return time.perf_counter() - started

    hammer(200)
    wall = hammer(pairs)

    @ray.remote(num_cpus=0.25)
    def remote_hammer(handle: Any, count: int) -> float:
        local = RayPool(handle)
        started = time.perf_counter()
        for _ in range(count):
            grant = local.reserve("t", 100, 100, None, False)
            local.settle(grant.tokens, grant.cost, 150, 0.0, False)
        local.spent()
        return time.perf_counter() - started

    started = time.perf_counter()
    ray.get([remote_hammer.remote(actor, pairs // 4) for _ in range(4)])
    together = time.perf_counter() - started
    ray.kill(actor)
    return {
        "pairs": pairs,
        "driver_pairs_per_s": round(pairs / wall),
        "driver_ms_per_pair": round(1000 * wall / pairs, 3),
        "four_tasks_pairs_per_s": round(pairs / together),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-jobs", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--fanout-jobs", type=int, default=1000)
    parser.add_argument("--endpoint-calls", type=int, default=1000)
    parser.add_argument("--ledger-pairs", type=int, default=2000)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument(
        "--only", default="endpoints,overhead,ledger,fanout", help="parts to run, by name"
    )
    args = parser.parse_args()
    temp = Path(tempfile.mkdtemp(prefix="rlbb", dir="/tmp"))
    port = 6391
    subprocess.run(
        [
            RAY,
            "start",
            "--head",
            f"--port={port}",
            f"--num-cpus={args.num_cpus}",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
        ],
        check=True,
        capture_output=True,
    )
    address = f"127.0.0.1:{port}"
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "ray_num_cpus": args.num_cpus}
    try:
        parts = {
            "endpoints": lambda: endpoints(args.endpoint_calls),
            "overhead": lambda: overhead(address, temp, args.overhead_jobs, args.reps),
            "ledger": lambda: ledger_rate(address, args.ledger_pairs),
            "fanout": lambda: fanout(address, temp, args.fanout_jobs),
        }
        for name in args.only.split(","):
            started = time.perf_counter()
            figures[name] = parts[name]()
            figures[name]["part_s"] = round(time.perf_counter() - started, 1)
            figures[name]["load_average"] = os.getloadavg()[0]
            print(json.dumps({name: figures[name]}), flush=True)
    finally:
        if args.out:
            Path(args.out).write_text(json.dumps(figures, indent=2))
        subprocess.run([RAY, "stop"], capture_output=True, timeout=120)


if __name__ == "__main__":
    main()
