"""Stopping llama.cpp work in flight, and never exiting while it runs.

llama.cpp computes with the GIL released, on a pool thread. A process that exits while
that computation runs (Ctrl-C: the run is cancelled, the CLI returns 130) tears down what
the computation still uses (the ctypes callbacks llama.cpp logs through, the model and
its context) and sometimes dies of SIGSEGV instead of exiting (FACTS.md: 1 in 8 tries;
``benchmarks/bench_ctrl_c.py``). Two parts fix it:

* :class:`AbortSwitch`: every ``Llama`` context gets llama.cpp's abort callback, which
  ggml calls between the nodes of each compute graph; once the switch is on, the
  ``llama_decode`` in progress returns at the next node (milliseconds, also in the
  middle of a long prompt) and llama-cpp-python raises ``RuntimeError``. The object
  stays usable: the next call drops the unfinished cache entries and starts again.
* :func:`register` + an ``atexit`` hook: at interpreter exit, before daemon threads are
  frozen, every live engine aborts its calls, waits for the one in flight (a model load
  cannot be aborted: at most its few seconds) and frees its model.

The callback is ggml's ``bool (*)(void *data)``; it runs about 100,000 times per
call, so it is not Python (that would take the GIL each time, stalling the compute
threads whenever another thread runs Python). It is the C library's ``strlen`` over a
two-byte buffer that holds ``"\\0"`` (run) or ``"\\1"`` (abort): on x86-64 and ARM64 a
``size_t`` of 0 or 1 is returned where a ``bool`` is read. Elsewhere a Python callback
does the same, slower.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import platform
import sys
import threading
import weakref
from typing import Any, Protocol

EXIT_WAIT_S = 120.0
"""How long the exit hook waits for one engine's call in flight (a slow model load)."""

_NATIVE_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64"})
_LLAMA_LOGGER = "llama-cpp-python"


def _native_check() -> int | None:
    """The address of the C library's ``strlen``, where it can serve as the callback."""
    if sys.platform == "win32" or platform.machine().lower() not in _NATIVE_MACHINES:
        return None
    try:
        return ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    except (OSError, AttributeError):
        return None


class AbortSwitch:
    """A flag llama.cpp reads between graph nodes; on, the decode in progress stops."""

    def __init__(self, llama_cpp: Any, *, native: bool = True) -> None:
        self._flag = ctypes.create_string_buffer(2)  # b"\0\0": run; b"\1\0": abort
        address = _native_check() if native else None
        self.native = address is not None
        if address is not None:
            self._callback = llama_cpp.ggml_abort_callback(address)
        else:
            flag = self._flag
            self._callback = llama_cpp.ggml_abort_callback(lambda _data: flag.raw[0] == 1)
        self._set = getattr(llama_cpp, "llama_set_abort_callback", None)
        self._quiet = False

    def install(self, llm: Any) -> bool:
        """Give ``llm``'s context this switch; False where this llama-cpp-python has no
        way to (then a cancelled call runs to its end, and the exit hook waits for it)."""
        ctx = getattr(getattr(llm, "_ctx", None), "ctx", None)
        if self._set is None or ctx is None:
            return False
        self._set(ctx, self._callback, ctypes.cast(self._flag, ctypes.c_void_p))
        return True

    @property
    def on(self) -> bool:
        return self._flag.raw[0] == 1

    def turn_on(self) -> None:
        if not self._quiet:
            self._quiet = True
            _quiet_llama_log(+1)  # llama.cpp logs the aborted decode as an error
        self._flag[0] = b"\x01"

    def turn_off(self) -> None:
        self._flag[0] = b"\x00"
        if self._quiet:
            self._quiet = False
            _quiet_llama_log(-1)


_QUIET = {"count": 0, "level": logging.NOTSET}
_QUIET_LOCK = threading.Lock()


def _quiet_llama_log(step: int) -> None:
    """Silence llama-cpp-python's log while any switch is on; restore it after."""
    logger = logging.getLogger(_LLAMA_LOGGER)
    with _QUIET_LOCK:
        if step > 0 and _QUIET["count"] == 0:
            _QUIET["level"] = logger.level
            logger.setLevel(logging.CRITICAL + 1)
        _QUIET["count"] += step
        if step < 0 and _QUIET["count"] == 0:
            logger.setLevel(_QUIET["level"])


class Stoppable(Protocol):
    def shutdown(self, wait_s: float) -> bool: ...


_LIVE: weakref.WeakSet[Stoppable] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


def register(engine: Stoppable) -> None:
    """Have the exit hook stop ``engine`` (held weakly) before the interpreter exits."""
    with _LIVE_LOCK:
        _LIVE.add(engine)


def stop_all(wait_s: float = EXIT_WAIT_S) -> bool:
    """Abort every live engine's calls and wait for them; True if all stopped."""
    with _LIVE_LOCK:
        engines = list(_LIVE)
    return all([engine.shutdown(wait_s) for engine in engines])


def _at_exit() -> None:
    try:
        stop_all()
    except KeyboardInterrupt:  # a second Ctrl-C while a model load finishes: leave now,
        for stream in (sys.stdout, sys.stderr):  # without the teardown that would crash
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(130)


atexit.register(_at_exit)
