"""The driver of the Ray tests: a real Ray cluster on loopback, a batch, checks.

Run it inside private network and PID namespaces with only loopback up (Ray left alone
binds to the machine's interface address; loopback is per namespace, so the cluster, this
driver and the fake model server all live in the same one)::

    unshare --net --pid --fork --mount-proc \
        sh -c 'ip link set lo up && exec python ray_driver.py OUT.json'

It starts ``ray start --head --port <free> --num-cpus 2 --include-dashboard=false``,
the loopback chat server, runs the scenarios on ``address=`` and writes what it saw to
OUT.json for the pytest side to assert on. When it exits, the PID namespace ends and
every process of the cluster with it; it runs ``ray stop`` first (which, in the
namespace, sees only this cluster's processes).
"""

from __future__ import annotations

import _thread
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fakes import MODEL, root_requests, server, write_jobs  # noqa: E402

from rlmagent import Budget  # noqa: E402
from rlmagent.batch import BatchSettings, iter_batch, read_results, run_batch  # noqa: E402

# The ray CLI of this interpreter (its console script may not be beside it, e.g. in a venv
# that sees Ray through system site-packages).
RAY = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def processes(word: bytes) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process in this namespace whose command line has
    ``word``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if word in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def sandboxes() -> list[int]:
    """Sandbox worker processes (rlmagent's worker.py; not Ray's default_worker.py)."""
    return [
        pid
        for pid, cmd in processes(b"worker.py")
        if b"default_worker.py" not in cmd and b"ray" not in cmd.split(b"\0")[0]
    ]


def alive(pids: list[int]) -> list[int]:
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            out.append(pid)
    return out


def settings(url: str) -> BatchSettings:
    return BatchSettings(model=MODEL, base_urls=(url,), max_turns=3)


def scenario_budget(address: str, tmp: Path) -> dict[str, Any]:
    limit = 31
    with server(subs=1) as srv:
        out = tmp / "budget.jsonl"
        report = run_batch(
            write_jobs(tmp / "jobs40.jsonl", 40),
            settings=settings(srv.url),
            executor="ray",
            address=address,
            concurrency=4,
            budget=Budget(max_calls=limit),
            out=out,
        )
        return {
            "limit": limit,
            "requests": len(srv.requests),
            "lines": out.read_text().splitlines(),
            "summary": report.summary.to_dict(),
        }


def scenario_resume(address: str, tmp: Path) -> dict[str, Any]:
    out = tmp / "resume.jsonl"
    with server(subs=0) as srv:
        run_batch(
            write_jobs(tmp / "a.jsonl", 5),
            settings=settings(srv.url),
            executor="ray",
            address=address,
            out=out,
        )
        first = root_requests(srv)
        srv.reset()
        report = run_batch(
            write_jobs(tmp / "b.jsonl", 8),
            settings=settings(srv.url),
            executor="ray",
            address=address,
            out=out,
        )
        return {
            "first": first,
            "second": root_requests(srv),
            "skipped": report.summary.skipped,
            "ids": sorted(r["id"] for r in read_results(out)),
        }


