"""Ctrl-C on a real pseudo-terminal during `rlm run` on the embedded local model.

    python benchmarks/bench_ctrl_c.py --trials 5
    python benchmarks/bench_ctrl_c.py --moments prompt generate --trials 20

Each trial starts `rlm run` in a fresh process whose controlling terminal is a
pseudo-terminal (``pty.fork``), waits for a moment of the run (read from its ``--trace``
file as it is written), then types Ctrl-C (``\\x03``) on the terminal, so the kernel
sends SIGINT to the foreground process group as a shell would. It records how the
process ended: an exit code, a signal (a crash: SIGSEGV, SIGABRT...) or a hang (no exit
within ``--grace`` seconds, then SIGKILL). Target: every trial exits 130.

Moments (each with a random delay inside the window, so trials land at different points):

* ``load``     local root: 0.3-3 s after the first turn started (the model is loading)
* ``prompt``   local root: 4.5-12 s after it (llama.cpp reads the ~2,000-token prompt)
* ``generate`` scripted root, local sub-model: 5-9 s into a long llm_query answer
* ``cell``     scripted root: a cell sleeping after its llm_query answered (0.3-2 s in)
* ``batch``    scripted root: llm_batch of 4 long answers, 0.2-3 s after the first ended

The scripted root (``--as-cli``) is this file registering a FunctionEngine under the
provider ``benchroot`` and calling the real CLI; the sub-model is always ``local:``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import pty
import random
import select
import signal
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = {
    "generate": [
        "```repl\nx = llm_query('Count from 1 to 400, one number a line.')\nprint(len(x))\n```",
        "FINAL(done)",
    ],
    "cell": ["```repl\nx = llm_query('Say hi.')\nprint(x)\nimport time\ntime.sleep(120)\n```"],
    "batch": [
        "```repl\nxs = llm_batch(['Count from 1 to 150, one number a line.'] * 4)\n"
        "print([len(x) for x in xs])\n```",
        "FINAL(done)",
    ],
}
# moment -> (event type that starts the clock, nth occurrence, delay window in seconds)
TRIGGERS = {
    "load": ("TurnStarted", 1, (0.3, 3.0)),
    "prompt": ("TurnStarted", 1, (4.5, 12.0)),
    "generate": ("SubCallStarted", 1, (5.0, 9.0)),
    "cell": ("SubCallEnded", 1, (0.3, 2.0)),
    "batch": ("SubCallEnded", 1, (0.2, 3.0)),
}
CONTEXT = "\n".join(
    f"line {i}: sensor {i % 7} read {(i * 37) % 101} units at {i % 24:02d}:00" for i in range(300)
)


def as_cli(moment: str, argv: list[str]) -> int:
    """The child: `rlm` with a scripted root registered as ``benchroot:``."""
    from rlmagent import ScriptedEngine
    from rlmagent.cli import main
    from rlmagent.engines import register_engine

    replies = SCRIPTS[moment]
    register_engine("benchroot", lambda model, **kw: ScriptedEngine(list(replies) * 3))
    return main(argv)


def _events(trace: Path, offset: int) -> tuple[list[str], int]:
    try:
        with trace.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    types = []
    for raw in data[:end].splitlines():
        try:
            types.append(json.loads(raw).get("type", ""))
        except ValueError:
            continue
    return types, offset + end


def trial(moment: str, workdir: Path, grace: float, rng: random.Random) -> dict:
    trace = workdir / f"{moment}-{time.monotonic_ns()}.jsonl"
    ctx = workdir / "context.txt"
    common = ["--context", str(ctx), "--trace", str(trace), "--no-log", "--max-turns", "3"]
    if moment in SCRIPTS:
        me = os.path.abspath(__file__)
        argv = [sys.executable, me, "--as-cli", moment, "run", "Summarise the sensors."]
        argv += [*common, "--model", "benchroot:s", "--sub-model", "local:qwen2.5-coder-1.5b"]
    else:
        argv = [sys.executable, "-m", "rlmagent", "run", "Which sensor read 42 units?", *common]
    event, nth, (lo, hi) = TRIGGERS[moment]
    delay = rng.uniform(lo, hi)
    env = {**os.environ, "RLMAGENT_HOME": str(workdir / "home"), "TERM": "xterm"}
    t0 = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty
        # as typed in a shell: Ctrl-C kills by default (a shell's background job, e.g.
        # `nohup ... &`, starts its children with SIGINT ignored, and Python keeps that)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(argv[0], argv, env)
    output = bytearray()
    offset, seen, fire_at, fired_at = 0, 0, None, None
    status = None
    while status is None:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):
                output += os.read(fd, 65536)
        now = time.monotonic()
        if fire_at is None:
            types, offset = _events(trace, offset)
            seen += types.count(event)
            if seen >= nth:
                fire_at = now + delay
        if fire_at is not None and fired_at is None and now >= fire_at:
            os.write(fd, b"\x03")  # Ctrl-C, as typed
            fired_at = now
        if fired_at is None and now - t0 > 240:
            fired_at = now  # never reached the moment: count it as a hang below
            os.write(fd, b"\x03")
        if fired_at is not None and now - fired_at > grace:
            os.kill(pid, signal.SIGKILL)
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = raw
    end = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    os.close(fd)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        outcome = "hang" if sig == signal.SIGKILL else f"signal {signal.Signals(sig).name}"
    else:
        outcome = f"exit {os.WEXITSTATUS(status)}"
    reached = seen >= nth
    text = output.decode("utf-8", "replace").replace("\r", "")
    return {
        "moment": moment,
        "outcome": outcome if reached else f"{outcome} (moment never reached)",
        "delay_s": round(delay, 2),
        "exit_after_s": round(end - (fired_at or end), 2),
        "wall_s": round(end - t0, 1),
        "tail": text.strip().splitlines()[-2:] if text.strip() else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moments", nargs="+", choices=sorted(TRIGGERS), default=list(TRIGGERS))
    parser.add_argument("--trials", type=int, default=5, help="trials per moment")
    parser.add_argument("--grace", type=float, default=60.0, help="seconds to exit after ^C")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write one JSON line per trial here")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    counts: dict[str, collections.Counter[str]] = {m: collections.Counter() for m in args.moments}
    exits: dict[str, list[float]] = {m: [] for m in args.moments}
    sink = open(args.out, "a", encoding="utf-8") if args.out else None  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="rlm-ctrl-c-") as tmp:
        workdir = Path(tmp)
        (workdir / "context.txt").write_text(CONTEXT, encoding="utf-8")
        for i in range(args.trials):  # interleaved: a slow spell hits every moment alike
            for moment in args.moments:
                row = trial(moment, workdir, args.grace, rng)
                counts[moment][row["outcome"]] += 1
                exits[moment].append(row["exit_after_s"])
                print(
                    f"{moment:8s} #{i + 1}: {row['outcome']:10s} ^C at +{row['delay_s']:.1f} s, "
                    f"exited {row['exit_after_s']:.1f} s later; {' | '.join(row['tail'])[:110]}",
                    flush=True,
                )
                if sink:
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
    if sink:
        sink.close()
    print("\nmoment    trials  outcomes                     exit after ^C (median, max)")
    crashes = 0
    for moment in args.moments:
        n = sum(counts[moment].values())
        bad = n - counts[moment]["exit 130"]
        crashes += bad
        times = sorted(exits[moment])
        median = times[len(times) // 2]
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(counts[moment].items()))
        print(f"{moment:8s}  {n:6d}  {outcomes:28s} {median:.1f} s, {times[-1]:.1f} s")
    print(f"not exit 130: {crashes} of {sum(sum(c.values()) for c in counts.values())}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--as-cli":
        sys.exit(as_cli(sys.argv[2], sys.argv[3:]))
    main()
