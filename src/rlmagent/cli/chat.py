"""``rlm chat --context PATH [--context PATH ...]``: questions one after another about the
same contexts, in one session (one REPL: what the model defined stays).

Questions are read line by line (with readline history on a terminal); ``/vars``,
``/contexts``, ``/reset``, ``/cost``, ``/help``, ``/quit``. Ctrl-C cancels the question
being answered and keeps the session; Ctrl-D (end of input) quits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlmagent.budget import Budget
from rlmagent.cli.common import add_engine_options, build_agent, read_contexts, usage_line
from rlmagent.cli.contexts import add_context_options
from rlmagent.console import printable, printable_json
from rlmagent.context import summary
from rlmagent.errors import BudgetExceeded, RLMError, UsageError
from rlmagent.events import EventBus
from rlmagent.session import Session
from rlmagent.types import AgentResult, to_dict

PROMPT = "rlm> "
HISTORY_LENGTH = 1_000
HELP = """\
Ask a question about the contexts, or:
  /vars      the variables the model has defined in the REPL
  /contexts  the contexts and their sizes
  /reset     a fresh REPL and an empty history (the contexts stay)
  /cost      calls, tokens and cost of the session so far
  /help      this text
  /quit      the end (Ctrl-D too); Ctrl-C cancels the question being answered"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="ask questions one after another about the same contexts (one REPL)",
        description="An interactive session: each question is answered in the same REPL, "
        "so the variables and helpers the model wrote stay, and earlier answers are in "
        "`history`. Type /help at the prompt for the commands.",
    )
    add_context_options(parser)
    add_engine_options(parser)
    session = parser.add_argument_group("budget of the whole session (every question)")
    session.add_argument("--session-calls", type=int, default=None, metavar="N")
    session.add_argument("--session-tokens", type=int, default=None, metavar="N")
    session.add_argument("--session-cost", type=float, default=None, metavar="USD")
    parser.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    if "-" in (args.context or []):
        print(
            "rlm: error: `rlm chat` reads its questions from stdin, so a context cannot come "
            "from there: give a file or a directory",
            file=sys.stderr,
        )
        return 2
    bus = EventBus()
    try:
        loaded = read_contexts(args)
        budget = Budget(
            max_calls=args.session_calls,
            max_tokens=args.session_tokens,
            max_cost_usd=args.session_cost,
        )
        agent = build_agent(args, bus)
        session = agent.session(contexts=loaded.contexts, budget=budget)
    except UsageError as exc:
        print(f"rlm: error: {exc}", file=sys.stderr)
        return 2
    except RLMError as exc:
        print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    save_history = _readline() if sys.stdin.isatty() else (lambda: None)
    try:
        return Chat(args, session, bus).loop()
    finally:
        session.close()
        save_history()


class Chat:
    """The read-ask-print loop of one session."""

    def __init__(self, args: argparse.Namespace, session: Session, bus: EventBus) -> None:
        self.args = args
        self.session = session
        self.bus = bus
        self.quiet = bool(args.quiet or args.json)
        self.prompt = PROMPT if sys.stdin.isatty() else ""

    def say(self, text: str) -> None:
        """A note for the user (stderr, so that stdout holds only answers)."""
        if not self.quiet:
            print(text, file=sys.stderr)

    def loop(self) -> int:
        names = ", ".join(self.session.contexts) or "none"
        self.say(f"session {self.session.id} · contexts: {printable(names)} · /help for commands")
        while True:
            try:
                line = input(self.prompt)
            except EOFError:
                if self.prompt:
                    print(file=sys.stderr)
                return 0
            except KeyboardInterrupt:  # at the prompt: a fresh line, as in Python's REPL
                print(file=sys.stderr)
                continue
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return 0
                continue
            self.ask(line)

    def ask(self, question: str) -> None:
        display, unsubscribe = self._progress()
        try:
            result = self.session.ask(question)
        except KeyboardInterrupt:
            self.say("rlm: question cancelled; the session goes on")
            return
        except BudgetExceeded as exc:
            print(f"rlm: budget: {exc}", file=sys.stderr)
            return
        except UsageError as exc:
            print(f"rlm: error: {exc}", file=sys.stderr)
            return
        except RLMError as exc:
            print(f"rlm: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        finally:
            unsubscribe()
            if display is not None:
                display.close()
        self.answer(result)

    def answer(self, result: AgentResult) -> None:
        if self.args.json:
            payload = {
                "answer": result.content,
                "stop_reason": result.stop_reason,
                "turns": result.turns,
                "usage": to_dict(result.usage),
                "metadata": to_dict(result.metadata),
            }
            print(printable_json(json.dumps(payload, ensure_ascii=False)), flush=True)
            return
        print(printable(result.content), flush=True)
        self.say(usage_line(result))

    def _progress(self) -> tuple[Any, Callable[[], None]]:
        if self.quiet:
            return None, lambda: None
        from rich.console import Console

        from rlmagent.console import ConsoleProgress

        display = ConsoleProgress(Console(stderr=True), show_answer=False, show_summary=False)
        return display, self.bus.subscribe(display)

    # -- commands ---------------------------------------------------------------------

    def command(self, line: str) -> bool:
        """Run a /command; False ends the chat."""
        name = line.split()[0].lower()
        if name in ("/quit", "/exit"):
            return False
        handler = {
            "/vars": self.vars,
            "/contexts": self.contexts,
            "/reset": self.reset,
            "/cost": self.cost,
            "/help": lambda: print(HELP),
        }.get(name)
        if handler is None:
            print(f"rlm: unknown command {printable(name)}; /help lists them", file=sys.stderr)
        else:
            handler()
        return True

    def vars(self) -> None:
        variables = self.session.variables
        if not variables:
            print("(no variables yet)")
        for v in variables:
            print(printable(v.describe()))

    def contexts(self) -> None:
        info = self.session.context_info
        if not info:
            print("(no contexts)")
        for index, (name, described) in enumerate(info.items()):
            alias = " (context)" if index == 0 else ""
            print(printable(f"contexts[{name!r}]{alias}: {summary(described)}"))

    def reset(self) -> None:
        self.session.reset()
        print("a fresh REPL: variables and history are gone; the contexts stay")

    def cost(self) -> None:
        usage = self.session.usage
        money = "unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
        print(
            f"{len(self.session.history)} questions answered · calls {usage.calls} · tokens "
            f"{usage.prompt_tokens:,} in / {usage.completion_tokens:,} out · cost {money}"
        )
        budget = self.session.budget
        if budget is not None:
            spent = self.session.spent()
            parts = [
                f"{what} {spent[key]:g} of {limit:g}"
                for what, key, limit in (
                    ("calls", "calls", budget.max_calls),
                    ("tokens", "tokens", budget.max_tokens),
                    ("cost", "cost_usd", budget.max_cost_usd),
                )
                if limit is not None
            ]
            print("session budget: " + ", ".join(parts))


def history_path() -> Path:
    """The readline history of ``rlm chat``: beside the run log (``$RLMAGENT_HOME``)."""
    home = os.environ.get("RLMAGENT_HOME")
    if home is None:
        import platformdirs

        home = platformdirs.user_data_dir("rlmagent", appauthor=False)
    return Path(home).expanduser() / "chat_history"


def _readline() -> Callable[[], None]:
    """Line editing and history for ``input()``; returns what saves the history."""
    try:
        import readline
    except ImportError:  # not on every platform
        return lambda: None
    path = history_path()
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)

    def save() -> None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(path)

    return save
