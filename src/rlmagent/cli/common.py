"""What ``rlm run`` and ``rlm demo`` share: engine options, building the agent, output."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from rlmagent.agent import RLMAgent
from rlmagent.cli.contexts import Loaded, load_contexts
from rlmagent.errors import BudgetExceeded, EngineNotAvailable, RLMError, UsageError
from rlmagent.events import Event, EventBus, RunEnded
from rlmagent.printable import printable, printable_json
from rlmagent.settings import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_TOKENS,
    DEFAULT_MAX_TURNS,
    DEFAULT_SUB_TEMPERATURE,
    DEFAULT_TEMPERATURE,
    LOCAL_ROOT_MAX_TOKENS,
    PROMPT_PROFILES,
    root_max_tokens_for,
    root_temperature_for,
    sub_temperature_for,
)
from rlmagent.types import AgentResult, to_dict


class BaseUrls(argparse.Action):
    """``--base-url``: a string when given once, a list when repeated (several servers)."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        seen = getattr(namespace, self.dest, None)
        if seen is None:
            setattr(namespace, self.dest, value)
        else:
            setattr(namespace, self.dest, [*([seen] if isinstance(seen, str) else seen), value])


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="SPEC",
        default=None,
        help="root model as provider:model (default: $RLM_MODEL, else the embedded local model)",
    )
    parser.add_argument(
        "--sub-model",
        metavar="SPEC",
        default=None,
        help="model for llm_query/llm_batch (default: $RLM_SUB_MODEL, else --model)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        action=BaseUrls,
        default=None,
        help="endpoint of an OpenAI/Anthropic-compatible server; repeat it for several "
        "servers of the same model (each request to the least busy one)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="read the API key from environment variable VAR (default: the provider's own, "
        "e.g. OPENAI_API_KEY)",
    )
    parser.add_argument("--max-turns", type=int, default=DEFAULT_MAX_TURNS, metavar="N")
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help=f"root temperature (default {DEFAULT_TEMPERATURE}; 0 for the local model)",
    )
    parser.add_argument(
        "--sub-temperature",
        type=float,
        default=None,
        help=f"temperature of sub-calls (default {DEFAULT_SUB_TEMPERATURE}; 0 for the local model)",
    )
    parser.add_argument(
        "--reply-tokens",
        type=int,
        default=None,
        metavar="N",
        help=f"longest root reply in tokens (default {DEFAULT_MAX_TOKENS}; "
        f"{LOCAL_ROOT_MAX_TOKENS} for the local model)",
    )
    parser.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY, metavar="N")
    parser.add_argument(
        "--sandbox",
        choices=("subprocess", "bwrap", "landlock", "process", "inprocess"),
        default="subprocess",
        help="where model code runs: subprocess (bubblewrap, else Landlock, else an error), "
        "one of those tiers by name, or process / inprocess (NO isolation)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quiet", "-q", action="store_true", help="show only the answer")
    parser.add_argument("--trace", metavar="PATH", default=None, help="write a JSONL trajectory")
    parser.add_argument(
        "--no-log", action="store_true", help="do not keep this run in the run log (rlm runs)"
    )
    parser.add_argument(
        "--max-depth",
        type=int,
        default=DEFAULT_MAX_DEPTH,
        metavar="N",
        help="recursion depth: 1 (default) = sub-calls are plain model calls; 2 or more "
        "lets rlm_query/rlm_batch start child RLMs",
    )
    parser.add_argument(
        "--prompt-profile",
        choices=PROMPT_PROFILES,
        default=None,
        help="system prompt: small (worked examples, for small local roots) or capable "
        "(the RLM strategies, for frontier models); default by engine",
    )
    parser.add_argument(
        "--check",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="check answers: question a FINAL that no output shows and have a sub-call "
        "check that the outputs support it (default: on with the small profile)",
    )
    parser.add_argument(
        "--cache",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="reuse temperature-0 answers from a SQLite file (PATH; alone: the user cache dir)",
    )
    limits = parser.add_argument_group("budget, over the root and every nested call")
    limits.add_argument("--max-calls", type=int, default=None, metavar="N")
    limits.add_argument("--max-tokens", type=int, default=None, metavar="N")
    limits.add_argument("--max-cost", type=float, default=None, metavar="USD")
    limits.add_argument("--max-seconds", type=float, default=None, metavar="S")


