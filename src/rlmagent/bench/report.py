"""Summaries of a results file: a table per method and size, and a plot like Figure 1.

Scores are averaged over every item (overflows and errors count as 0). Cost, calls,
tokens and wall time are averaged over the items that ran (not over overflows, which
make no call). Cost is None ("-") when any of those items' cost is unknown.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlmagent.bench.items import format_tokens
from rlmagent.bench.methods import METHODS
from rlmagent.bench.runner import latest
from rlmagent.errors import UsageError


@dataclass(frozen=True, slots=True)
class Row:
    """The summary of one (task, series, size) cell. ``series`` is the method, with the
    model in brackets when the file holds several models."""

    task: str
    series: str
    method: str
    model: str
    tokens: int
    n: int
    score: float
    ran: int
    cost_mean: float | None
    cost_median: float | None
    calls_mean: float
    tokens_mean: float
    wall_mean: float
    wall_median: float
    overflows: int
    errors: int
    window: int | None


def _mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else 0.0


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _method_rank(method: str) -> int:
    names = list(METHODS)
    return names.index(method) if method in names else len(names)


def summarize(records: Iterable[dict[str, Any]]) -> list[Row]:
    """One :class:`Row` per (task, series, size), sorted by task, method, size."""
    records = latest(records)
    if not records:
        return []
    models = {r["model"] for r in records}
    groups: dict[tuple[str, str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["task"], r["method"], r["model"], int(r["tokens"]))].append(r)
    rows = []
    for (task, method, model, tokens), group in groups.items():
        ran = [r for r in group if r["status"] != "overflow"]
        costs = [r["usage"].get("cost_usd") for r in ran]
        known = [float(c) for c in costs if c is not None]
        windows = {r.get("window") for r in group}
        rows.append(
            Row(
                task=task,
                series=method if len(models) == 1 else f"{method} ({model})",
                method=method,
                model=model,
                tokens=tokens,
                n=len(group),
                score=_mean([float(r["score"]) for r in group]),
                ran=len(ran),
                cost_mean=_mean(known) if ran and len(known) == len(ran) else None,
                cost_median=_median(known) if ran and len(known) == len(ran) else None,
                calls_mean=_mean([r["usage"]["calls"] for r in ran]),
                tokens_mean=_mean([r["usage"]["total_tokens"] for r in ran]),
                wall_mean=_mean([r["wall_s"] for r in ran]),
                wall_median=_median([r["wall_s"] for r in ran]),
                overflows=sum(1 for r in group if r["status"] == "overflow"),
                errors=sum(1 for r in group if r["status"] == "error"),
                window=windows.pop() if len(windows) == 1 else None,
            )
        )
    rows.sort(key=lambda r: (r.task, _method_rank(r.method), r.model, r.tokens))
    return rows


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


MARKERS = ("o", "s", "^", "D", "v", "P", "X")

HEADERS = (
    "task",
    "method",
    "size",
    "n",
    "score",
    "cost mean",
    "cost median",
    "calls",
    "tokens",
    "wall mean",
    "wall median",
    "overflow",
    "errors",
)


def _ran(r: Row) -> tuple[str, ...]:
    return (
        f"{r.calls_mean:.1f}",
        f"{r.tokens_mean:,.0f}",
        f"{r.wall_mean:.1f}s",
        f"{r.wall_median:.1f}s",
    )


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table; score in percent (0-100) as in the RLM paper."""
    body = [
        (
            r.task,
            r.series,
            format_tokens(r.tokens),
            str(r.n),
            f"{100 * r.score:.1f}",
            _cost(r.cost_mean),
            _cost(r.cost_median),
            *(_ran(r) if r.ran else ("-",) * 4),
            str(r.overflows),
            str(r.errors),
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(HEADERS)]

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [fmt(HEADERS), fmt(["-" * w for w in widths])]
    lines += [fmt(line) for line in body]
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: str | Path, *, title: str | None = None) -> Path:
    """Score (top) and cost (bottom; total tokens when a cost is unknown) against
    context length, one line per method and one column per task; saved as PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        from rlmagent.extras import install_hint

        raise UsageError(
            f"plots need matplotlib, in the bench extra: {install_hint('bench')}"
        ) from exc
    if not rows:
        raise UsageError("nothing to plot: the results file holds no records")
    tasks = sorted({r.task for r in rows})
    fig = Figure(figsize=(max(6.0, 4.2 * len(tasks)), 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(tasks), squeeze=False, sharex="col")
    for column, task in enumerate(tasks):
        top, bottom = axes[0][column], axes[1][column]
        task_rows = [r for r in rows if r.task == task]
        use_cost = all(r.cost_mean is not None for r in task_rows if r.ran)
        for number, series in enumerate(dict.fromkeys(r.series for r in task_rows)):
            style = {"marker": MARKERS[number % len(MARKERS)], "label": series, "alpha": 0.85}
            points = sorted((r for r in task_rows if r.series == series), key=lambda r: r.tokens)
            xs = [r.tokens for r in points]
            top.plot(xs, [100 * r.score for r in points], **style)
            ran = [r for r in points if r.ran]
            ys = [(r.cost_mean or 0.0) if use_cost else r.tokens_mean for r in ran]
            bottom.plot([r.tokens for r in ran], ys, **style)
        sizes = sorted({r.tokens for r in task_rows})
        windows = {r.window for r in task_rows if r.window}
        window = windows.pop() if len(windows) == 1 else None
        for ax in (top, bottom):
            ax.set_xscale("log", base=2)
            ax.set_xticks(sizes, [format_tokens(s) for s in sizes])
            ax.grid(True, alpha=0.3)
            if window is not None:
                ax.axvline(window, color="grey", linestyle=":", linewidth=1)
        top.set_title(task)
        top.set_ylim(-3, 103)
        top.set_ylabel("score (%)")
        bottom.set_ylabel("mean cost (USD)" if use_cost else "mean tokens per item")
        bottom.set_xlabel("context length (estimated tokens)")
        top.legend(fontsize=8)
    fig.suptitle(title or "Score and cost against context length (dotted line: the window)")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
