"""``rlm mcp``: RLM tools for MCP clients, on the official MCP Python SDK (``mcp``).

Tools: ``rlm_answer`` (one question over text and/or files), ``rlm_session_open`` /
``rlm_session_ask`` / ``rlm_session_close`` (a REPL kept between questions). Files are
read only under the allowed directories (:mod:`rlmagent.serve.paths`); a refused path,
a bad argument or a failed run is a tool error (``isError``) whose text says what went
wrong. While a run works the tool sends progress notifications (turns, cells, sub-calls
done / total) to a client that asked for them with a progress token.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from rlmagent.events import EventBus
from rlmagent.serve.backend import Backend, run_error
from rlmagent.serve.errors import ApiError
from rlmagent.serve.paths import AllowedDirs, PathRefused
from rlmagent.serve.progress import ProgressFeed
from rlmagent.serve.requests import check_schema
from rlmagent.serve.sessions import SessionStore
from rlmagent.types import AgentResult

INSTRUCTIONS = (
    "Answer questions over long inputs (files or text far larger than your context) with "
    "a Recursive Language Model: the input lives in a sandboxed Python REPL that a model "
    "inspects with code and sub-calls. Use rlm_answer for one question; rlm_session_open "
    "then rlm_session_ask for several questions over the same input."
)


class RLMTools:
    """The tools' logic, independent of the transport."""

    def __init__(
        self,
        backend: Backend,
        allowed: AllowedDirs,
        *,
        max_sessions: int = 8,
        ttl_s: float = 1800.0,
        max_runs: int = 4,
    ) -> None:
        self.backend = backend
        self.allowed = allowed
        self.sessions = SessionStore(max_sessions=max_sessions, ttl_s=ttl_s)
        self.runs = asyncio.Semaphore(max_runs)

    def context(self, text: str | None, paths: list[str] | None) -> Any:
        """``text``, one file's text, or ``{path: text}`` of several (with ``text`` as "text")."""
        files: dict[str, str] = {}
        for name in paths or []:
            try:
                files[name] = self.allowed.read_text(name)
            except PathRefused as exc:
                raise ToolError(str(exc)) from None
        if text is not None and not files:
            return text
        if text is None and len(files) == 1:
            return next(iter(files.values()))
        if text is None and not files:
            return None
        return {**({"text": text} if text is not None else {}), **files}

    async def answer(
        self,
        question: str,
        text: str | None,
        paths: list[str] | None,
        schema: dict[str, Any] | None,
        ctx: Context | None,
    ) -> str:
        context = self.context(text, paths)
        options: dict[str, Any] = {}
        if schema is not None:
            options["output_type"] = self._schema(schema)
        bus = EventBus()
        agent = self.backend.agent(bus=bus, budget=self.backend.budget)
        return await self._run(bus, ctx, lambda: agent.arun(question, context=context, **options))

    async def open(self, text: str | None, paths: list[str] | None) -> str:
        context = self.context(text, paths)
        if context is None:
            raise ToolError("give text or paths: the session's context")
        bus = EventBus()
        agent = self.backend.agent(bus=bus)
        try:
            if isinstance(context, dict):
                live = await self.sessions.open(agent, bus, None, context)
            else:
                live = await self.sessions.open(agent, bus, context, None)
        except ApiError as exc:
            raise ToolError(exc.message) from None
        return live.id

    async def ask(self, session_id: str, question: str, ctx: Context | None) -> str:
        try:
            live = self.sessions.get(session_id)
        except ApiError as exc:
            raise ToolError(
                f"{exc.message.split(';')[0]}; open one with rlm_session_open"
            ) from None
        async with live.lock:
            try:
                return await self._run(
                    live.bus, ctx, lambda: live.session.aask(question, budget=self.backend.budget)
                )
            finally:
                self.sessions.touch(live)

    async def close(self, session_id: str) -> str:
        if not await self.sessions.close(session_id):
            raise ToolError(f"no live session has the id {session_id[:64]!r}")
        return f"session {session_id} closed"

    @staticmethod
    def _schema(schema: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_schema(schema, "output_schema")
        except ApiError as exc:
            raise ToolError(exc.message) from None

    async def _run(
        self, bus: EventBus, ctx: Context | None, start: Callable[[], Awaitable[AgentResult]]
    ) -> str:
        async with self.runs:
            feed = ProgressFeed(bus, asyncio.get_running_loop())
            task = asyncio.ensure_future(start())
            sent = 0
            try:
                while not task.done():
                    getter = asyncio.ensure_future(feed.queue.get())
                    await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        continue
                    line = getter.result()
                    sent += 1
                    if ctx is not None:
                        await ctx.report_progress(sent, None, line.text.strip())
                return _text(task)
            finally:
                feed.close()
                if not task.done():
                    task.cancel()
                await asyncio.gather(task, return_exceptions=True)


def _text(task: asyncio.Future[AgentResult]) -> str:
    exc = task.exception()
    if exc is not None:
        outcome = run_error(exc)
        if isinstance(outcome, ApiError):
            raise ToolError(outcome.message) from None
    else:
        outcome = task.result()
    value = getattr(outcome, "value", None)
    if value is not None:
        return json.dumps(value, ensure_ascii=False)
    answer = outcome.content or outcome.partial_answer or ""
    if outcome.stop_reason not in (None, "final"):
        return f"{answer}\n\n(no confident answer: the run stopped with {outcome.stop_reason!r})"
    return answer


def create_server(tools: RLMTools) -> MCPServer:
    server: MCPServer = MCPServer("rlmagent", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool()
    async def rlm_answer(
        question: str,
        text: str | None = None,
        paths: list[str] | None = None,
        output_schema: dict[str, Any] | None = None,
        ctx: Context | None = None,
    ) -> str:
        """Answer a question over long text and/or files (paths under the allowed
        directories) with a Recursive Language Model. output_schema: a JSON Schema the
        answer must match (it is then returned as JSON)."""
        return await tools.answer(question, text, paths, output_schema, ctx)

    @server.tool()
    async def rlm_session_open(text: str | None = None, paths: list[str] | None = None) -> str:
        """Open a session over text and/or files; returns its id for rlm_session_ask.
        The REPL (variables, contexts) persists between questions."""
        return await tools.open(text, paths)

    @server.tool()
    async def rlm_session_ask(id: str, question: str, ctx: Context | None = None) -> str:
        """Ask a question in an open session."""
        return await tools.ask(id, question, ctx)

    @server.tool()
    async def rlm_session_close(id: str) -> str:
        """Close a session and its sandbox."""
        return await tools.close(id)

    return server
