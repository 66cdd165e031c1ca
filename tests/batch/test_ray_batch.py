"""Batches on a real Ray cluster on loopback (tests/batch/ray_driver.py), asserted here.

The cluster, the driver and the fake model server run in private network and PID
namespaces with only loopback up (as root: ``unshare``); skipped where that or Ray is
not available (CI sets ``RLMAGENT_REQUIRE_RAY=1``: there, that is a failure). One
cluster serves every scenario (about a minute in all on 2 cores).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).with_name("ray_driver.py")


def _why_not() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return 'Ray is not installed (pip install "rlmagent[ray]")'
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2) for a loopback-only namespace"
    probe = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", "ip link set lo up"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return f"cannot make a private network namespace here: {probe.stderr.decode()[:200]}"
    return None


WHY_NOT = _why_not()
if WHY_NOT is not None and os.environ.get("RLMAGENT_REQUIRE_RAY"):  # CI: fail, never skip
    raise RuntimeError(f"RLMAGENT_REQUIRE_RAY is set but the Ray tests cannot run: {WHY_NOT}")
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ray") / "report.json"
    command = f"ip link set lo up && exec {sys.executable} {DRIVER} {out}"
    done = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "sh", "-c", command],
        capture_output=True,
        timeout=600,
    )
    assert out.exists(), done.stderr.decode()[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    if done.returncode != 0 or "nodes" not in report:  # the cluster never came up
        pytest.fail(
            f"the Ray driver failed (exit {done.returncode}): {done.stderr.decode()[-3000:]}"
        )
    for name, part in report.items():
        if isinstance(part, dict) and "crashed" in part:
            pytest.fail(f"scenario {name} crashed: {part['crashed']}")
    return report


def test_the_cluster_is_on_loopback(seen: dict[str, Any]) -> None:
    assert seen["nodes"] == ["127.0.0.1"]


def test_forty_jobs_on_ray_never_make_one_call_too_many(seen: dict[str, Any]) -> None:
    part = seen["budget"]
    assert part["requests"] <= part["limit"]
    assert part["requests"] >= part["limit"] - 4  # the budget was used, not refused early
    results = [json.loads(line) for line in part["lines"]]
    assert sorted(r["id"] for r in results) == sorted(f"j{i}" for i in range(40))
    assert {r["status"] for r in results} <= {"ok", "budget"}
    ok = [r for r in results if r["status"] == "ok"]
    assert len(ok) >= 10
    assert all(r["answer"] == f"WORD{r['id'][1:]}:1" for r in ok)
    assert any((r["error"] or "").startswith("not started") for r in results)
    assert part["summary"]["calls"] == part["requests"]


def test_a_rerun_on_ray_skips_the_jobs_that_are_done(seen: dict[str, Any]) -> None:
    part = seen["resume"]
    assert (part["first"], part["second"], part["skipped"]) == (5, 3, 5)
    assert part["ids"] == sorted(f"j{i}" for i in range(8))


def test_a_job_whose_worker_is_killed_is_retried(seen: dict[str, Any]) -> None:
    part = seen["kill"]
    assert len(part["killed"]) == 1
    assert part["killme_requests"] == 2  # the first attempt died in its root call
    results = [json.loads(line) for line in part["lines"]]  # every line is valid JSON
    assert sorted(r["id"] for r in results) == ["j0", "j1", "j2", "k"]
    assert all(r["status"] == "ok" for r in results)
    assert next(r for r in results if r["id"] == "k")["answer"] == "KILLME"
    assert part["sandboxes_then"] and not part["sandboxes_alive"]


def test_ctrl_c_cancels_the_tasks_and_leaves_no_sandbox(seen: dict[str, Any]) -> None:
    part = seen["cancel"]
    assert part["interrupted"]
    assert part["sandboxes_then"], "the waiting jobs had sandboxes"
    assert part["sandboxes_alive"] == []
    assert part["tasks_running"] == 0


def test_rlm_bench_run_on_ray_scores_items_as_tasks(seen: dict[str, Any]) -> None:
    part = seen["bench"]
    assert part["codes"] == [0, 0]
    assert sorted((r["method"], r["status"], r["score"]) for r in part["results"]) == [
        ("direct", "ok", 1.0),
        ("direct", "ok", 1.0),
        ("rlm", "ok", 1.0),
        ("rlm", "ok", 1.0),
    ]


def test_without_an_address_a_local_ray_is_started_and_stopped(seen: dict[str, Any]) -> None:
    part = seen["fresh"]
    assert part["code"] == 0, part["stderr"]
    assert part["out"] == {"ok": 3, "left_running": False}
