"""``rlm demo``: find one fact in ~50,000 generated characters, on the default model."""

from __future__ import annotations

import argparse
import sys

from rlmagent.cli.common import (
    EXIT_ANSWER,
    EXIT_ERROR,
    add_engine_options,
    execute,
    exit_code,
    report,
)
from rlmagent.demo import DEFAULT_DEMO_CHARS, make_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the shipped demo (one fact hidden in ~50,000 characters)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chars", type=int, default=DEFAULT_DEMO_CHARS)
    add_engine_options(parser)
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    demo = make_demo(args.seed, args.chars)
    if not args.json:
        print(
            f"Question: {demo.question}  (context: {len(demo.context):,} characters, "
            f"seed {demo.seed})",
            file=sys.stderr,
        )
    result = execute(args, demo.question, demo.context)
    if isinstance(result, int):
        return result
    correct = demo.answer in result.content
    report(args, result, {"expected": demo.answer, "correct": correct})
    if not args.json:
        verdict = "correct" if correct else f"wrong (expected {demo.answer})"
        print(f"expected {demo.answer}: {verdict}", file=sys.stderr)
    if exit_code(result) != EXIT_ANSWER:
        return exit_code(result)
    return EXIT_ANSWER if correct else EXIT_ERROR
