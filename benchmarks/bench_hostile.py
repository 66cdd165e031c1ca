"""Host memory under hostile cells (issue 15): peak and kept RSS of the host process.

    python benchmarks/bench_hostile.py [--sandbox auto|bwrap|process] [--attack NAME ...]

Each attack runs in a fresh child process (``--child NAME``) that first does one warm-up
run (imports, the bubblewrap probe, the worker's bytecode), then resets its peak RSS
(``/proc/self/clear_refs``), runs one agent run whose cell is the attack, and reports:

- ``peak_mb``: ``VmHWM`` during the run minus ``VmRSS`` before it;
- ``kept_mb``: ``VmRSS`` after the run, with the ``AgentResult`` still held, minus
  ``VmRSS`` before it (it includes memory the allocator keeps after freeing it);
- ``result_mb``: the bytes the ``AgentResult`` itself holds (its records);
- ``raised``: the exception that came out of ``RLMAgent.run()``, if any;
- what the model saw (the cell's error or output, cut) and, with a trace file, how many
  event lines reached it.

The attacks:

- ``huge_name``: a host function called with a 10,000,000-character name (U+2028, whose
  ``repr`` is six characters each): the host's error text echoes it.
- ``huge_name_at_limit``: 5,000,000 characters (a 15 MB call frame, within 16 MiB).
- ``empty_objects``: a raw frame written to the channel pipe holding 12,000,000 empty
  JSON objects (36 MB).
- ``empty_objects_at_limit``: the same within the worker-to-host frame limit of the code
  under test (16 MiB after issue 15; 64 MiB before), 5,500,000 objects (16.5 MB).
- ``big_prompts``: 25 ``llm_query`` calls with a 24 MB prompt each (no window guard: the
  sub-engine does not know its window).
- ``big_prompts_at_limit``: 25 calls with a 15 MB prompt each.
- ``surrogates``: output and a prompt holding lone UTF-16 surrogates, with a trace file.

Run it against an older tree with ``PYTHONPATH=<tree>/src python
benchmarks/bench_hostile.py``; the script itself uses only public API that both have.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ATTACKS = (
    "huge_name",
    "huge_name_at_limit",
    "empty_objects",
    "empty_objects_at_limit",
    "big_prompts",
    "big_prompts_at_limit",
    "surrogates",
)

FIND_HOST = (
    "host = next(c.cell_contents for c in llm_query.__closure__\n"
    "            if hasattr(c.cell_contents, 'call_host')).call_host\n"
)

RAW_FRAME = """
import os, stat
body = (b'{{"type":"call","id":1,"method":"llm_query","params":{{"args":[['
        + b'{{}},' * ({n} - 1) + b'{{}}]],"kwargs":{{}}}}}}')
frame = len(body).to_bytes(4, "big") + body
del body
for fd in range(3, 64):
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):  # pipes, or a socket pair
            continue
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass
print("written", len(frame))
"""

BIG_PROMPTS = """
p = "x" * {size}
sent, last = 0, None
for i in range(25):
    try:
        llm_query(p + str(i))
        sent += 1
    except Exception as exc:
        last = f"{{type(exc).__name__}}: {{str(exc)[:200]}}"
print("answered", sent, "last error:", last)
"""

HUGE_NAME = FIND_HOST + (
    "try:\n    host('\\u2028' * {n}, {{'args': [], 'kwargs': {{}}}})\n"
    "except Exception as exc:\n    print(type(exc).__name__, str(exc)[:200])\n"
)

CELLS = {
    "huge_name": HUGE_NAME.format(n=10_000_000),
    "huge_name_at_limit": HUGE_NAME.format(n=5_000_000),
    "empty_objects": RAW_FRAME.format(n=12_000_000),
    "empty_objects_at_limit": RAW_FRAME.format(n=5_500_000),
    "big_prompts": BIG_PROMPTS.format(size=24_000_000),
    "big_prompts_at_limit": BIG_PROMPTS.format(size=15_000_000),
    "surrogates": "print('lone \\ud800 surrogate')\nprint(llm_query('ask \\udfff'))\n",
}


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _retained(value, seen=None) -> int:
    """Bytes a result holds (dataclasses, containers, strings; each object once)."""
    import dataclasses

    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        children = list(value)
    else:
        children = []
    return sys.getsizeof(value) + sum(_retained(c, seen) for c in children)


def _sandbox(kind: str):
    from rlmagent.sandbox import SubprocessSandbox

    return SubprocessSandbox() if kind == "auto" else SubprocessSandbox(isolation=kind)


def child(attack: str, kind: str) -> dict:
    from rlmagent import EventBus, FunctionEngine, RLMAgent, ScriptedEngine

    published = []
    bus = EventBus()
    bus.subscribe(lambda event: published.append(type(event).__name__))

    def agent(cell: str, trace: str | None = None) -> RLMAgent:
        final = "```repl\nFINAL('done')\n```"
        root = ScriptedEngine([f"```repl\n{cell}\n```", final, final, final])
        return RLMAgent(
            root,
            "m",
            sub_engine=FunctionEngine(lambda messages, model: "ok"),
            sandbox=_sandbox(kind),
            trace=trace,
            bus=bus,
            max_turns=3,
        )

    agent("print(llm_query('warm up'))").run("q", context="c")
    trace = None
    if attack == "surrogates":
        trace = os.path.join(tempfile.mkdtemp(), "run.jsonl")
    runner = agent(CELLS[attack], trace)
    published.clear()
    before = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    raised = None
    result = None
    t0 = time.perf_counter()
    try:
        result = runner.run("q", context="c")
    except Exception as exc:
        raised = f"{type(exc).__name__}: {str(exc)[:200]}"
    elapsed = time.perf_counter() - t0
    peak, after = _status("VmHWM"), _status("VmRSS")
    seen = None
    if result is not None and result.trajectory and result.trajectory[0].cells:
        r = result.trajectory[0].cells[0].result
        seen = (r.error or r.output)[:300]
    lines = None
    if trace is not None:  # the header line is not an event
        with open(trace, "rb") as f:
            lines = sum(1 for line in f if line.strip()) - 1
    return {
        "attack": attack,
        "peak_mb": round((peak - before) / 2**20, 1),
        "kept_mb": round((after - before) / 2**20, 1),
        "result_mb": round(_retained(result) / 2**20, 2),
        "raised": raised,
        "seen": seen,
        "events": len(published),
        "trace_lines": lines,
        "elapsed_s": round(elapsed, 2),
        "keep": result is not None,  # the result stays referenced until here
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sandbox", default="auto", choices=("auto", "bwrap", "process"))
    parser.add_argument("--attack", action="append", choices=ATTACKS)
    parser.add_argument("--child", choices=ATTACKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.sandbox)))
        return
    rows = []
    for attack in args.attack or ATTACKS:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", attack, "--sandbox", args.sandbox],
            capture_output=True,
            text=True,
        )
        try:
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            row = {"attack": attack, "failed": proc.returncode, "stderr": proc.stderr[-500:]}
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
