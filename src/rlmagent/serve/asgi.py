"""Two ASGI pieces of ``rlm serve``: waiting for a client to go away, and an SSE response
that stops its producer when it does (whatever ASGI version the server speaks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


async def disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class EventStream(Response):
    """A ``text/event-stream`` response that stops its producer when the client leaves."""

    media_type = "text/event-stream"

    def __init__(
        self, body: AsyncIterator[bytes], headers: dict[str, str], on_close: Callable[[], None]
    ) -> None:
        self.body_iterator = body
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", **headers})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def pump() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        producer = asyncio.create_task(pump())
        watch = asyncio.create_task(disconnected(receive))
        try:
            await asyncio.wait({producer, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, watch):
                task.cancel()
            await asyncio.gather(producer, watch, return_exceptions=True)
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()
            self.on_close()
