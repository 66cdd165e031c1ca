"""``rlm bench``: generate tasks, run the RLM against baselines, report score and cost.

::

    rlm bench list
    rlm bench generate --task sniah --tokens 32k --n 10 --seed 0 --out items.jsonl
    rlm bench run --task sniah --tokens 8k,32k,128k --method rlm,direct \\
        --model openai:gpt-5-mini --n 10 --out results.jsonl
    rlm bench report results.jsonl --plot results.png

A thin shell over :mod:`rlmagent.bench`; see docs/BENCH.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from rlmagent.errors import RLMError, UsageError
from rlmagent.settings import DEFAULT_MAX_TURNS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmark the RLM against baselines on generated long-context tasks"
    )
    actions = parser.add_subparsers(dest="bench_action", metavar="ACTION")
    parser.set_defaults(func=lambda args: _usage(parser))

    listing = actions.add_parser("list", help="list the task families and methods")
    listing.set_defaults(func=handle_list)

    gen = actions.add_parser("generate", help="write generated items (with gold) as JSONL")
    gen.add_argument("--task", required=True, help="a task family (see `rlm bench list`)")
    gen.add_argument("--tokens", default="8k", help="size(s), e.g. 8k or 8k,32k (default 8k)")
    gen.add_argument("--n", type=int, default=1, help="items per size (default 1)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--out", required=True, metavar="FILE", help="JSONL file to write")
    gen.set_defaults(func=handle_generate)

    run = actions.add_parser("run", help="run methods on generated items into a JSONL file")
    run.add_argument("--task", default=None, help="task family or families, comma-separated")
    run.add_argument(
        "--items",
        default=None,
        metavar="FILE",
        help="items written by `rlm bench generate` (instead of --task)",
    )
    run.add_argument("--tokens", default="8k", help="sizes, e.g. 8k,32k,128k (default 8k)")
    run.add_argument(
        "--method", default="rlm,direct", help="methods, comma-separated (default rlm,direct)"
    )
    run.add_argument("--n", type=int, default=10, help="items per task and size (default 10)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="results JSONL (appended; finished items are skipped on rerun)",
    )
    run.add_argument(
        "--model",
        metavar="SPEC",
        default=None,
        help="provider:model (default: $RLM_MODEL, else the embedded local model)",
    )
    run.add_argument(
        "--sub-model",
        metavar="SPEC",
        default=None,
        help="model of the RLM's sub-calls (default: $RLM_SUB_MODEL, else --model)",
    )
    run.add_argument(
        "--base-url",
        metavar="URL",
        default=None,
        help="endpoint of an OpenAI/Anthropic-compatible server",
    )
    run.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="TOKENS",
        help="the model's context window (default: the engine's, else per provider)",
    )
    run.add_argument(
        "--concurrency", type=int, default=4, metavar="N", help="items run at once (default 4)"
    )
    run.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="where items are scored: here, or each a Ray task (pip install rlmagent[ray])",
    )
    run.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="Ray cluster for --executor ray (default: a local Ray for this run)",
    )
    run.add_argument(
        "--max-tokens",
        type=int,
        default=1024,
        metavar="N",
        help="answer tokens of the baselines (default 1024)",
    )
    run.add_argument(
        "--overflow-check",
        choices=("estimate", "engine"),
        default="estimate",
        help="when `direct` overflows: estimated tokens (chars/4) + --max-tokens > --window "
        "(default), or the engine's own context-length error (the real tokenizer)",
    )
    run.add_argument(
        "--max-turns", type=int, default=DEFAULT_MAX_TURNS, metavar="N", help="RLM root turns"
    )
    run.add_argument(
        "--rlm-max-calls",
        type=int,
        default=None,
        metavar="N",
        help="cap the engine calls of one RLM item (default: no cap)",
    )
    run.add_argument(
        "--rlm-max-seconds",
        type=float,
        default=None,
        metavar="S",
        help="cap the wall time of one RLM item; past it the item is an error (score 0)",
    )
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="RLM answer checks (default: on with the small prompt profile)",
    )
    run.add_argument(
        "--sandbox",
        choices=("subprocess", "inprocess"),
        default="subprocess",
        help="where RLM code runs (inprocess: NO isolation)",
    )
    run.add_argument(
        "--trace-dir",
        default=None,
        metavar="DIR",
        help="write each RLM item's trajectory to DIR/<item>-<method>.jsonl (rlm view FILE)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="no per-item progress")
    run.set_defaults(func=handle_run)

    rep = actions.add_parser("report", help="table and plot of a results file")
    rep.add_argument("results", metavar="RESULTS", help="JSONL written by `rlm bench run`")
    rep.add_argument(
        "--plot",
        metavar="PNG",
        default=None,
        help="where to write the plot (default: RESULTS with .png)",
    )
    rep.add_argument("--no-plot", action="store_true", help="print the table only")
    rep.set_defaults(func=handle_report)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _errors(handler: Any) -> Any:
    """Turn library errors into a message and an exit code."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except UsageError as exc:
            print(f"rlm bench: error: {exc}", file=sys.stderr)
            return 2
        except RLMError as exc:
            print(f"rlm bench: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:
            print(f"rlm bench: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("rlm bench: interrupted (finished results are kept)", file=sys.stderr)
            return 130

    return wrapped


@_errors
def handle_list(args: argparse.Namespace) -> int:
    from rlmagent.bench import METHODS, TASKS

    print("Tasks (rlm bench generate/run --task NAME):")
    for family in TASKS.values():
        print(f"  {family.name:<13} {family.description} [{family.scoring}]")
    print("\nMethods (rlm bench run --method A,B):")
    for name, description in METHODS.items():
        print(f"  {name:<13} {description}")
    print("\nSizes are estimated tokens (characters / 4); 8k = 8,192, 1m = 1,048,576.")
    return 0


@_errors
def handle_generate(args: argparse.Namespace) -> int:
    from rlmagent.bench import generate_items, parse_token_list, write_items

    started = time.perf_counter()
    items = [
        item
        for tokens in parse_token_list(args.tokens)
        for item in generate_items(args.task, tokens, args.n, args.seed)
    ]
    count = write_items(items, args.out)
    elapsed = time.perf_counter() - started
    print(f"wrote {count} {args.task} item(s) to {args.out} in {elapsed:.2f} s", file=sys.stderr)
    return 0


def _items(args: argparse.Namespace) -> list[Any]:
    from rlmagent.bench import generate_items, parse_token_list, read_items

    if args.items:
        return list(read_items(args.items))
    if not args.task:
        raise UsageError("give --task (e.g. --task sniah) or --items FILE")
    sizes = parse_token_list(args.tokens)
    tasks = [t.strip() for t in args.task.split(",") if t.strip()]
    return [
        item
        for task in tasks
        for tokens in sizes
        for item in generate_items(task, tokens, args.n, args.seed)
    ]


def _models(args: argparse.Namespace, methods: list[str]) -> Any:
    from rlmagent.bench import Models
    from rlmagent.engines import get_engine

    spec = args.model or os.environ.get("RLM_MODEL") or None
    sub_spec = args.sub_model or os.environ.get("RLM_SUB_MODEL") or spec
    options: dict[str, Any] = {"base_url": args.base_url} if args.base_url else {}
    engine = get_engine(spec, **options)
    if not any(m.startswith("rlm") for m in methods):
        return Models(engine, engine.model)
    # A separate engine object for sub-calls (for the local model it keeps the root's
    # prompt cache warm; for a server it is a second client).
    sub_engine = get_engine(sub_spec, **options)
    return Models(engine, engine.model, sub_engine, sub_engine.model)


def _progress(quiet: bool) -> Any:
    scores: dict[str, list[float]] = defaultdict(list)

    def show(result: Any, progress: Any) -> None:
        scores[f"{result.task} {result.tokens} {result.method}"].append(result.score)
        if quiet:
            return
        from rlmagent.bench import format_tokens

        label = f"{result.task} {format_tokens(result.tokens)} {result.method}"
        running = scores[f"{result.task} {result.tokens} {result.method}"]
        mean = 100 * sum(running) / len(running)
        note = "" if result.status == "ok" else f" [{result.status}]"
        print(
            f"[{progress.done}/{progress.total}] {label} #{result.index}: "
            f"score {result.score:.2f}{note} in {result.wall_s:.1f} s "
            f"(mean {mean:.0f}% over {len(running)}; {progress.elapsed_s:.0f} s elapsed)",
            file=sys.stderr,
        )

    return show


def _budget(args: argparse.Namespace) -> Any:
    if args.rlm_max_calls is None and args.rlm_max_seconds is None:
        return None
    from rlmagent.budget import Budget

    return Budget(max_calls=args.rlm_max_calls, max_seconds=args.rlm_max_seconds)


@_errors
def handle_run(args: argparse.Namespace) -> int:
    from rlmagent.bench import (
        METHODS,
        MethodConfig,
        format_table,
        read_results,
        run_bench,
        summarize,
    )
    from rlmagent.bench.methods import default_window
    from rlmagent.settings import root_max_tokens_for, sub_temperature_for

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(METHODS)}")
    items = _items(args)
    models = _models(args, methods)
    window = args.window
    if window is None:
        window, source = default_window(models.engine, models.model)
        print(f"window: {window:,} tokens ({source}; set --window to change)", file=sys.stderr)
    sandbox = None
    if args.sandbox == "inprocess":
        from rlmagent.sandbox import InProcessSandbox

        sandbox = InProcessSandbox
    config = MethodConfig(
        window=window,
        rlm_max_tokens=root_max_tokens_for(models.engine),
        sub_temperature=sub_temperature_for(models.sub_engine or models.engine),
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        max_turns=args.max_turns,
        sandbox=sandbox,
        overflow_check=args.overflow_check,
        budget=_budget(args),
        check_answers=args.check,
        trace_dir=args.trace_dir,
    )
    remote = None
    if args.executor == "ray":
        from rlmagent.batch.bench_ray import EngineSpecs, RayBench

        spec = args.model or os.environ.get("RLM_MODEL") or None
        specs = EngineSpecs(
            spec,
            args.sub_model or os.environ.get("RLM_SUB_MODEL") or spec,
            {"base_url": args.base_url} if args.base_url else {},
            with_sub=models.sub_engine is not None,
        )
        remote = RayBench(specs, address=args.address)
    elif args.address is not None:
        raise UsageError("--address is for --executor ray")
    try:
        results = run_bench(
            items,
            methods,
            models,
            config=config,
            out=args.out,
            concurrency=args.concurrency,
            on_result=_progress(args.quiet),
            remote=remote.runner() if remote is not None else None,
        )
    finally:
        if remote is not None:
            remote.close()
    print(f"{len(results)} new result(s) in {args.out}", file=sys.stderr)
    print(format_table(summarize(read_results(args.out))))
    return 0


def _can_plot() -> bool:
    try:
        import matplotlib.figure  # noqa: F401
    except ImportError:
        return False
    return True


@_errors
def handle_report(args: argparse.Namespace) -> int:
    from rlmagent.bench import format_table, plot, read_results, summarize

    path = Path(args.results)
    if not path.exists():
        raise UsageError(f"no results file at {path}")
    rows = summarize(read_results(path))
    if not rows:
        raise UsageError(f"{path} holds no results")
    print(format_table(rows))
    if args.no_plot:
        return 0
    if args.plot is None and not _can_plot():
        from rlmagent.extras import install_hint

        hint = install_hint("bench")
        print(f"rlm: no plot: it needs matplotlib, in the bench extra: {hint}", file=sys.stderr)
        return 0
    target = plot(rows, args.plot or path.with_suffix(".png"))
    print(f"plot: {target}", file=sys.stderr)
    return 0