def scenario_kill(address: str, tmp: Path) -> dict[str, Any]:
    """The job 'killme' has its Ray worker SIGKILLed during its first root call."""
    killed: list[int] = []
    seen_sandboxes: list[int] = []

    def hook(question: str) -> None:
        if question.endswith("killme") and not killed:
            seen_sandboxes.extend(sandboxes())
            for pid, _cmd in processes(b"ray::ray_job"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    jobs = tmp / "kill.jsonl"
    write_jobs(jobs, 3, extra=[json.dumps({"id": "k", "question": "please killme"})])
    with server(subs=0, hook=hook) as srv:
        out = tmp / "kill-results.jsonl"
        report = run_batch(
            jobs,
            settings=settings(srv.url),
            executor="ray",
            address=address,
            concurrency=1,
            out=out,
        )
        asked = sum(
            1
            for r in srv.requests
            if r.body.get("messages", [{}])[0].get("role") == "system"
            and "killme" in json.dumps(r.body)
        )
    time.sleep(1.0)
    return {
        "killed": killed,
        "killme_requests": asked,
        "lines": out.read_text().splitlines(),
        "summary": report.summary.to_dict(),
        "sandboxes_then": seen_sandboxes,
        "sandboxes_alive": alive(seen_sandboxes),
    }


def scenario_cancel(address: str, tmp: Path) -> dict[str, Any]:
    """Ctrl-C while two jobs wait for their first answer: no sandbox may be left."""
    release = threading.Event()
    waiting = threading.Semaphore(0)

    def hook(question: str) -> None:
        waiting.release()
        release.wait(60)

    with server(subs=0, hook=hook) as srv:
        results = iter_batch(
            write_jobs(tmp / "cancel.jsonl", 6),
            settings=settings(srv.url),
            executor="ray",
            address=address,
            concurrency=2,
            out=tmp / "cancel-results.jsonl",
        )
        running: list[int] = []
        marks: list[float] = []
        interrupted = False

        def interrupt() -> None:
            for _ in range(2):
                waiting.acquire(timeout=60)
            time.sleep(0.5)
            running.extend(sandboxes())
            marks.append(time.monotonic())
            _thread.interrupt_main()  # what Ctrl-C does

        threading.Thread(target=interrupt, daemon=True).start()
        started = time.monotonic()
        try:
            for _ in results:
                pass
        except KeyboardInterrupt:
            interrupted = True
        stopped_in = time.monotonic() - (marks[0] if marks else started)
        release.set()
    deadline = time.monotonic() + 15
    while alive(running) and time.monotonic() < deadline:
        time.sleep(0.1)
    return {
        "interrupted": interrupted,
        "sandboxes_then": running,
        "sandboxes_alive": alive(running),
        "tasks_running": len(processes(b"ray::ray_job")),
        "stop_s": round(stopped_in, 2),
    }


def scenario_bench(address: str, tmp: Path) -> dict[str, Any]:
    """``rlm bench run --executor ray``: the bench harness's items scored as Ray tasks."""
    sys.path.insert(0, str(HERE.parent / "bench"))
    from bench_fakes import solve

    from engines.fake_server import FakeLLMServer
    from rlmagent.bench import read_results as read_bench
    from rlmagent.cli import main as rlm

    out = tmp / "bench.jsonl"
    with FakeLLMServer(responder=solve) as srv:
        argv = [
            "bench",
            "run",
            "--task",
            "sniah",
            "--tokens",
            "2k",
            "--n",
            "2",
            "--method",
            "rlm,direct",
            "--model",
            "vllm:bench-fake",
            "--base-url",
            srv.url,
            "--window",
            "4096",
            "--max-tokens",
            "256",
            "--out",
            str(out),
            "--executor",
            "ray",
            "--address",
            address,
            "--quiet",
        ]
        code = rlm(argv)
        again = rlm(argv)  # resumed: nothing left to do
        return {
            "codes": [code, again],
            "requests": len(srv.requests),
            "results": [{k: r[k] for k in ("method", "status", "score")} for r in read_bench(out)],
        }


FRESH = """
import json, sys
sys.path[:0] = sys.argv[1:3]
from fakes import MODEL, server, write_jobs
from pathlib import Path
import ray
from rlmagent.batch import BatchSettings, run_batch
with server(subs=0) as srv:
    report = run_batch(write_jobs(Path(sys.argv[3]), 3), executor="ray",
                       settings=BatchSettings(model=MODEL, base_urls=(srv.url,)))
print(json.dumps({"ok": report.summary.ok, "left_running": ray.is_initialized()}))
"""


def scenario_fresh(address: str, tmp: Path) -> dict[str, Any]:
    """executor="ray" with no address, in a process not connected to Ray: a local Ray is
    started for the batch and stopped after it."""
    done = subprocess.run(
        [sys.executable, "-c", FRESH, str(HERE.parent), str(HERE), str(tmp / "fresh.jsonl")],
        capture_output=True,
        text=True,
        timeout=300,
        # its session files go with ours, and what a local Ray writes under ~/.ray (an
        # auth token, which clusters started later would then ask for) stays there too
        env={**os.environ, "RAY_TMPDIR": str(tmp), "HOME": str(tmp)},
    )
    lines = done.stdout.strip().splitlines()
    return {
        "code": done.returncode,
        "out": json.loads(lines[-1]) if lines else None,
        "stderr": done.stderr[-2000:] if done.returncode else "",
    }


SCENARIOS = {
    "budget": scenario_budget,
    "resume": scenario_resume,
    "kill": scenario_kill,
    "cancel": scenario_cancel,
    "bench": scenario_bench,
    "fresh": scenario_fresh,
}


def main() -> None:
    out_path = Path(sys.argv[1])
    names = sys.argv[2:] or list(SCENARIOS)
    temp = tempfile.mkdtemp(prefix="rlray", dir="/tmp")  # short: Ray's socket paths
    port = free_port()
    report: dict[str, Any] = {}
    try:
        subprocess.run(
            [
                *RAY,
                "start",
                "--head",
                f"--port={port}",
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={temp}",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        address = f"127.0.0.1:{port}"
        import ray

        ray.init(address=address, log_to_driver=False)
        report["nodes"] = [n["NodeManagerAddress"] for n in ray.nodes()]
        ray.shutdown()
        for name in names:
            started = time.monotonic()
            try:
                report[name] = SCENARIOS[name](address, Path(temp))
            except BaseException as exc:  # reported, the rest still run
                report[name] = {"crashed": f"{type(exc).__name__}: {exc}"}
            report[name]["seconds"] = round(time.monotonic() - started, 1)
    finally:
        out_path.write_text(json.dumps(report, default=str))
        subprocess.run([*RAY, "stop"], capture_output=True, timeout=60)
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
