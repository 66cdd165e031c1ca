"""What the two network engines share: clients, retries, parsing guards, cost.

:class:`SDKEngine` holds one synchronous client (built with the engine) and one async
client (built on first ``agenerate``, on the engine's own :class:`LoopThread`), both
with the SDK's own retries off and the engine's timeout. Each request goes through
:func:`~rlmagent.engines.retry.call_with_retries`; the response body is read as JSON
by the engine itself, so a truncated or non-JSON body is a clear, retried failure
instead of an AttributeError deep in a run. Requests go through the SDK's generic
``client.post(path, body=..., cast_to=str)`` (its documented way to send a raw body):
same auth, headers, timeouts and error types as the typed methods, without their
per-request argument transformation (a batch of 64 loopback calls through the bare SDK
took 40-55% less time this way). When ``aiohttp`` is installed (the ``openai`` and
``anthropic`` extras install it), the async client sends through the SDK's aiohttp
transport (``DefaultAioHttpClient``), which costs about 40% less CPU per request than its
default httpx one: what bounds a large batch against a fast server. A :class:`SendGate`
lets concurrent async requests onto the wire one by one, each as soon as it is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from rlmagent.engines.base import EngineBase
from rlmagent.engines.loop_thread import LoopThread
from rlmagent.engines.pricing import Price, PriceTable
from rlmagent.engines.retry import (
    Failure,
    RetryPolicy,
    acall_with_retries,
    call_with_retries,
    is_retryable_status,
    parse_retry_after,
)
from rlmagent.engines.windows import ContextWindowTable
from rlmagent.errors import UsageError
from rlmagent.types import Completion, Message

DEFAULT_TIMEOUT = 120.0
"""Seconds allowed for one HTTP request (connect + answer), per attempt."""

SNIPPET_CHARS = 200
"""How much of a bad response body an error message quotes."""


def async_http_client(sdk: Any, **options: Any) -> Any:
    """The SDK's aiohttp-based HTTP client when ``aiohttp`` is installed, else its httpx one.

    Both SDKs name them ``DefaultAioHttpClient`` (which raises RuntimeError when aiohttp
    is missing) and ``DefaultAsyncHttpxClient``; ``options`` are httpx client options.
    """
    factory = getattr(sdk, "DefaultAioHttpClient", None)
    if factory is not None:
        try:
            return factory(**options)
        except (RuntimeError, ImportError):
            pass
    return sdk.DefaultAsyncHttpxClient(**options)


_GATE_HELD: contextvars.ContextVar[SendGate | None] = contextvars.ContextVar(
    "rlmagent_gate_held", default=None
)


class SendGate:
    """Lets one async request at a time be built, from its start until it is sent.

    Building a request costs the SDK about a millisecond of CPU. Sixteen requests started
    together each ran their build in turn, and the transport's write of each one (a task
    aiohttp creates after the build, on Python 3.11) queued behind all the other builds:
    every request left after all sixteen were built, and the server started that much
    later. Through the gate, request k is on the wire after k builds. Requests waiting
    for their answer are not held; only the building is serial, as it is anyway (one
    event loop).

    :meth:`building` wraps one attempt; :meth:`on_request` is the async HTTP client's
    ``request`` event hook, which runs when the request is built. It releases the gate
    two loop turns later, so the transport's write, scheduled right after the hook, runs
    first. A request that fails before it is sent releases the gate on the way out.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def building(self) -> AsyncIterator[None]:
        await self._lock.acquire()
        token = _GATE_HELD.set(self)
        try:
            yield
        finally:
            if _GATE_HELD.get() is self:  # never reached on_request
                self._lock.release()
            _GATE_HELD.reset(token)

    async def on_request(self, request: object) -> None:
        if _GATE_HELD.get() is not self:  # a redirect or retry of a sent request
            return
        _GATE_HELD.set(None)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._lock.release)


class MalformedResponse(Exception):
    """The server answered, but not with what the wire format promises."""

    def __init__(self, reason: str, status: int | None) -> None:
        super().__init__(reason)
        self.status = status


def normalise_finish_reason(reason: Any) -> str:
    """``"stop"`` / ``"length"`` for the usual spellings; anything else as it is."""
    if reason is None or reason in ("stop", "end_turn", "stop_sequence", "eos"):
        return "stop"
    if reason in ("length", "max_tokens", "model_length"):
        return "length"
    return str(reason)


