"""``rlm batch JOBS.jsonl --out RESULTS.jsonl``: many questions, one budget, local or Ray.

The model, sandbox and budget flags are those of ``rlm run``; the budget flags cap the
whole batch. Exit status (as ``rlm run``'s where they mean the same): 0 when every job
is ``ok``; 1 when some job failed (its line says why); 4 when none failed but some ran
out of budget; 2 for a usage error; 130 when interrupted (a rerun with the same
``--out`` goes on where this one stopped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from rlmagent.cli.common import add_engine_options
from rlmagent.errors import RLMError, UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="answer every question of a JSONL file (local or on Ray), one budget for all",
        description='Each line of JOBS is {"id", "question", "context" or '
        '"context_path"[, "output_type"]}; each result line of --out has id, status '
        "(ok, error, budget), answer, usage and error. A rerun with the same --out skips "
        "the jobs already ok. The budget flags cap the whole batch.",
    )
    parser.add_argument("jobs", metavar="JOBS.jsonl")
    parser.add_argument("--out", "-o", required=True, metavar="RESULTS.jsonl")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster to use (auto, HOST:PORT, ray://...; default: a local Ray for this batch)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, metavar="N", help="jobs at once (default 8)"
    )
    parser.add_argument(
        "--max-retries",
        type=int,
        default=None,
        metavar="N",
        help="Ray: retries of a job whose worker or node was lost (default 3; never for "
        "model errors)",
    )
    parser.add_argument(
        "--job-cpus",
        type=float,
        default=None,
        metavar="CPUS",
        help="Ray: CPUs reserved per job (default 1; jobs mostly wait for the model, so "
        "0.25 runs four per core)",
    )
    add_engine_options(parser)
    parser.set_defaults(func=handle)


def settings_from(args: argparse.Namespace) -> Any:
    """The frozen :class:`~rlmagent.batch.BatchSettings` of the command-line flags."""
    from rlmagent.batch import BatchSettings

    if args.trace is not None or args.cache is not None:
        raise UsageError(
            "rlm batch takes no --trace or --cache (yet): each job's result line "
            "holds its answer and usage"
        )
    urls = args.base_url
    return BatchSettings(
        model=args.model or os.environ.get("RLM_MODEL") or None,
        sub_model=args.sub_model or os.environ.get("RLM_SUB_MODEL") or None,
        base_urls=tuple([urls] if isinstance(urls, str) else urls or ()),
        max_turns=args.max_turns,
        temperature=args.temperature,
        max_tokens=args.reply_tokens,
        sub_temperature=args.sub_temperature,
        max_concurrency=args.max_concurrency,
        max_depth=args.max_depth,
        sandbox=args.sandbox,
        prompt_profile=args.prompt_profile,
        check_answers=args.check,
    )


def handle(args: argparse.Namespace) -> int:
    from rlmagent.batch import BatchEnded, BatchProgress, iter_batch
    from rlmagent.budget import Budget
    from rlmagent.events import EventBus

    bus = EventBus()
    summaries: list[Any] = []
    bus.subscribe(lambda e: summaries.append(getattr(e, "summary", None)), BatchEnded)
    display = None
    try:
        settings = settings_from(args)
        budget = Budget(
            max_calls=args.max_calls,
            max_tokens=args.max_tokens,
            max_cost_usd=args.max_cost,
            max_seconds=args.max_seconds,
        )
        if not args.quiet and not args.json:
            display = BatchProgress()
            bus.subscribe(display)
        for _ in iter_batch(
            args.jobs,
            settings=settings,
            executor=args.executor,
            address=args.address,
            concurrency=args.concurrency,
            budget=budget,
            out=args.out,
            max_retries=args.max_retries,
            job_cpus=args.job_cpus,
            bus=bus,
        ):
            pass
    except UsageError as exc:
        print(f"rlm: error: {exc}", file=sys.stderr)
        return 2
    except RLMError as exc:
        print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"rlm: interrupted; rerun with --out {args.out} to go on", file=sys.stderr)
        return 130
    finally:
        if display is not None:
            display.close()
    summary = summaries[-1]
    if args.json:
        print(json.dumps({**summary.to_dict(), "out": args.out}))
    if summary.error:
        return 1
    return 4 if summary.budget else 0
