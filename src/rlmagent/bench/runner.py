"""Run methods over benchmark items, concurrently, into a resumable JSONL file.

One line of the results file per (task, size, method, item, model)::

    {"key": ..., "task": "sniah", "tokens": 8192, "method": "rlm", "status": "ok",
     "score": 1.0, "answer": "4852193", "gold": "4852193", "usage": {"calls": 3, ...},
     "wall_s": 12.4, "error": null, ...}

``status`` is ``ok``, ``overflow`` (the context did not fit: score 0) or ``error`` (the
method failed: score 0). A rerun with the same file skips every key already ``ok`` or
``overflow`` and retries errors; readers keep the last line of each key.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlmagent.bench.items import BenchItem
from rlmagent.bench.methods import METHODS, MethodConfig, MethodOutput, Models, run_method
from rlmagent.bench.scoring import score
from rlmagent.errors import UsageError

FINISHED = ("ok", "overflow")
DEFAULT_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class BenchResult:
    """One scored answer: the unit of the results file."""

    key: str
    task: str
    tokens: int
    context_tokens: int
    context_chars: int
    item_id: str
    index: int
    seed: int
    method: str
    model: str
    sub_model: str | None
    window: int
    status: str
    score: float
    answer: str | None
    gold: Any
    usage: dict[str, Any]
    wall_s: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    finished_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run stands, handed to the ``on_result`` callback after each result."""

    done: int
    total: int
    skipped: int
    elapsed_s: float


def result_key(task: str, tokens: int, method: str, item_id: str, model: str) -> str:
    """The identity of one result line (what a rerun skips)."""
    return f"{task}|{tokens}|{method}|{item_id}|{model}"


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Every record of a results file, in file order (a cut last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # interrupted mid-write: that result is redone
                continue
            raise UsageError(f"{path}:{number}: not a JSON results line") from None
    return records


def latest(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last record of each key, in order of first appearance."""
    by_key: dict[str, dict[str, Any]] = {}
    for record in records:
        key = record.get("key")
        if key is None:
            raise UsageError("a results record has no 'key': is this a `rlm bench run` file?")
        by_key[key] = record
    return list(by_key.values())


def finished_keys(records: Iterable[dict[str, Any]]) -> set[str]:
    """Keys whose latest record is finished (``ok`` or ``overflow``)."""
    return {r["key"] for r in latest(records) if r.get("status") in FINISHED}


def _usage_dict(output: MethodOutput) -> dict[str, Any]:
    usage = output.usage
    return {
        "calls": usage.calls,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost_usd": usage.cost_usd,
    }


async def _one(item: BenchItem, method: str, models: Models, config: MethodConfig) -> BenchResult:
    started = time.perf_counter()
    try:
        output = await run_method(method, item, models, config)
    except Exception as exc:  # a method's failure on one item is that item's result
        output = MethodOutput(None, "error", error=f"{type(exc).__name__}: {exc}")
    wall = time.perf_counter() - started
    points = score(item, output.answer) if output.status == "ok" else 0.0
    return BenchResult(
        key=result_key(item.task, item.tokens, method, item.item_id, models.model),
        task=item.task,
        tokens=item.tokens,
        context_tokens=item.context_tokens,
        context_chars=len(item.context),
        item_id=item.item_id,
        index=item.index,
        seed=item.seed,
        method=method,
        model=models.model,
        sub_model=models.sub_model if method == "rlm" else None,
        window=config.window,
        status=output.status,
        score=points,
        answer=output.answer,
        gold=item.gold,
        usage=_usage_dict(output),
        wall_s=round(wall, 3),
        error=output.error,
        detail=output.detail,
        finished_at=time.time(),
    )


async def arun_bench(
    items: Iterable[BenchItem],
    methods: Sequence[str],
    models: Models,
    *,
    config: MethodConfig | None = None,
    out: str | Path | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: Callable[[BenchResult, Progress], None] | None = None,
    remote: Callable[..., Awaitable[BenchResult]] | None = None,
) -> list[BenchResult]:
    """Run every method on every item; append each result to ``out`` as it finishes.

    Jobs already finished in ``out`` are skipped (resume). At most ``concurrency`` jobs
    run at once. Returns the results of this call, in completion order. ``remote``
    scores one (item, method) elsewhere instead of here: ``rlm bench run --executor
    ray`` passes :meth:`rlmagent.batch.bench_ray.RayBench.runner`.
    """
    config = config or MethodConfig()
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    if concurrency < 1:
        raise UsageError(f"concurrency must be at least 1, got {concurrency}")
    if "bm25" in methods:
        try:
            import rank_bm25  # noqa: F401
        except ImportError:
            from rlmagent.extras import install_hint

            raise UsageError(f"the bm25 method needs rank-bm25: {install_hint('bench')}") from None
    done_keys = finished_keys(read_results(out)) if out is not None else set()
    jobs: list[tuple[BenchItem, str]] = []
    skipped = 0
    for item in sorted(items, key=lambda i: (i.tokens, i.task, i.index)):
        for method in methods:
            key = result_key(item.task, item.tokens, method, item.item_id, models.model)
            if key in done_keys:
                skipped += 1
            else:
                jobs.append((item, method))
    semaphore = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    results: list[BenchResult] = []
    sink = open(out, "a", encoding="utf-8") if out is not None else None  # noqa: SIM115

    async def job(item: BenchItem, method: str) -> None:
        async with semaphore:
            result = await (remote or _one)(item, method, models, config)
        results.append(result)
        if sink is not None:
            sink.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            sink.flush()
        if on_result is not None:
            progress = Progress(len(results), len(jobs), skipped, time.perf_counter() - started)
            on_result(result, progress)

    try:
        await asyncio.gather(*(job(item, method) for item, method in jobs))
    finally:
        if sink is not None:
            sink.close()
    return results


def run_bench(
    items: Iterable[BenchItem],
    methods: Sequence[str],
    models: Models,
    **options: Any,
) -> list[BenchResult]:
    """Blocking :func:`arun_bench`."""
    return asyncio.run(arun_bench(items, methods, models, **options))
