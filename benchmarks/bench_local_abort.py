"""What the local engine's abort switch costs a call, and how fast it stops one.

    python benchmarks/bench_local_abort.py --rounds 3

One LocalEngine on the default model; rounds interleave three settings of llama.cpp's
abort callback on its context: ``native`` (the engine's: the C library's ``strlen`` over
a flag, no Python), ``python`` (a ctypes Python callback reading the same flag) and
``none`` (no callback). Each call reads the same ~400-token prompt from scratch (the
KV cache is cleared) and writes 48 tokens at temperature 0. Prints the median wall and
CPU seconds of each setting (other processes share these CPUs: compare CPU time), then
how long a cancelled call took to stop mid-prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import statistics
import time

PROMPT = [
    {
        "role": "user",
        "content": "Count from 1 to 40, comma separated. "
        + " ".join(f"filler{i}" for i in range(100)),
    }
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from rlmagent.engines import get_engine

    engine = get_engine("local:qwen2.5-coder-1.5b", n_ctx=4096)
    engine.generate([{"role": "user", "content": "hi"}], max_tokens=1)  # load
    llm, llama_cpp = engine._llm, engine._llama_cpp
    flag = engine._switch._flag
    python_cb = llama_cpp.ggml_abort_callback(lambda _data: flag.raw[0] == 1)
    settings = {
        "native": (engine._switch._callback, ctypes.cast(flag, ctypes.c_void_p)),
        "python": (python_cb, None),
        "none": (llama_cpp.ggml_abort_callback(), None),
    }
    times: dict[str, list[float]] = {name: [] for name in settings}
    cpu: dict[str, list[float]] = {name: [] for name in settings}
    names = list(settings)
    for r in range(args.rounds):
        for name in names[r % 3 :] + names[: r % 3]:  # each setting first in turn
            callback, data = settings[name]
            llama_cpp.llama_set_abort_callback(llm._ctx.ctx, callback, data)
            llm.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            out = engine.generate(PROMPT, temperature=0, max_tokens=48)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            assert out.usage.completion_tokens > 0
    prompt_tokens = out.usage.prompt_tokens
    for name, values in times.items():
        print(
            f"{name:7s} wall median {statistics.median(values):.2f} s "
            f"({', '.join(f'{v:.2f}' for v in values)}), CPU median "
            f"{statistics.median(cpu[name]):.2f} s, for {prompt_tokens} + 48 tokens"
        )
    engine._switch.install(llm)  # the engine's own again

    async def cancel_mid_prompt() -> float:
        llm.reset()
        task = asyncio.create_task(engine.agenerate(PROMPT, temperature=0, max_tokens=48))
        await asyncio.sleep(1.0)
        t0 = time.perf_counter()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(engine._lock.acquire)
        engine._lock.release()
        return time.perf_counter() - t0

    stops = [asyncio.run(cancel_mid_prompt()) for _ in range(args.rounds)]
    print(
        f"cancelled 1.0 s into the prompt: stopped after median {statistics.median(stops):.3f} s "
        f"(aborted calls: {engine.aborted_calls} of {args.rounds})"
    )


if __name__ == "__main__":
    main()
