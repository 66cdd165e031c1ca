"""``rlm run QUESTION --context PATH``: answer a question about files, directories or stdin."""

from __future__ import annotations

import argparse
import sys

from rlmagent.cli.common import (
    EXIT_USAGE,
    add_engine_options,
    execute,
    exit_code,
    read_contexts,
    report,
)
from rlmagent.cli.contexts import add_context_options
from rlmagent.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="answer a question about a long context")
    parser.add_argument("question")
    add_context_options(parser)
    parser.add_argument(
        "--schema",
        metavar="FILE.json",
        default=None,
        help="a JSON Schema the answer must match (a typed answer, checked and corrected; "
        "needs the typed extra); the answer prints as JSON, --json has it in `value`",
    )
    add_engine_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    try:  # typed answers and contexts (cli/contexts.py): checked before any model call
        loaded = read_contexts(args)
        schema = None
        if args.schema is not None:
            from rlmagent.typed import load_schema, output_spec

            schema = load_schema(args.schema)
            output_spec(schema)
    except UsageError as exc:
        print(f"rlm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = execute(
        args, args.question, loaded.context(), output_type=schema, contexts=loaded.contexts
    )
    if isinstance(result, int):
        return result
    report(args, result)
    return exit_code(result)