def build_agent(args: argparse.Namespace, bus: EventBus) -> RLMAgent:
    from rlmagent.budget import Budget
    from rlmagent.cache import default_cache_path
    from rlmagent.engines import get_engine
    from rlmagent.sandbox import InProcessSandbox, SubprocessSandbox

    spec = args.model or os.environ.get("RLM_MODEL") or None
    sub_spec = args.sub_model or os.environ.get("RLM_SUB_MODEL") or spec
    options: dict[str, Any] = {"base_url": args.base_url} if args.base_url else {}
    key_env = getattr(args, "api_key_env", None)
    if key_env:
        if not os.environ.get(key_env):
            raise UsageError(
                f"--api-key-env {key_env}: the environment variable {key_env} is not set"
            )
        options["api_key"] = os.environ[key_env]
    engine = get_engine(spec, **options)
    # A separate engine object for sub-calls: for the local model it keeps the root's
    # prompt cache warm (FACTS.md); for servers a second client costs nothing.
    sub_engine = get_engine(sub_spec, **options)
    temperature = args.temperature
    if temperature is None:
        temperature = root_temperature_for(engine)
    sub_temperature = args.sub_temperature
    if sub_temperature is None:
        sub_temperature = sub_temperature_for(sub_engine)
    reply_tokens = args.reply_tokens or root_max_tokens_for(engine)
    agent = RLMAgent(
        engine,
        engine.model,
        sub_engine=sub_engine,
        sub_model=sub_engine.model,
        bus=bus,
        max_turns=args.max_turns,
        temperature=temperature,
        max_tokens=reply_tokens,
        sub_temperature=sub_temperature,
        max_concurrency=args.max_concurrency,
        sandbox=InProcessSandbox()
        if args.sandbox == "inprocess"
        else SubprocessSandbox(isolation="auto" if args.sandbox == "subprocess" else args.sandbox),
        trace=args.trace,
        max_depth=args.max_depth,
        budget=Budget(
            max_calls=args.max_calls,
            max_tokens=args.max_tokens,
            max_cost_usd=args.max_cost,
            max_seconds=args.max_seconds,
        ),
        cache=None if args.cache is None else (args.cache or default_cache_path()),
        prompt_profile=args.prompt_profile,
        check_answers=args.check,
    )
    if args.trace is None and not args.no_log:  # only once the settings were accepted
        from rlmagent.trace import new_run_path

        agent.trace = new_run_path(run_log_dir())
    return agent


def run_log_dir() -> Any:
    """The run log's directory (``rlm runs``): ``$RLMAGENT_HOME/runs`` or the user's."""
    from rlmagent.trace import runs_dir

    return runs_dir(os.environ.get("RLMAGENT_HOME") or None)


def settle_run_log(args: argparse.Namespace, agent: RLMAgent | None) -> None:
    """After a run: drop a run-log file nothing was written to (a rejected invocation);
    keep a run written with --trace in the run log as a link to its file."""
    if agent is None or agent.trace is None or getattr(args, "no_log", False):
        return
    from rlmagent.trace import discard_if_unused, link_run

    if args.trace is None:
        discard_if_unused(agent.trace)
    else:
        link_run(run_log_dir(), agent.trace)


def progress(args: argparse.Namespace, bus: EventBus) -> Any:
    """Subscribe the live display (on stderr) unless --quiet or --json."""
    if args.quiet or args.json:
        return None
    from rich.console import Console

    from rlmagent.console import ConsoleProgress

    display = ConsoleProgress(Console(stderr=True), show_answer=False, show_summary=False)

    def show(event: Event) -> None:
        # how the run ended is said once, by the CLI (verdict, execute), not also here
        if isinstance(event, RunEnded) and event.parent_id is None and event.error:
            event = dataclasses.replace(event, error=None, result=None)
        display(event)

    bus.subscribe(show)
    return display


EXIT_ANSWER = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
EXIT_BUDGET = 4
EXIT_INTERRUPTED = 130
"""Exit codes of ``rlm run`` (README, "Exit codes"): an answer; an error; a rejected
invocation; no confident answer (turn limit, stalled); the budget ran out; Ctrl-C."""

CONFIDENT = frozenset({"final", "final_repeated", "answer_without_final"})
_FLAGS = {
    "calls": "--max-calls",
    "tokens": "--max-tokens",
    "cost": "--max-cost",
    "seconds": "--max-seconds",
}


def exit_code(result: AgentResult) -> int:
    """The exit code for a run that returned ``result``."""
    reason = result.stop_reason
    if reason is None or reason in CONFIDENT:
        return EXIT_ANSWER
    if reason == "budget":
        return EXIT_BUDGET
    if reason == "cancelled":
        return EXIT_INTERRUPTED
    return EXIT_ERROR if reason == "error" else EXIT_NO_ANSWER


