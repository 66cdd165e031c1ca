"""Starting a worker process: one spawner thread, a socket-pair channel, a clean env.

Every tier starts its worker through :func:`spawn`. The channel is a pair of Unix socket
pairs, not pipes: a socket cannot be opened through ``/proc/<pid>/fd/N``, so model code
of one worker that can see the host's descriptors (the plain tier) cannot write frames
into another session's channel. Processes are started from one long-lived thread (see
:class:`_Spawner`), so that "dies with its parent" means dies with the host.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import IO, Any, TypeVar

from rlmagent.sandbox.channel import Channel

T = TypeVar("T")
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def clean_env(home: str) -> dict[str, str]:
    """The whole environment of a worker: nothing inherited from the host."""
    return {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": home, "TMPDIR": home}


class _Spawner:
    """One long-lived thread that starts every worker process.

    "Dies with its parent" (``PR_SET_PDEATHSIG``, bubblewrap's ``--die-with-parent``)
    follows the *thread* that started a process: started from a pooled thread that later
    exits, a sandbox would be killed mid-run. Started from this thread, which lives as
    long as the host process, it dies with the host and only then.
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], T]) -> T:
        if threading.current_thread() is self._thread:
            return fn()
        future: Future[T] = Future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="rlmagent-sandbox-spawner", daemon=True
                )
                self._thread.start()
            self._jobs.put((fn, future))
        return future.result()

    def _run(self) -> None:
        while True:
            fn, future = self._jobs.get()
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to the caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


def spawn(
    argv: list[str],
    *,
    cwd: str | Path,
    env: dict[str, str],
    pass_fds: tuple[int, ...] = (),
) -> tuple[subprocess.Popen[bytes], Channel, IO[bytes]]:
    """Start ``argv`` with a fresh frame channel on its stdin/stdout.

    The umask is fixed so that directories bubblewrap creates (parents of the bound
    Python installation) can be traversed by the unprivileged sandbox user.
    """
    to_worker_r, to_worker_w = _socket_pair()
    from_worker_r, from_worker_w = _socket_pair()
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - kept open for the worker's life
    try:
        proc = _SPAWNER.call(
            lambda: subprocess.Popen(
                argv,
                stdin=to_worker_r,
                stdout=from_worker_w,
                stderr=stderr,
                cwd=cwd,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,
                close_fds=True,
                umask=0o022,
            )
        )
    except BaseException:
        for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
            os.close(fd)
        stderr.close()
        raise
    os.close(to_worker_r)
    os.close(from_worker_w)
    return proc, Channel(from_worker_r, to_worker_w), stderr


def _socket_pair() -> tuple[int, int]:
    """Descriptors of a connected pair: the first end reads, the second writes."""
    reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(OSError):
        reader.shutdown(socket.SHUT_WR)
        writer.shutdown(socket.SHUT_RD)
    return reader.detach(), writer.detach()
