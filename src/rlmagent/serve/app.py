"""The ASGI application of ``rlm serve`` (Starlette, served by uvicorn).

Routes: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health`` and
``DELETE /v1/rlm/sessions/{id}``. Every error is an OpenAI-style error object
(:mod:`rlmagent.serve.errors`). A client that goes away cancels its run: the request
watches its connection while the run works and cancels the run's task, which kills
every sandbox of the run tree (:meth:`RLMAgent.arun` guarantees that on cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from rlmagent.errors import RLMError
from rlmagent.events import EventBus
from rlmagent.serve.asgi import EventStream, disconnected
from rlmagent.serve.backend import Backend, RunSlots, ServeLimits, cap_budget, run_error
from rlmagent.serve.errors import ApiError, error_body
from rlmagent.serve.progress import ProgressFeed
from rlmagent.serve.requests import NEW_SESSION, ChatRequest, parse_chat
from rlmagent.serve.responses import ChunkWriter, completion
from rlmagent.serve.sessions import LiveSession, SessionStore
from rlmagent.types import AgentResult

log = logging.getLogger("rlmagent.serve")
PING_S = 15.0
SESSION_HEADER = "X-RLM-Session"


@dataclass(frozen=True)
class ServeConfig:
    backend: Backend
    limits: ServeLimits
    api_key: str | None = None


def create_app(config: ServeConfig) -> Starlette:
    """The application; ``app.state.sessions`` and ``app.state.slots`` are its state."""
    sessions = SessionStore(
        max_sessions=config.limits.max_sessions, ttl_s=config.limits.session_ttl_s
    )
    slots = RunSlots(config.limits.max_concurrent_runs)
    handler = _Handler(config, sessions, slots)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sweeper = asyncio.create_task(_sweep(sessions, min(30.0, config.limits.session_ttl_s / 4)))
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await sessions.close_all()

    app = Starlette(
        routes=[
            Route("/health", handler.health, methods=["GET"]),
            Route("/v1/models", handler.guarded(handler.models), methods=["GET"]),
            Route("/v1/chat/completions", handler.guarded(handler.chat), methods=["POST"]),
            Route(
                "/v1/rlm/sessions/{session_id}",
                handler.guarded(handler.close_session),
                methods=["DELETE"],
            ),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        lifespan=lifespan,
    )
    app.state.sessions = sessions
    app.state.slots = slots
    return app


async def _sweep(sessions: SessionStore, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await sessions.sweep()


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=dict(exc.headers))


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"no route {request.method} {request.url.path}" if status in (404, 405) else str(exc)
    return JSONResponse(error_body(status, message), status_code=status)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s", request.url.path)
    return JSONResponse(error_body(500, f"internal error ({type(exc).__name__})"), status_code=500)


class _Handler:
    def __init__(self, config: ServeConfig, sessions: SessionStore, slots: RunSlots) -> None:
        self.config = config
        self.backend = config.backend
        self.limits = config.limits
        self.sessions = sessions
        self.slots = slots

    def guarded(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                self._authorize(request)
                return await endpoint(request)
            except ApiError as exc:
                return _error(exc)

        return wrapped

    def _authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), key.encode()
        ):
            raise ApiError(
                401, "a valid API key is needed: Authorization: Bearer KEY", code="invalid_api_key"
            )

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "runs": self.slots.active,
                "max_concurrent_runs": self.slots.n,
                "sessions": len(self.sessions),
            }
        )

    async def models(self, request: Request) -> Response:
        data = [
            {"id": model_id, "object": "model", "created": 0, "owned_by": "rlmagent"}
            for model_id in self.backend.model_ids()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def close_session(self, request: Request) -> Response:
        session_id = request.path_params["session_id"]
        if not await self.sessions.close(session_id):
            self.sessions.get(session_id)  # raises the 404
        return JSONResponse({"id": session_id, "object": "rlm.session", "deleted": True})

    async def _body(self, request: Request) -> Any:
        limit = self.limits.max_body_bytes
        too_big = ApiError(
            413,
            f"the request body is larger than this server's limit of {limit:,} bytes",
            code="request_too_large",
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc})") from None
        except RecursionError:
            raise ApiError(400, "the request body is nested too deeply") from None

    async def chat(self, request: Request) -> Response:
        body = await self._body(request)
        chat = parse_chat(
            body,
            question_chars=self.limits.question_chars,
            session_header=request.headers.get(SESSION_HEADER),
        )
        self.backend.root_engine(chat.model)  # 404 before anything starts
        budget = cap_budget(self.backend.budget, chat.budget)
        depth = self.backend.depth(chat.max_depth)
        live = self._session_for(chat)
        started = self.slots.acquire()
        try:
            if chat.session == NEW_SESSION:
                bus = EventBus()
                agent = self.backend.agent(bus=bus, model_id=chat.model, max_depth=depth)
                live = await self.sessions.open(agent, bus, chat.context, chat.contexts)
            elif live is not None:
                self._add_contexts(live, chat)
        except BaseException as exc:
            self.slots.release(started)
            outcome = run_error(exc) if isinstance(exc, RLMError) else None
            if isinstance(outcome, ApiError):  # a bad context for a session, say: 400
                raise outcome from None
            raise
        work = _Work(self, chat, budget, depth, live, started)
        if chat.stream:
            return EventStream(work.stream(), headers=work.headers(), on_close=work._finish)
        return await work.answer(request.receive)

    def _session_for(self, chat: ChatRequest) -> LiveSession | None:
        if chat.session is None or chat.session == NEW_SESSION:
            return None
        live = self.sessions.get(chat.session)
        if live.busy:
            raise ApiError(
                409,
                "this session is answering another request; retry when it is done",
                code="session_busy",
            )
        if chat.context is not None:
            raise ApiError(
                400,
                "rlm.context is set when a session opens; add more with rlm.contexts",
                param="rlm.context",
            )
        self.sessions.touch(live)  # not swept between here and its question
        return live

    @staticmethod
    def _add_contexts(live: LiveSession, chat: ChatRequest) -> None:
        for name, value in (chat.contexts or {}).items():
            live.session.add_context(name, value)


class _Work:
    """One run of a request: stateless or in a session, answered whole or streamed."""

    def __init__(
        self,
        handler: _Handler,
        chat: ChatRequest,
        budget: Any,
        depth: int,
        live: LiveSession | None,
        started: float,
    ) -> None:
        self.handler = handler
        self.chat = chat
        self.budget = budget
        self.depth = depth
        self.live = live
        self.started = started
        self.bus = live.bus if live is not None else EventBus()
        self.finished = False

    def headers(self) -> dict[str, str]:
        return {SESSION_HEADER: self.live.id} if self.live is not None else {}

    async def _run(self) -> AgentResult:
        chat = self.chat
        options: dict[str, Any] = {}
        if chat.output_type is not None:
            options["output_type"] = dict(chat.output_type)
        live = self.live
        if live is not None:
            async with live.lock:
                try:
                    return await live.session.aask(chat.question, budget=self.budget, **options)
                finally:
                    self.handler.sessions.touch(live)
        agent = self.handler.backend.agent(
            bus=self.bus, model_id=chat.model, budget=self.budget, max_depth=self.depth
        )
        if chat.contexts is not None:  # named contexts: a one-question session holds them
            with agent.session(chat.context, contexts=dict(chat.contexts)) as session:
                return await session.aask(chat.question, **options)
        return await agent.arun(chat.question, context=chat.context, **options)

    def _finish(self) -> None:
        if not self.finished:  # once, whether the stream ever started or not
            self.finished = True
            self.handler.slots.release(self.started)

    async def answer(self, receive: Receive) -> Response:
        """The whole answer; the run is cancelled if the client disconnects first."""
        run = asyncio.create_task(self._run())
        watch = asyncio.create_task(disconnected(receive))
        try:
            await asyncio.wait({run, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not run.done():
                run.cancel()
            await asyncio.gather(run, watch, return_exceptions=True)
            self._finish()
        if watch.done() and not watch.cancelled():
            return Response(status_code=499)  # the client has gone: nobody is listening
        outcome = _outcome(run)
        if isinstance(outcome, ApiError):
            return _error(outcome)
        session = self.live.id if self.live is not None else None
        return JSONResponse(
            completion(outcome, model=self.chat.model, session=session), headers=self.headers()
        )

    async def stream(self) -> AsyncIterator[bytes]:
        """SSE: a role chunk, progress as ``reasoning_content``, the answer, the usage."""
        writer = ChunkWriter(self.chat.model)
        feed = ProgressFeed(self.bus, asyncio.get_running_loop())
        run = asyncio.create_task(self._run())
        try:
            yield writer.start()
            while not run.done():
                getter = asyncio.ensure_future(feed.queue.get())
                await asyncio.wait(
                    {run, getter}, timeout=PING_S, return_when=asyncio.FIRST_COMPLETED
                )
                if getter.done():
                    yield writer.progress(getter.result().text)
                    continue
                getter.cancel()
                if not run.done():
                    yield writer.ping()
            while not feed.queue.empty():
                yield writer.progress(feed.queue.get_nowait().text)
            outcome = _outcome(run)
            session = self.live.id if self.live is not None else None
            if isinstance(outcome, ApiError):
                yield writer.error(outcome.body())
            else:
                for chunk in writer.answer(outcome, session):
                    yield chunk
            yield writer.done()
        finally:
            feed.close()
            if not run.done():
                run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            self._finish()


def _outcome(run: asyncio.Task[AgentResult]) -> AgentResult | ApiError:
    if run.cancelled():  # not by this request's client: its session was closed meanwhile
        return ApiError(
            409, "the session was closed while this question ran", code="session_closed"
        )
    exc = run.exception()
    if exc is None:
        return run.result()
    if not isinstance(exc, ApiError):
        log.info("run failed: %s: %s", type(exc).__name__, exc)
    return run_error(exc)
