"""``rlm run QUESTION --context PATH``: answer a question about a file (or stdin)."""

from __future__ import annotations

import argparse

from rlmagent.cli.common import add_engine_options, execute, read_context, report


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="answer a question about a long context")
    parser.add_argument("question")
    parser.add_argument(
        "--context",
        "-c",
        metavar="PATH",
        default=None,
        help="text file holding the context, or - for stdin",
    )
    add_engine_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    result = execute(args, args.question, read_context(args.context))
    if isinstance(result, int):
        return result
    report(args, result)
    return 0
