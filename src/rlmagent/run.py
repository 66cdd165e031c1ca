"""One run of the root loop: ask the root model, run its code, observe; until FINAL.

:class:`Run` sequences the turns of one (sub-)run in a recursion tree; what a turn
means is decided by :func:`rlmagent.turns.decide_turn`. Child runs are started through
the ``spawn_child`` callable this module hands to :class:`~rlmagent.host.HostFunctions`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from typing import Any, TypeVar

from rlmagent import parsing, prompts
from rlmagent.briefing import Briefing, first_message
from rlmagent.budget import BudgetLedger, UsageMeter, estimate_prompt
from rlmagent.checks import AnswerChecker
from rlmagent.compaction import Compaction, Compactor
from rlmagent.context import describe_context, summary
from rlmagent.errors import BudgetExceeded, RLMError
from rlmagent.events import (
    CodeExecuted,
    CodeStarted,
    Compacted,
    Notice,
    RootCompletion,
    RunEnded,
    RunStarted,
    TurnEnded,
    TurnStarted,
)
from rlmagent.host import HostFunctions
from rlmagent.repl import Repl
from rlmagent.sandbox.base import Session
from rlmagent.settings import RunSettings
from rlmagent.tree import Tree
from rlmagent.turns import Outcome, Turn, TurnState, decide_turn, plain_answer
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
        )
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.repl = repl if repl is not None else Repl(settings.sandbox)
        self.briefing = briefing
        self.compactor: Compactor | None = None
        self.compactions: list[Compaction] = []
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
        if self.briefing is not None and self.briefing.contexts:  # described when added
            info = dict(next(iter(self.briefing.contexts.values())))
        else:
            info = describe_context(self.context)
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
                    {"role": "system", "content": self._system_message()},
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
        repl = self.repl
        if repl.session is None:
            session = await repl.start(
                self.context,
                self.functions.handler,
                self.functions.specs(),
                self.settings.max_output_chars,
            )
        else:
            session = repl.session
            repl.attach(self.functions.handler)
        self._isolation(session)
        if self.briefing is None:
            return prompts.render(
                "first_user",
                question=self.question,
                description=summary(info),
                preview="\n".join(info["preview"]) or "(empty)",
            )
        variables, lost, replaced = await repl.prepare()
        self.briefing = dataclasses.replace(
            self.briefing, variables=variables, lost=lost, replaced=replaced
        )
        if replaced:
            names = ", ".join(lost) or "none"
            self._notice(f"session: the REPL's worker was replaced; variables lost: {names}")
        return first_message(self.question, self.briefing)

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

    def _system_message(self) -> str:
        if self.settings.system_prompt is not None:
            return self.settings.system_prompt
        return prompts.system_message(
            self.functions.described(),
            list(self.settings.tools.values()),
            profile=self.settings.prompt_profile,
            sub_calls=self.settings.sub_calls,
        )

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

    async def _complete(
        self, messages: list[Message], turn: int, *, final: bool = False
    ) -> tuple[Completion, float]:
        root = self.settings.root
        await self._fit(messages, turn)
        t0 = time.monotonic()
        completion = await self.tree.complete(
            root.engine,
            messages,
            model=root.model,
            temperature=root.temperature,
            max_tokens=root.max_tokens,
            meter=self.meter,
            final=final,
        )
        if self.compactor is not None and not completion.cached:
            self.compactor.observe(messages, completion.usage.prompt_tokens)
        latency = time.monotonic() - t0
        self.tree.publish(
            RootCompletion(**self._ev(), turn=turn, completion=completion, latency_s=latency)
        )
        return completion, latency

    async def _fit(self, messages: list[Message], turn: int) -> None:
        """Compact the older turns when the prompt would not fit the root's window."""
        if self.compactor is None:
            root = self.settings.root
            window = root.engine.context_window(root.model)
            if window is None:
                return
            summarise = self._summarise if self.settings.sub_calls else None
            self.compactor = Compactor(window, root.max_tokens, self.question, summarise)
        done = await self.compactor.fit(messages)
        if done is not None:
            self.compactions.append(done)
            self.tree.publish(
                Compacted(
                    **self._ev(),
                    turn=turn,
                    shrunk=done.shrunk,
                    folded=done.folded,
                    summary=done.summary,
                    tokens_before=done.tokens_before,
                    tokens_after=done.tokens_after,
                    window=self.compactor.window,
                    note=done.note,
                )
            )
            self._notice(f"compaction before turn {turn}: {done.note}")  # console, viewer

    async def _summarise(self, prompt: str) -> str | None:
        """The compaction's one sub-call; None when it cannot be made (it is dropped)."""
        try:
            return await self.functions.query(prompt)
        except Exception as exc:  # budget, engine, window: the turns are dropped instead
            self._notice(f"compaction: no summary ({type(exc).__name__}: {exc})")
            return None
        finally:
            self.functions.take_calls()  # the summary's sub-call is no cell's

    async def _execute(self, turn: int, index: int, code: str) -> Cell:
        self.tree.publish(CodeStarted(**self._ev(), turn=turn, cell=index, code=code))
        self.functions.take_calls()
        self.functions.take_notes()
        result = await self.repl.execute(code)
        notes = self.functions.take_notes()
        if notes:  # what the operators could not do, where the model reads its output
            text = result.output
            if text and not text.endswith("\n"):
                text += "\n"
            result = dataclasses.replace(result, output=text + "\n".join(notes))
        cell = Cell(code=code, result=result, sub_calls=self.functions.take_calls())
        self.tree.publish(
            CodeExecuted(**self._ev(), turn=turn, cell=index, code=code, result=result)
        )
        return cell

    def _hold_final(self, messages: list[Message]) -> None:
        """At the root, keep budget back for a final answer on the current prompt."""
        ledger = self.tree.ledger
        if ledger is not None and self.depth == 0:
            root = self.settings.root
            ledger.hold_for_final(
                estimate_prompt(messages),
                root.max_tokens,
                self.tree.price(root.engine, root.model),
            )

    async def _play(self, turn: int, completion: Completion) -> Turn:
        """Run a reply's code blocks (up to the first FINAL) and look up a prose FINAL_VAR."""
        reply = completion.content
        marker = parsing.find_final(reply)
        if marker is not None and marker.kind == "value":
            self.best_answer = marker.text  # the partial answer if the cells never end
        if completion.finish_reason == "length" and parsing.has_unclosed_block(reply):
            return Turn(reply, cut=True, marker=marker)
        blocks = parsing.code_blocks(reply)
        cells: list[Cell] = []
        for index, code in enumerate(blocks, 1):
            cell = await self._execute(turn, index, code)
            cells.append(cell)
            if cell.result.final is not None:
                break
        own = len(cells)
        literal = (
            self.settings.check_answers
            and bool(cells)
            and cells[-1].result.final is not None
            and parsing.final_is_literal(cells[-1].code)
        )
        marker_value = await self._resolve(marker, turn, cells)
        return Turn(
            reply,
            has_code=bool(blocks),
            cells=tuple(cells),
            marker=marker,
            marker_value=marker_value,
            code_cells=own,
            literal_final=literal,
        )

    async def _loop(self, messages: list[Message]) -> str:
        ledger = self.tree.ledger
        state = TurnState()
        for turn in range(1, self.settings.max_turns + 1):
            if ledger is not None and ledger.exhausted is not None:
                return await self._budget_turn(messages, turn, ledger.exhausted)
            self._hold_final(messages)
            self.tree.publish(TurnStarted(**self._ev(), turn=turn))
            try:
                completion, latency = await self._complete(messages, turn)
            except BudgetExceeded as exc:
                return await self._budget_turn(messages, turn, exc.limit_name, started=True)
            played = await self._play(turn, completion)
            seen = "\n".join(self._seen) if self.settings.check_answers else None
            outcome = decide_turn(played, state, question=self.question, seen=seen)
            if outcome.final is not None and self.typed is not None:
                outcome = self._typed_review(outcome)
            if outcome.final is not None and self.settings.check_answers:
                try:
                    outcome = await self.checker.review(outcome, "\n\n".join(self._seen[1:]))
                finally:
                    self.functions.take_calls()  # the check's sub-call is no cell's
            self._seen.extend(_shown(c) for c in played.cells)
            state = outcome.state
            if outcome.candidate is not None:
                self.best_answer = outcome.candidate
            observation = outcome.observation
            if outcome.final is None and ledger is not None:
                observation += "\n\n" + ledger.remaining_line()
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

    async def _resolve(
        self, marker: parsing.FinalMarker | None, turn: int, cells: list[Cell]
    ) -> str | None:
        """The value of a FINAL written in prose (FINAL_VAR is looked up in the REPL)."""
        if marker is None:
            return None
        if marker.kind == "value":
            return marker.text
        cell = await self._execute(turn, len(cells) + 1, f"FINAL_VAR({marker.text!r})")
        cells.append(cell)
        return cell.result.final

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
            completion, latency = await self._complete(messages, turn, final=self.depth == 0)
        except BudgetExceeded as exc:
            raise self.budget_error(exc) from None
        # our own words are no answer: not even the "FINAL(answer)" of the prompt, echoed
        reply = prompts.without_echo(completion.content, messages[-1]["content"])
        marker = parsing.find_final(reply)
        cells: list[Cell] = []
        answer = await self._resolve(marker, turn, cells)
        if answer is None:
            answer = plain_answer(reply)
        self._step(turn, completion, latency, tuple(cells), "")
        if self.typed is not None:  # no turn is left to correct it: OutputTypeError
            self.typed.accept(answer)
        return answer

    # -- typed answers (typed.py) -------------------------------------------------------

    def _typed_review(self, outcome: Outcome) -> Outcome:
        """``outcome`` if its final answer has the output type, else the correction."""
        assert self.typed is not None and outcome.final is not None
        self.best_answer = outcome.final  # the partial answer if it is given up
        correction = self.typed.review(outcome.final)
        if correction is None:
            return outcome
        return dataclasses.replace(
            outcome,
            final=None,
            stop_reason=None,
            observation=correction + "\n\nQuestion: " + self.question,
            state=dataclasses.replace(outcome.state, last_final=None),
        )


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


def _shown(cell: Cell) -> str:
    """What the model saw of a cell: its output and error."""
    return "\n".join(t for t in (cell.result.output, cell.result.error or "") if t)
