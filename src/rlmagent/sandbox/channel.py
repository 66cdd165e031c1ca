"""The host's end of the frame channel to a worker: non-blocking, with deadlines.

The worker is hostile. The host never blocks on it without a deadline: a worker that
stops reading cannot wedge the host in ``write``, one that floods frames is read only as
fast as the host consumes them (the pipe applies back-pressure), and anything that is
not a well-formed frame (see :mod:`rlmagent.sandbox.protocol`) ends the worker.
There is no reader thread: the thread that runs a cell reads its frames itself.

What it reads is bounded before it is parsed: at most ``max_bytes``
(:data:`~rlmagent.sandbox.protocol.WORKER_FRAME_BYTES`, 16 MiB) a frame, at most
``max_items`` array elements and object members and ``max_depth`` levels of nesting
(:func:`~rlmagent.sandbox.protocol.check_shape`, on the bytes). What it writes may be
up to :data:`~rlmagent.sandbox.protocol.HOST_FRAME_BYTES` (64 MiB).
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from typing import Any, Literal

from rlmagent.sandbox import protocol

Event = Literal["frame", "timeout", "eof", "garbage"]
READ_CHUNK = 1 << 16
MAX_READ = 1 << 20


class Channel:
    """Frames over a pair of pipe descriptors (``rx`` from the worker, ``tx`` to it).

    The channel owns both descriptors and closes them in :meth:`close`.
    """

    def __init__(
        self,
        rx: int,
        tx: int,
        *,
        max_bytes: int = protocol.WORKER_FRAME_BYTES,
        max_items: int = protocol.WORKER_FRAME_ITEMS,
        max_depth: int = protocol.WORKER_FRAME_DEPTH,
    ) -> None:
        os.set_blocking(rx, False)
        os.set_blocking(tx, False)
        self.rx, self.tx = rx, tx
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.max_depth = max_depth
        self._buffer = bytearray()
        self._poll_in = select.poll()
        self._poll_in.register(rx, select.POLLIN)
        self._poll_out = select.poll()
        self._poll_out.register(tx, select.POLLOUT)

    def send(self, message: dict[str, Any] | bytes, deadline: float) -> bool:
        """Write one frame (a message, or a frame :func:`protocol.encode` made) before
        ``deadline`` (``time.monotonic``); False if the worker is gone or did not read it
        in time. A message that does not encode raises (``FrameError``, ``TypeError``)."""
        frame = message if isinstance(message, bytes) else protocol.encode(message)
        data = memoryview(frame)
        while data:
            try:
                data = data[os.write(self.tx, data) :]
                continue
            except BlockingIOError:
                pass
            except OSError:
                return False
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return False
            events = self._poll_out.poll(timeout * 1000)
            if events and events[0][1] & (select.POLLERR | select.POLLHUP):
                return False
        return True

    def receive(self, deadline: float) -> tuple[Event, Any]:
        """The next frame, or why there is none: ``timeout``, ``eof`` or ``garbage``."""
        while True:
            event = self._parse()
            if event is not None:
                return event
            timeout = deadline - time.monotonic()
            if timeout <= 0 or not self._poll_in.poll(timeout * 1000):
                return "timeout", None
            try:
                chunk = os.read(self.rx, min(max(READ_CHUNK, self._missing()), MAX_READ))
            except BlockingIOError:
                continue
            except OSError as exc:
                return "eof", str(exc)
            if not chunk:
                return ("garbage", "stream ended inside a frame") if self._buffer else ("eof", None)
            self._buffer += chunk

    def _missing(self) -> int:
        if len(self._buffer) < protocol.HEADER.size:
            return 0
        (length,) = protocol.HEADER.unpack_from(self._buffer)
        return min(length, self.max_bytes) + protocol.HEADER.size - len(self._buffer)

    def _parse(self) -> tuple[Event, Any] | None:
        size = protocol.HEADER.size
        if len(self._buffer) < size:
            return None
        (length,) = protocol.HEADER.unpack_from(self._buffer)
        if length > self.max_bytes:
            return "garbage", f"announced frame of {length:,} bytes exceeds {self.max_bytes:,}"
        if len(self._buffer) < size + length:
            return None
        with memoryview(self._buffer) as view:  # one copy of the body, not two
            body = bytes(view[size : size + length])
        del self._buffer[: size + length]
        if not self._buffer:  # let go of a large frame's room
            self._buffer = bytearray()
        try:
            return "frame", protocol.decode(
                body, max_items=self.max_items, max_depth=self.max_depth
            )
        except protocol.FrameError as exc:
            return "garbage", str(exc)

    def close(self) -> None:
        for fd in (self.rx, self.tx):
            with contextlib.suppress(OSError):
                os.close(fd)
