"""``rlm runs``: list the runs kept in the run log, newest first."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rlmagent.printable import printable, printable_json
from rlmagent.trace import RunSummary, list_runs, runs_dir

DEFAULT_LIMIT = 20
COLUMNS = ("#", "time", "question", "answer", "turns", "calls", "tokens", "cost", "status")
RIGHT = frozenset({"#", "turns", "calls", "tokens", "cost"})


def resolve_runs_dir() -> Path:
    """The run log's directory: ``$RLMAGENT_HOME/runs``, else the user's data directory."""
    return runs_dir(os.environ.get("RLMAGENT_HOME") or None)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "runs",
        help="list past runs (rlm view N opens row N; rlm view, the newest)",
        description="List the runs kept in the run log ($RLMAGENT_HOME/runs or the user's "
        "data directory), newest first.",
    )
    parser.add_argument(
        "-n",
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N runs (default {DEFAULT_LIMIT}; 0: all)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=handle)


def _short(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _cost(cost: float | None) -> str:
    return "?" if cost is None else f"${cost:.4f}"


def _row(s: RunSummary) -> dict[str, object]:
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.started_at)),
        "question": s.question,
        "answer": s.answer,
        "turns": s.turns,
        "calls": s.calls,
        "tokens": s.tokens,
        "cost_usd": s.cost_usd,
        "status": s.status,
        "stop_reason": s.stop_reason,
        "error": s.error,
        "path": str(s.path),
    }


def handle(args: argparse.Namespace) -> int:
    directory = resolve_runs_dir()
    summaries = list_runs(directory, limit=args.limit or None)
    if args.json:
        for s in summaries:
            print(printable_json(json.dumps(_row(s), ensure_ascii=False)))
        return 0
    if not summaries:
        print(f"no runs in {directory}", file=sys.stderr)
        return 0
    rows = [
        (
            str(i),
            str(_row(s)["time"]),
            _short(printable(s.question), 50),
            _short(printable(s.answer), 30) if s.answer is not None else "–",
            str(s.turns),
            str(s.calls),
            f"{s.tokens:,}",
            _cost(s.cost_usd),
            s.status,
        )
        for i, s in enumerate(summaries, start=1)
    ]
    from rich.console import Console

    console = Console()
    if console.is_terminal:
        from rich import box
        from rich.table import Table
        from rich.text import Text

        table = Table(box=box.SIMPLE_HEAD, header_style="bold")
        for name in COLUMNS:
            right = name in RIGHT
            table.add_column(name, justify="right" if right else "left", no_wrap=name != "question")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))  # text, never markup
        console.print(table)
    else:  # plain aligned lines for pipes and files, never wrapped
        widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
        for row in (COLUMNS, *rows):
            cells = [
                v.rjust(w) if name in RIGHT else v.ljust(w)
                for v, w, name in zip(row, widths, COLUMNS, strict=True)
            ]
            print("  ".join(cells).rstrip())
    print(
        f"{len(summaries)} run(s) in {directory}; `rlm view N` opens row N, `rlm view` the newest",
        file=sys.stderr,
    )
    return 0
