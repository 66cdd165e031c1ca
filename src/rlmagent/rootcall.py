"""The root model's calls of one run: the prompt compacted when it would not fit the
root's window (:mod:`rlmagent.compaction`), then :meth:`rlmagent.tree.Tree.complete`
and the :class:`~rlmagent.events.RootCompletion` event; and, at the root, the budget
held back for a final answer on the current prompt.

:class:`~rlmagent.run.Run` makes one :class:`RootCalls` and asks it for every reply.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from rlmagent.budget import UsageMeter, estimate_prompt
from rlmagent.compaction import Compaction, Compactor
from rlmagent.events import Compacted, RootCompletion
from rlmagent.settings import RunSettings
from rlmagent.tree import Tree
from rlmagent.types import Completion, Message


class RootCalls:
    """The root calls of one run, and the compactions made before them."""

    def __init__(
        self,
        settings: RunSettings,
        tree: Tree,
        question: str,
        *,
        depth: int,
        meter: UsageMeter,
        ev: dict[str, Any],
        notice: Callable[[str], None],
        query: Callable[[str], Awaitable[str]],
        take_calls: Callable[[], object],
    ) -> None:
        """``ev``: the run's ``run_id`` / ``depth`` / ``parent_id`` for its events;
        ``query``: the run's sub-call (the compaction's summary), ``take_calls`` drops
        its record (it is no cell's)."""
        self.settings = settings
        self.tree = tree
        self.question = question
        self.depth = depth
        self.meter = meter
        self.ev = ev
        self.notice = notice
        self.query = query
        self.take_calls = take_calls
        self.compactor: Compactor | None = None
        self.compactions: list[Compaction] = []

    async def complete(
        self, messages: list[Message], turn: int, *, final: bool = False
    ) -> tuple[Completion, float]:
        """The root's reply to ``messages`` (compacted first if need be), its latency."""
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
            RootCompletion(**self.ev, turn=turn, completion=completion, latency_s=latency)
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
                    **self.ev,
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
            self.notice(f"compaction before turn {turn}: {done.note}")  # console, viewer

    async def _summarise(self, prompt: str) -> str | None:
        """The compaction's one sub-call; None when it cannot be made (it is dropped)."""
        try:
            return await self.query(prompt)
        except Exception as exc:  # budget, engine, window: the turns are dropped instead
            self.notice(f"compaction: no summary ({type(exc).__name__}: {exc})")
            return None
        finally:
            self.take_calls()  # the summary's sub-call is no cell's

    def hold_final(self, messages: list[Message]) -> None:
        """At the root, keep budget back for a final answer on the current prompt."""
        ledger = self.tree.ledger
        if ledger is not None and self.depth == 0:
            root = self.settings.root
            ledger.hold_for_final(
                estimate_prompt(messages),
                root.max_tokens,
                self.tree.price(root.engine, root.model),
            )