def snippet(text: str) -> str:
    """A short, one-line quote of a response body for error messages."""
    text = " ".join(text.split())
    return repr(text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "...")


SUCCESS_STATUS = 200
"""The SDK raises for every non-2xx status; chat endpoints answer success with 200."""


def read_json(text: str) -> dict[str, Any]:
    """The JSON object of a successful response body, or :class:`MalformedResponse`."""
    try:
        data = json.loads(text)
    except ValueError:
        raise MalformedResponse(
            f"malformed JSON in response body {snippet(text)}", SUCCESS_STATUS
        ) from None
    if not isinstance(data, dict):
        raise MalformedResponse(
            f"response body is not a JSON object: {snippet(text)}", SUCCESS_STATUS
        )
    error = data.get("error")
    if error and not data.get("choices") and not data.get("content"):
        # some gateways report upstream failures inside a 200 body
        code = error.get("code") if isinstance(error, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        raise MalformedResponse(
            f"error in response body: {message}", code if isinstance(code, int) else None
        )
    return data


def _timed_out(exc: BaseException) -> bool:
    """Whether the first error of an explicit ``raise ... from`` chain was a timeout.

    The SDKs' aiohttp transport reports every dropped connection as a ConnectTimeout;
    the aiohttp error underneath tells the two apart.
    """
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__


def classify_sdk_error(exc: BaseException, sdk: Any) -> Failure | None:
    """Sort an exception of the ``openai`` / ``anthropic`` SDK (same shapes) into a Failure."""
    if isinstance(exc, MalformedResponse):
        retryable = exc.status is None or exc.status < 400 or is_retryable_status(exc.status)
        return Failure(str(exc), status=exc.status, retryable=retryable)
    if isinstance(exc, sdk.APITimeoutError) and _timed_out(exc):
        return Failure("request timed out", status=None)
    if isinstance(exc, sdk.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f": {cause}" if cause else ""
        return Failure(f"connection failed or dropped{detail}", status=None)
    if isinstance(exc, sdk.APIStatusError):
        status = int(exc.status_code)
        headers = exc.response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None and headers.get("retry-after-ms"):
            ms = parse_retry_after(headers.get("retry-after-ms"))
            retry_after = None if ms is None else ms / 1000
        body = exc.response.text if exc.response is not None else ""
        return Failure(
            f"server answered {snippet(body)}",
            status=status,
            retryable=is_retryable_status(status),
            retry_after=retry_after,
        )
    return None


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Copy and validate chat messages: dicts with a known role and string content."""
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence):
        raise UsageError(f"messages must be a list of dicts, got {type(messages).__name__}")
    if not messages:
        raise UsageError("messages must not be empty")
    out: list[Message] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("system", "user", "assistant"):
            raise UsageError(
                f"message {i} must be a dict with role system/user/assistant, got {m!r:.80}"
            )
        if not isinstance(m.get("content"), str):
            raise UsageError(f"message {i} content must be a str")
        out.append({"role": str(m["role"]), "content": m["content"]})
    return out


class _Clients:
    """The engine's SDK clients, kept apart so a finalizer can close them."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync
        self.async_: Any = None

    async def aclose(self) -> None:
        if self.async_ is not None:
            await self.async_.close()
            self.async_ = None


def _shutdown(loop: LoopThread, clients: _Clients) -> None:
    with contextlib.suppress(Exception):
        clients.sync.close()
    loop.close(clients.aclose)


class SDKEngine(EngineBase):
    """Base of the engines built on an official HTTP SDK. Subclasses fill in the wire.

    Its ``identity`` is ``provider@base_url``; ``price`` and ``context_window`` read the
    engine's :class:`PriceTable` and :class:`ContextWindowTable`.
    """

    provider: str = "sdk"

    client_classes: tuple[str, str] = ("", "")
    """Names of the SDK's synchronous and asynchronous client classes."""

    def __init__(
        self,
        model: str,
        *,
        provider: str,
        sdk: Any,
        base_url: str,
        api_key: str,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        retry: RetryPolicy | None,
        max_retries: int | None,
        prices: PriceTable,
        windows: ContextWindowTable,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise UsageError(f"{provider}: a model name is required, got {model!r}")
        if timeout is not None and timeout <= 0:
            raise UsageError(f"{provider}: timeout must be > 0 seconds, got {timeout!r}")
        policy = retry or RetryPolicy()
        if max_retries is not None:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        self.model = model
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._sdk = sdk
        self._api_key = api_key
        self._headers = dict(headers or {})
        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.retry = policy
        self.prices = prices
        self.windows = windows
        self._clients = _Clients(self._make_client(asynchronous=False))
        self._gate = SendGate()
        self._loop = LoopThread(f"rlmagent-{provider}-loop")
        self._finalizer = weakref.finalize(self, _shutdown, self._loop, self._clients)

    def _make_client(self, *, asynchronous: bool) -> Any:
        cls = getattr(self._sdk, self.client_classes[asynchronous])
        http_client = None
        if asynchronous:
            hooks = {"request": [self._gate.on_request]}
            http_client = async_http_client(self._sdk, event_hooks=hooks)
        return cls(
            api_key=self._api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,
            default_headers=self._headers or None,
            http_client=http_client,
        )

    def _classify(self, exc: BaseException) -> Failure | None:
        return classify_sdk_error(exc, self._sdk)

    # -- to be filled in by subclasses -------------------------------------------------
    path: str = "/chat/completions"
    """Where requests go, relative to the client's base URL."""

    def _build_request(
        self,
        messages: list[Message],
        model: str,
        temperature: float,
        max_tokens: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """The JSON body of one request."""
        raise NotImplementedError

    def _parse(
        self, data: dict[str, Any], model: str, status: int, messages: list[Message]
    ) -> Completion:
        raise NotImplementedError

    # -- the Engine protocol -----------------------------------------------------------
    def _prepare(
        self,
        messages: Sequence[Message],
        model: str | None,
        temperature: float,
        max_tokens: int,
        kwargs: dict[str, Any],
    ) -> tuple[str, list[Message], dict[str, Any]]:
        if not self._finalizer.alive:
            raise UsageError(f"this {self.provider} engine is closed")
        model = model or self.model
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise UsageError(f"max_tokens must be a positive int, got {max_tokens!r}")
        msgs = check_messages(messages)
        request = self._build_request(msgs, model, float(temperature), max_tokens, kwargs)
        return model, msgs, request

    def _completion(self, text: str, model: str, messages: list[Message]) -> Completion:
        return self._parse(read_json(text), model, SUCCESS_STATUS, messages)

    def generate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        """One chat completion. Extra keyword arguments go into the request body."""
        model, msgs, request = self._prepare(messages, model, temperature, max_tokens, kwargs)

        def attempt() -> Completion:
            text = self._clients.sync.post(self.path, body=request, cast_to=str)
            return self._completion(text, model, msgs)

        return call_with_retries(
            attempt, self._classify, self.retry, provider=self.provider, model=model
        )

    async def agenerate(
        self,
        messages: Sequence[Message],
        *,
        model: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        **kwargs: Any,
    ) -> Completion:
        """The async twin of :meth:`generate`, on the engine's own event loop."""
        model, msgs, request = self._prepare(messages, model, temperature, max_tokens, kwargs)

        async def attempt() -> Completion:
            if self._clients.async_ is None:
                self._clients.async_ = self._make_client(asynchronous=True)
            async with self._gate.building():
                text = await self._clients.async_.post(self.path, body=request, cast_to=str)
            return self._completion(text, model, msgs)

        try:
            return await self._loop.run(
                acall_with_retries,
                attempt,
                self._classify,
                self.retry,
                provider=self.provider,
                model=model,
            )
        except asyncio.CancelledError:
            if not self._finalizer.alive:  # close() ended the call, not the caller
                raise UsageError(
                    f"this {self.provider} engine was closed during the call"
                ) from None
            raise

    # -- what the engine knows of its models -------------------------------------------
    @property
    def identity(self) -> str:
        return f"{self.provider}@{self.base_url}" if self.base_url else self.provider

    def price(self, model: str) -> Price | None:
        return self.prices.lookup(model)

    def context_window(self, model: str) -> int | None:
        return self.windows.lookup(model)

    def cost(
        self, model: str, prompt_tokens: int, completion_tokens: int, **cache: int
    ) -> float | None:
        """USD for one call, or None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        return price.cost(prompt_tokens, completion_tokens, **cache)

    def close(self) -> None:
        """Close the clients and stop the engine's loop thread. Safe to call twice."""
        self._finalizer()

    def __enter__(self) -> SDKEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r})"
