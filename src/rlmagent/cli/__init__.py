"""The ``rlm`` command: a thin shell over the library.

Each subcommand lives in its own module exposing ``register(subparsers)``; the modules
are listed in :data:`COMMAND_MODULES`. Environment variables are read here (and in
engine constructors for API keys), nowhere else in the library.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "chat",
    "batch",
    "demo",
    "bench",
    "view",
    "runs",
    "serve",
    "mcp",
    "doctor",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlm",
        description="Recursive Language Models: ask questions about inputs of any length.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"rlmagent.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args.func(args))


def run_main() -> None:  # the console-script entry point
    sys.exit(main())