def verdict(result: AgentResult) -> str | None:
    """One line for stderr when the run ended without a confident answer, else None."""
    reason = result.stop_reason
    if reason is None or reason in CONFIDENT:
        return None
    if reason == "max_turns":
        why = f"the turn limit ({result.turns - 1}, --max-turns) came before a FINAL"
    elif reason == "stalled":
        why = "the model kept running the same code with the same output"
    elif reason == "budget":
        limit = result.budget_limit or "a"
        why = f"the {limit} budget ran out ({_FLAGS.get(limit, 'the --max-* limits')})"
    else:
        why = f"the run stopped ({reason})"
    if result.content.strip():
        return f"rlm: no confident answer: {why}; the answer shown is its reply when asked for one"
    return f"rlm: no answer: {why}"


RESULT_FIELDS = (
    "stop_reason",
    "run_id",
    "elapsed_s",
    "isolation",
    "isolation_fallback",
    "partial_answer",
    "budget_limit",
    "budget",
    "answer_checked",
    "value",
)
"""The typed fields of a result that ``--json`` prints beside the answer."""


def usage_line(result: AgentResult) -> str:
    usage = result.usage
    cost = "unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    return (
        f"turns {result.turns} · calls {usage.calls} · tokens {usage.prompt_tokens:,} in / "
        f"{usage.completion_tokens:,} out · cost {cost} · "
        f"{result.elapsed_s:.1f} s"
    )


def _json(value: Any) -> str:
    return json.dumps(to_dict(value), ensure_ascii=False)


def report(
    args: argparse.Namespace, result: AgentResult, extra: dict[str, Any] | None = None
) -> None:
    if args.json:
        payload = {
            "answer": result.content,
            "turns": result.turns,
            "usage": to_dict(result.usage),
            **{name: to_dict(getattr(result, name)) for name in RESULT_FIELDS},
            "metadata": to_dict(result.metadata),
            **(extra or {}),
        }
        payload["confident"] = verdict(result) is None
        print(printable_json(json.dumps(payload, ensure_ascii=False)))  # model text: data
        line = verdict(result)
        if line is not None:
            print(line, file=sys.stderr)
        return
    value = result.value  # a typed answer (--schema) prints as JSON
    text = result.content if value is None or isinstance(value, str) else _json(value)
    if text.strip():
        print(printable(text))  # the model's text: no terminal controls (--json is exact)
    line = verdict(result)
    if line is not None:  # said even with --quiet: the answer is not one to rely on
        print(line, file=sys.stderr)
    if not args.quiet:
        print(usage_line(result), file=sys.stderr)


def execute(
    args: argparse.Namespace,
    question: str,
    context: Any,
    *,
    output_type: Any = None,
    contexts: Mapping[str, Any] | None = None,
) -> AgentResult | int:
    """Build the agent, show progress, run; an error becomes a message and an exit code.

    Several ``contexts`` (by name) are answered in a one-question session, whose REPL
    holds them all in ``contexts`` (the first is also ``context``)."""
    bus = EventBus()
    ended: list[Event] = []
    bus.subscribe(ended.append, RunEnded)
    agent: RLMAgent | None = None
    try:
        agent = build_agent(args, bus)
        display = progress(args, bus)
        try:
            if contexts is not None and len(contexts) > 1:
                with agent.session(contexts=contexts) as session:
                    return session.ask(question, output_type=output_type)
            return agent.run(question, context=context, output_type=output_type)
        finally:
            if display is not None:
                display.close()
    except (UsageError, EngineNotAvailable) as exc:  # nothing ran: fix the invocation
        print(f"rlm: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BudgetExceeded as exc:
        print(f"rlm: no answer: the budget ran out: {exc}", file=sys.stderr)
        return EXIT_BUDGET
    except RLMError as exc:
        print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # the run was cancelled and its sandboxes killed
        root = [
            e.result
            for e in ended
            if isinstance(e, RunEnded) and e.parent_id is None and e.result is not None
        ]
        answer = root[-1].partial_answer if root else None
        if answer is None:
            print("rlm: interrupted (no answer yet)", file=sys.stderr)
        else:
            print("rlm: interrupted; the model's last FINAL value:", file=sys.stderr)
            print(printable(answer))
        return EXIT_INTERRUPTED
    finally:
        settle_run_log(args, agent)


def read_contexts(args: argparse.Namespace) -> Loaded:
    """Every ``--context`` (files, directories, ``-``), checked and read; the notes (what
    a directory's cap left out, the files that are not text) go to stderr unless --quiet.
    A problem is a UsageError naming the file (see cli/contexts.py)."""
    loaded = load_contexts(args)
    if not getattr(args, "quiet", False):
        for note in loaded.notes:
            print(f"rlm: {note}", file=sys.stderr)
    return loaded
