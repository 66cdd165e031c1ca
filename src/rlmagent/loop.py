"""One run of the root loop: ask the root model, run its code, observe; until FINAL.

:class:`Run` holds the state of one (sub-)run in a recursion tree; :class:`RLMAgent`
holds the configuration and starts root runs, :mod:`rlmagent.calls` starts child runs.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from rlmagent import parsing, prompts
from rlmagent.budget import UsageMeter, estimate_prompt
from rlmagent.calls import HostFunctions
from rlmagent.context import describe_context, summary
from rlmagent.engines.base import run_blocking
from rlmagent.errors import BudgetExceeded, RLMError
from rlmagent.events import (
    CodeExecuted,
    CodeStarted,
    Notice,
    RootCompletion,
    RunEnded,
    RunStarted,
    TurnEnded,
    TurnStarted,
)
from rlmagent.sandbox.base import Session
from rlmagent.tree import Tree
from rlmagent.types import AgentResult, Cell, Completion, Message, Step

if TYPE_CHECKING:
    from rlmagent.agent import RLMAgent

T = TypeVar("T")

SESSION_CLOSE_WAIT_S = 10.0
"""How long a cancelled run waits for a cell's thread to end after killing its sandbox."""


class Run:
    """The state of one run (one root loop) in a tree."""

    def __init__(
        self,
        agent: RLMAgent,
        tree: Tree,
        question: str,
        context: Any,
        *,
        depth: int = 0,
        parent_id: str | None = None,
        meter: UsageMeter | None = None,
    ) -> None:
        self.agent = agent
        self.tree = tree
        self.question = question
        self.context = context
        self.run_id = uuid.uuid4().hex[:12]
        self.depth = depth
        self.parent_id = parent_id
        self.meter = meter or tree.meter
        self.functions = HostFunctions(
            agent,
            tree,
            run_id=self.run_id,
            depth=depth,
            parent_id=parent_id,
            tools=agent.tools,
            meter=self.meter,
        )
        self.steps: list[Step] = []
        self.started = time.monotonic()
        self.session: Session | None = None
        self.metadata: dict[str, Any] = {"run_id": self.run_id, "max_turns_exceeded": False}
        self.best_answer: str | None = None
        """The last FINAL value the model wrote (confirmed or not): the partial answer."""
        self.partial: AgentResult | None = None
        self._threads: list[threading.Event] = []

    def _ev(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "depth": self.depth, "parent_id": self.parent_id}

    async def run(self) -> AgentResult:
        agent = self.agent
        info = describe_context(self.context)
        self.tree.publish(
            RunStarted(
                **self._ev(),
                question=self.question,
                context_info=info,
                model=agent.model,
                sub_model=agent.sub_model,
                settings={
                    "max_turns": agent.max_turns,
                    "temperature": agent.temperature,
                    "max_tokens": agent.max_tokens,
                    "sub_temperature": agent.sub_temperature,
                    "sub_max_tokens": agent.sub_max_tokens,
                    "max_concurrency": agent.max_concurrency,
                    "max_output_chars": agent.max_output_chars,
                    "sandbox": agent.sandbox.isolation,
                    "max_depth": self.tree.max_depth,
                },
            )
        )
        try:
            try:
                await self._blocking(self._start_session)
                assert self.session is not None
                self.metadata["isolation"] = self.session.isolation
                messages: list[Message] = [
                    {"role": "system", "content": agent.system_message(self.functions)},
                    {
                        "role": "user",
                        "content": prompts.render(
                            "first_user",
                            question=self.question,
                            description=summary(info),
                            preview="\n".join(info["preview"]) or "(empty)",
                        ),
                    },
                ]
                content = await self._loop(messages)
            finally:
                await self._shutdown()
        except BaseException as exc:
            ledger = self.tree.ledger
            if isinstance(exc, BudgetExceeded):
                reason = "budget"
            elif isinstance(exc, asyncio.CancelledError):
                timed_out = (
                    ledger is not None
                    and ledger.budget.max_seconds is not None
                    and (ledger.elapsed() >= ledger.budget.max_seconds)
                )
                reason = "budget" if timed_out else "cancelled"
                if timed_out and ledger is not None:
                    ledger.mark_exhausted("seconds")
                    self.metadata["budget_limit"] = "seconds"
            else:
                reason = "error"
            self.partial = partial = self._result("", stop_reason=reason)
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

    # -- the sandbox and cleanup --------------------------------------------------------

    def _start_session(self) -> None:
        """On a thread: start the sandbox (kept on self even if the run was cancelled)."""
        self.session = self.agent.sandbox.start(
            self.context,
            self.functions.handler,
            functions=self.functions.specs(),
            max_output_chars=self.agent.max_output_chars,
        )

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn`` on a thread whose end :meth:`_shutdown` can wait for, even if cancelled."""
        done = threading.Event()
        self._threads.append(done)

        def target() -> T:
            try:
                return fn(*args)
            finally:
                done.set()

        return await run_blocking(target)

    async def _shutdown(self) -> None:
        """Cancel host calls in flight (child runs close their own sandboxes), kill the
        sandbox, wait for a cell's thread to notice, and close again (a sandbox may have
        restarted its worker while it died)."""
        try:
            await self.functions.cancel()
        finally:
            self._close_session()
            pending = [d for d in self._threads if not d.is_set()]
            if pending:
                await run_blocking(_wait_all, pending, SESSION_CLOSE_WAIT_S)
                self._close_session()

    def _close_session(self) -> None:
        if self.session is not None:
            self.session.close()

    # -- results ------------------------------------------------------------------------

    def _result(self, content: str, *, stop_reason: str | None = None) -> AgentResult:
        self.metadata["elapsed_s"] = time.monotonic() - self.started
        if stop_reason is not None and self.metadata.get("stop_reason") != "budget":
            self.metadata["stop_reason"] = stop_reason
        if stop_reason is not None:
            self.metadata["partial_answer"] = self.best_answer
        if self.tree.ledger is not None:
            self.metadata["budget"] = self.tree.ledger.summary()
        return AgentResult(
            content=content,
            turns=len(self.steps),
            usage=self.meter.snapshot(),
            trajectory=tuple(self.steps),
            metadata=dict(self.metadata),
        )

    def budget_error(self, cause: BudgetExceeded) -> BudgetExceeded:
        """The error for a run the budget stopped before a final answer."""
        self.metadata["stop_reason"] = "budget"
        self.metadata["budget_limit"] = cause.limit_name
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
        agent = self.agent
        t0 = time.monotonic()
        completion = await self.tree.complete(
            agent.engine,
            messages,
            model=agent.model,
            temperature=agent.temperature,
            max_tokens=agent.max_tokens,
            meter=self.meter,
            final=final,
        )
        latency = time.monotonic() - t0
        self.tree.publish(
            RootCompletion(**self._ev(), turn=turn, completion=completion, latency_s=latency)
        )
        return completion, latency

    async def _execute(self, turn: int, index: int, code: str) -> Cell:
        assert self.session is not None
        self.tree.publish(CodeStarted(**self._ev(), turn=turn, cell=index, code=code))
        self.functions.cell_calls = []
        result = await self._blocking(self.session.execute, code)
        cell = Cell(code=code, result=result, sub_calls=tuple(self.functions.cell_calls))
        self.tree.publish(
            CodeExecuted(**self._ev(), turn=turn, cell=index, code=code, result=result)
        )
        return cell

    def _hold_final(self, messages: list[Message]) -> None:
        """At the root, keep budget back for a final answer on the current prompt."""
        ledger = self.tree.ledger
        if ledger is not None and self.depth == 0:
            agent = self.agent
            ledger.hold_for_final(
                estimate_prompt(messages),
                agent.max_tokens,
                self.tree.price(agent.engine, agent.model),
            )

    def _candidate(self, value: str | None) -> str | None:
        if value is not None:
            self.best_answer = value
        return value

    async def _loop(self, messages: list[Message]) -> str:
        agent = self.agent
        ledger = self.tree.ledger
        code_has_run = False
        reminded = False
        last_final: str | None = None
        for turn in range(1, agent.max_turns + 1):
            if ledger is not None and ledger.exhausted is not None:
                return await self._budget_turn(messages, turn, ledger.exhausted)
            self._hold_final(messages)
            self.tree.publish(TurnStarted(**self._ev(), turn=turn))
            try:
                completion, latency = await self._complete(messages, turn)
            except BudgetExceeded as exc:
                return await self._budget_turn(messages, turn, exc.limit_name, started=True)
            reply = completion.content
            blocks = parsing.code_blocks(reply)
            marker = parsing.find_final(reply)
            if marker is not None and marker.kind == "value":
                self._candidate(marker.text)  # kept as the partial answer if the run stops
            cells: list[Cell] = []
            final: str | None = None
            if completion.finish_reason == "length" and parsing.has_unclosed_block(reply):
                observation = prompts.render("cut", question=self.question)
            elif blocks:
                code_has_run = True
                reminded = False
                unseen: str | None = None
                for index, code in enumerate(blocks, 1):
                    cell = await self._execute(turn, index, code)
                    cells.append(cell)
                    if cell.result.final is not None:
                        value = self._candidate(cell.result.final)
                        if _blind(cells) and value != last_final:
                            unseen = value  # answered before seeing earlier blocks' output
                        else:
                            final = value
                            self.metadata["stop_reason"] = "final"
                        break
                marker_value = await self._resolve(marker, turn, cells) if marker else None
                self._candidate(marker_value)
                if final is None and marker_value is not None and marker_value == last_final:
                    final = marker_value  # the same FINAL twice in a row: confirmed
                    self.metadata["stop_reason"] = "final_repeated"
                last_final = unseen if unseen is not None else marker_value
                observation = self._observation(cells)
                if unseen is not None:
                    observation += "\n\n" + prompts.render("unseen", value=unseen)
            elif marker is not None:
                value = self._candidate(await self._resolve(marker, turn, cells))
                if value is not None and (code_has_run or value == last_final):
                    final = value
                    self.metadata["stop_reason"] = "final"
                elif value is not None:
                    observation = prompts.render("confirm", value=value)
                else:
                    observation = self._observation(cells)
                last_final = value
            elif not reminded:
                reminded = True
                last_final = None
                observation = prompts.render("reminder", question=self.question)
            else:
                final = _plain_answer(reply)
                self.metadata["stop_reason"] = "answer_without_final"
            if final is not None:
                observation = ""
            elif ledger is not None:
                observation += "\n\n" + ledger.remaining_line()
            self.steps.append(
                Step(
                    turn=turn,
                    reply=reply,
                    finish_reason=completion.finish_reason,
                    cells=tuple(cells),
                    observation=observation,
                    usage=completion.usage,
                    latency_s=latency,
                )
            )
            self.tree.publish(TurnEnded(**self._ev(), turn=turn, observation=observation))
            if final is not None:
                return final
            messages.append({"role": "assistant", "content": parsing.for_history(reply)})
            messages.append({"role": "user", "content": observation})
        turn = agent.max_turns + 1
        if ledger is not None and ledger.exhausted is not None:
            return await self._budget_turn(messages, turn, ledger.exhausted)
        self.metadata["max_turns_exceeded"] = True
        self.metadata["stop_reason"] = "max_turns"
        messages.append(
            {"role": "user", "content": prompts.render("final_turn", question=self.question)}
        )
        return await self._answer_now(messages, turn)

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
        self.metadata["stop_reason"] = "budget"
        self.metadata["budget_limit"] = limit
        reason = f"{limit} limit reached"
        left = ledger.remaining_line()
        self.tree.publish(Notice(**self._ev(), message=f"budget: {reason}; {left}"))
        if self.depth > 0:
            raise self.budget_error(ledger.refuse(limit, reason))
        messages.append(
            {
                "role": "user",
                "content": prompts.render(
                    "budget_final",
                    reason=reason,
                    question=self.question,
                ),
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
        marker = parsing.find_final(completion.content)
        cells: list[Cell] = []
        answer = await self._resolve(marker, turn, cells) if marker else None
        if answer is None:
            answer = _plain_answer(completion.content)
        self.steps.append(
            Step(
                turn=turn,
                reply=completion.content,
                finish_reason=completion.finish_reason,
                cells=tuple(cells),
                usage=completion.usage,
                latency_s=latency,
            )
        )
        self.tree.publish(TurnEnded(**self._ev(), turn=turn, observation=""))
        return answer

    def _observation(self, cells: list[Cell]) -> str:
        parts = []
        for index, cell in enumerate(cells, 1):
            result = cell.result
            label = f"[block {index}]" if len(cells) > 1 else "[output]"
            text = result.output.rstrip()
            if result.stderr.strip():
                text += ("\n" if text else "") + "[stderr]\n" + result.stderr.rstrip()
            if result.error:
                text += ("\n" if text else "") + "[error]\n" + result.error
            if not text:
                text = "(no output: print() what you want to see)"
            parts.append(f"{label}\n{text}")
        return prompts.render("observation", outputs="\n\n".join(parts), question=self.question)


def _wait_all(events: list[threading.Event], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for event in events:
        event.wait(max(0.0, deadline - time.monotonic()))


def _blind(cells: list[Cell]) -> bool:
    """Whether the last cell ran after earlier cells of the same reply showed something.

    A FINAL there was written before the model could read that output (small models
    write a search, an invented output and a FINAL in one reply).
    """
    return any(c.result.output.strip() or c.result.error for c in cells[:-1])


def _plain_answer(reply: str) -> str:
    """A reply taken as the answer: without a lone fence around it, stripped."""
    text = reply.strip()
    if text.startswith("```") and text.endswith("```") and text.count("```") == 2:
        text = text[3:-3]
        first, _, rest = text.partition("\n")
        text = rest if first.strip().isalpha() and rest else text
    return text.strip()
