"""``rlm view [TRACE] [-o OUT]``: write a run's trajectory as one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from rlmagent.cli.runs import resolve_runs_dir
from rlmagent.errors import UsageError
from rlmagent.trace import latest_run, run_at


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "view",
        help="see a run as an HTML page (default: the newest run)",
        description="Write one self-contained HTML page for a JSONL trajectory (no network "
        "needed to view it) and open it in a browser when one is available.",
    )
    parser.add_argument(
        "trace",
        nargs="?",
        default=None,
        metavar="TRACE",
        help="a .jsonl trajectory, or N: row N of `rlm runs` (default: the newest run)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        default=None,
        help="where to write the page (default: beside the trace, .html)",
    )
    parser.add_argument("--title", default=None, help="page title (default: the question)")
    opening = parser.add_mutually_exclusive_group()
    opening.add_argument(
        "--open",
        dest="open",
        action="store_true",
        default=None,
        help="open the page in a browser (default when run in a terminal)",
    )
    opening.add_argument("--no-open", dest="open", action="store_false", help="only write the page")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from rlmagent.viewer import write_html

    if args.trace is None:
        directory = resolve_runs_dir()
        trace = latest_run(directory)
        if trace is None:
            print(f"rlm: error: no runs in {directory}; give a trace file", file=sys.stderr)
            return 2
    elif args.trace.isdigit() and not Path(args.trace).exists():  # a row of `rlm runs`
        directory = resolve_runs_dir()
        found = run_at(directory, int(args.trace))
        if found is None:
            print(f"rlm: error: no run {args.trace} in {directory} (see rlm runs)", file=sys.stderr)
            return 2
        trace = found
    else:
        trace = Path(args.trace)
        if not trace.is_file():
            print(f"rlm: error: no such trace file: {trace}", file=sys.stderr)
            return 2
    try:
        out = write_html(trace, args.output, title=args.title)
    except UsageError as exc:
        print(f"rlm: error: {exc}", file=sys.stderr)
        return 2
    print(out)
    should_open = args.open if args.open is not None else sys.stdout.isatty()
    if should_open and not webbrowser.open(out.resolve().as_uri()):
        print(f"no browser found: open {out} yourself", file=sys.stderr)
    return 0
