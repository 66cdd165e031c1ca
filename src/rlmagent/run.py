"""One run of the root loop: ask the root model, run its code, observe; until FINAL.

:class:`Run` sequences the turns of one (sub-)run in a recursion tree; what a turn
means is decided by :func:`rlmagent.turns.decide_turn`. Child runs are started through
the ``spawn_child`` callable this module hands to :class:`~rlmagent.host.HostFunctions`.
How a run opens is :mod:`rlmagent.opening`; its root calls (compaction first) are
:mod:`rlmagent.rootcall`; a reply's cells are played by :mod:`rlmagent.cells`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, TypeVar

from rlmagent import parsing, prompts
from rlmagent.briefing import Briefing
from rlmagent.budget import BudgetLedger, UsageMeter
from rlmagent.cells import Cells, shown
from rlmagent.checks import AnswerChecker, typed_review
from rlmagent.compaction import Compaction
from rlmagent.errors import BudgetExceeded, RLMError
from rlmagent.events import Notice, RunEnded, RunStarted, TurnEnded, TurnStarted
from rlmagent.host import HostFunctions
from rlmagent.opening import context_info, open_repl, opening_message, system_message
from rlmagent.repl import Repl
from rlmagent.rootcall import RootCalls
from rlmagent.sandbox.base import Session
from rlmagent.settings import RunSettings
from rlmagent.tree import Tree
from rlmagent.turns import TurnState, decide_turn, plain_answer
from rlmagent.typed import OutputSpec, TypedAnswer
from rlmagent.types import AgentResult, Cell, Completion, Message, Step

T = TypeVar("T")


class Run:
    """The state of one run (one root loop) in a tree."""

    def __init__(
        self,
        settings: RunSettings,
        tree: Tree,
        question: str,
        context: Any,
        *,
        depth: int = 0,
        parent_id: str | None = None,
        meter: UsageMeter | None = None,
        output_type: OutputSpec | None = None,
        repl: Repl | None = None,
        briefing: Briefing | None = None,
    ) -> None:
        """``repl``: a session's REPL, kept after the run (else the run starts its own
        and shuts it down); ``briefing``: what the session's first message says."""
        self.settings = settings
        self.tree = tree
        self.question = question
        self.context = context
        self.run_id = uuid.uuid4().hex[:12]
        self.depth = depth
        self.parent_id = parent_id
        self.meter = meter or tree.meter
        self.functions = HostFunctions(
            settings,
            tree,
            run_id=self.run_id,
            depth=depth,
            parent_id=parent_id,
            meter=self.meter,
            spawn_child=self._spawn_child,
            context=context,
        )
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.repl = repl if repl is not None else Repl(settings.sandbox)
        self.briefing = briefing
        self.cells = Cells(
            tree,
            self.repl,
            self.functions,
            ev=self._ev(),
            check_answers=settings.check_answers,
        )
        self.root_calls = RootCalls(
            settings,
            tree,
            question,
            depth=depth,
            meter=self.meter,
            ev=self._ev(),
            notice=self._notice,
            query=self.functions.query,
            take_calls=self.functions.take_calls,
        )
        self.compactions: list[Compaction] = self.root_calls.compactions
        """The compactions made before root calls (the list ``root_calls`` appends to)."""
        self.stop_reason: str | None = None
        self.budget_limit: str | None = None
        self.isolation: str | None = None
        self.isolation_fallback: str | None = None
        self.best_answer: str | None = None
        """The last FINAL value the model wrote (confirmed or not): the partial answer."""
        self.partial: AgentResult | None = None
        self.checker = AnswerChecker(self.functions.query, question, self._notice)
        self._seen: list[str] = []
        """What the model has seen: its first message, then every cell's output."""
        self.typed = TypedAnswer(output_type) if output_type is not None else None
        """The typed-answer check of the final answer (typed.py), when output_type is set."""

    def _spawn_child(self, prompt: str, context: Any, parent_id: str, meter: UsageMeter) -> Run:
        return Run(
            self.settings.children,
            self.tree,
            prompt,
            context,
            depth=self.depth + 1,
            parent_id=parent_id,
            meter=meter,
        )

    def _ev(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "depth": self.depth, "parent_id": self.parent_id}

    def _notice(self, message: str) -> None:
        self.tree.publish(Notice(**self._ev(), message=message))

    async def run(self) -> AgentResult:
        settings = self.settings
        info = context_info(self.context, self.briefing)
        self.tree.publish(
            RunStarted(
                **self._ev(),
                question=self.question,
                context_info=info,
                model=settings.root.model,
                sub_model=settings.sub.model,
                settings=settings.summary(max_depth=self.tree.max_depth),
            )
        )
        try:
            try:
                first = await self._open(info)
                if self.typed is not None:  # typed answers: the expected type
                    first += "\n\n" + self.typed.spec.describe()
                self._seen.append(first)
                messages: list[Message] = [
                    {"role": "system", "content": system_message(settings, self.functions)},
                    {"role": "user", "content": first},
                ]
                content = await self._loop(messages)
            finally:
                if self.briefing is None:
                    await self.repl.shutdown(self.functions.cancel)
                else:
                    await self.repl.release(self.functions.cancel)
        except BaseException as exc:
            self.partial = partial = self._result("", stop_reason=self._failure_reason(exc))
            if isinstance(exc, RLMError):
                exc.partial = partial
            why = "the run was cancelled" if isinstance(exc, asyncio.CancelledError) else exc
            self.tree.publish(
                RunEnded(**self._ev(), result=partial, error=f"{type(exc).__name__}: {why}")
            )
            raise
        result = self._result(content)
        self.tree.publish(RunEnded(**self._ev(), result=result))
        return result

    async def _open(self, info: dict[str, Any]) -> str:
        """Start (or, in a session, attach to and prepare) the REPL; the first message."""
        session = await open_repl(
            self.repl, self.functions, self.context, self.settings.max_output_chars
        )
        self._isolation(session)
        first, briefing = await opening_message(
            self.question, info, self.repl, self.briefing, self._notice
        )
        if briefing is not None:
            self.briefing = briefing
        return first

    def _isolation(self, session: Session) -> None:
        self.isolation = session.isolation
        self.isolation_fallback = session.fallback_reason
        if self.isolation_fallback is not None:
            self.tree.publish(
                Notice(
                    **self._ev(),
                    message=f"sandbox: isolation is {session.isolation!r} "
                    f"({self.isolation_fallback})",
                )
            )

    def _failure_reason(self, exc: BaseException) -> str:
        if isinstance(exc, BudgetExceeded):
            return "budget"
        if not isinstance(exc, asyncio.CancelledError):
            return "error"
        ledger = self.tree.ledger
        if (
            ledger is not None
            and ledger.budget.max_seconds is not None
            and ledger.elapsed() >= ledger.budget.max_seconds
        ):
            ledger.mark_exhausted("seconds")
            self.budget_limit = "seconds"
            return "budget"
        return "cancelled"

    # -- results ------------------------------------------------------------------------

    def _result(self, content: str, *, stop_reason: str | None = None) -> AgentResult:
        if stop_reason is not None and self.stop_reason != "budget":
            self.stop_reason = stop_reason
        ledger = self.tree.ledger
        return AgentResult(
            content=content,
            turns=len(self.steps),
            usage=self.meter.snapshot(),
            trajectory=tuple(self.steps),
            run_id=self.run_id,
            stop_reason=self.stop_reason,
            elapsed_s=time.monotonic() - self.started,
            isolation=self.isolation,
            isolation_fallback=self.isolation_fallback,
            answer_checked=self.checker.checked,
            partial_answer=self.best_answer if stop_reason is not None else None,
            budget_limit=self.budget_limit,
            budget=ledger.summary() if ledger is not None else None,
            value=self.typed.value if self.typed is not None else None,
            metadata={"compactions": [c.note for c in self.compactions]}
            if self.compactions
            else {},
        )

    def budget_error(self, cause: BudgetExceeded) -> BudgetExceeded:
        """The error for a run the budget stopped before a final answer."""
        self.stop_reason = "budget"
        self.budget_limit = cause.limit_name
        partial = "" if self.best_answer is None else f" (last FINAL value: {self.best_answer!r})"
        return BudgetExceeded(
            f"{cause}. The run ended without a final answer{partial}",
            limit_name=cause.limit_name,
            spent=cause.spent,
            limit=cause.limit,
            partial_answer=self.best_answer,
        )

    # -- the loop -----------------------------------------------------------------------

    async def _loop(self, messages: list[Message]) -> str:
        ledger = self.tree.ledger
        state = TurnState()
        for turn in range(1, self.settings.max_turns + 1):
            if ledger is not None and ledger.exhausted is not None:
                return await self._budget_turn(messages, turn, ledger.exhausted)
            self.root_calls.hold_final(messages)
            self.tree.publish(TurnStarted(**self._ev(), turn=turn))
            try:
                completion, latency = await self.root_calls.complete(messages, turn)
            except BudgetExceeded as exc:
                return await self._budget_turn(messages, turn, exc.limit_name, started=True)
            marker = parsing.find_final(completion.content)
            if marker is not None and marker.kind == "value":
                self.best_answer = marker.text  # the partial answer if the cells never end
            played = await self.cells.play(turn, completion, marker)
            seen = "\n".join(self._seen) if self.settings.check_answers else None
            outcome = decide_turn(played, state, question=self.question, seen=seen)
            if outcome.final is not None and self.typed is not None:
                self.best_answer = outcome.final  # the partial answer if it is given up
                outcome = typed_review(self.typed, outcome, self.question)
            if outcome.final is not None and self.settings.check_answers:
                try:
                    outcome = await self.checker.review(outcome, "\n\n".join(self._seen[1:]))
                finally:
                    self.functions.take_calls()  # the check's sub-call is no cell's
            self._seen.extend(shown(c) for c in played.cells)
            state = outcome.state
            if outcome.candidate is not None:
                self.best_answer = outcome.candidate
            observation = outcome.observation
            # the small root is not told the budget each turn: with "Budget left: N s."
            # last in its observation, the 1.5B root reran a finished lookup 5 turns
            shows_budget = self.settings.prompt_profile != "small"
            if outcome.final is None and ledger is not None and shows_budget:
                observation = prompts.with_status(
                    observation, ledger.remaining_line(), self.question
                )
            self._step(turn, completion, latency, played.cells, observation)
            if outcome.final is not None:
                self.stop_reason = outcome.stop_reason
                return outcome.final
            messages.append({"role": "assistant", "content": parsing.for_history(played.reply)})
            messages.append({"role": "user", "content": observation})
            if outcome.stalled:  # the same cells again and again: ask for the answer now
                self.stop_reason = "stalled"
                turn += 1
                break
        else:
            turn = self.settings.max_turns + 1
            self.stop_reason = "max_turns"
        if ledger is not None and ledger.exhausted is not None:
            return await self._budget_turn(messages, turn, ledger.exhausted)
        template = "stalled_final" if self.stop_reason == "stalled" else "final_turn"
        messages.append(
            {"role": "user", "content": prompts.render(template, question=self.question)}
        )
        return await self._answer_now(messages, turn)

    def _step(
        self,
        turn: int,
        completion: Completion,
        latency: float,
        cells: tuple[Cell, ...],
        observation: str,
    ) -> None:
        self.steps.append(
            Step(
                turn=turn,
                reply=completion.content,
                finish_reason=completion.finish_reason,
                cells=cells,
                observation=observation,
                usage=completion.usage,
                latency_s=latency,
            )
        )
        self.tree.publish(TurnEnded(**self._ev(), turn=turn, observation=observation))

    async def _budget_turn(
        self, messages: list[Message], turn: int, limit: str, *, started: bool = False
    ) -> str:
        """A limit was reached: the root asks once for an answer; a child run stops."""
        ledger = self.tree.ledger
        assert ledger is not None
        self.stop_reason = "budget"
        self.budget_limit = limit
        reason = f"{limit} limit reached"
        left = ledger.remaining_line()
        self.tree.publish(Notice(**self._ev(), message=f"budget: {reason}; {left}"))
        if self.depth > 0:
            raise self.budget_error(ledger.refuse(limit, reason))
        messages.append(
            {
                "role": "user",
                "content": prompts.render("budget_final", reason=reason, question=self.question),
            }
        )
        return await self._answer_now(messages, turn, started=started)

    async def _answer_now(
        self, messages: list[Message], turn: int, *, started: bool = False
    ) -> str:
        """One last request for the answer, without code (FINAL_VAR is still looked up)."""
        if not started:
            self.tree.publish(TurnStarted(**self._ev(), turn=turn))
        try:
            # only the root may use the room the budget keeps for its final answer
            completion, latency = await self.root_calls.complete(
                messages, turn, final=self.depth == 0
            )
        except BudgetExceeded as exc:
            raise self.budget_error(exc) from None
        # our own words are no answer: not even the "FINAL(answer)" of the prompt, echoed
        reply = prompts.without_echo(completion.content, messages[-1]["content"])
        marker = parsing.find_final(reply)
        cells: list[Cell] = []
        answer = await self.cells.resolve(marker, turn, cells)
        if answer is None:
            answer = plain_answer(reply)
        self._step(turn, completion, latency, tuple(cells), "")
        if self.typed is not None:  # no turn is left to correct it: OutputTypeError
            self.typed.accept(answer)
        return answer


async def run_with_deadline(run: Run, ledger: BudgetLedger) -> AgentResult:
    """``run`` cancelled at the budget's ``max_seconds``, which becomes BudgetExceeded."""
    assert ledger.budget.max_seconds is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ledger.budget.max_seconds - ledger.elapsed()
    try:
        async with asyncio.timeout_at(deadline) as timeout:
            return await run.run()
    except TimeoutError:
        if not timeout.expired():
            raise
        error = run.budget_error(
            ledger.refuse("seconds", f"max_seconds={ledger.budget.max_seconds:g} reached")
        )
        error.partial = run.partial
        raise error from None
