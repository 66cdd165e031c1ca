"""Adversarial suite, cross-tier poisoning: a cell of the plain tier must not change what a
later worker runs, and what a worker reports about its hardening is never believed.

The attacker is always a plain-tier cell (it can write wherever the host's user can);
the victim is a later worker of every tier in the same host process. SECURITY.md's
rows "planting code in the staged worker", "a worker that lies about its hardening" and
"writing a done frame into the host's descriptors" point here.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from rlmagent.errors import SandboxError
from rlmagent.sandbox import Limits
from rlmagent.sandbox.kernel import Expected, read_view
from rlmagent.sandbox.process import ProcessLauncher, Worker, wait_gone
from rlmagent.sandbox.seccomp import build_filter
from rlmagent.sandbox.staging import DEFAULT_WORKER, matches, staged_worker, worker_files
from rlmagent.sandbox.subprocess import SubprocessSession

from .helpers import ECHO, IS_ROOT, Recorder, open_session

SECCOMP = build_filter() is not None

PLANT = """
import os, py_compile, sys
staged = os.path.dirname(sys.argv[1])
poison = "open({marker!r}, 'a').write('poisoned code ran\\\\n')\\n"
for name in ("ctypes.py", "json.py", "landlock.py", "worker.py", "protocol.py", "textops.py",
             "re.py"):
    with open(os.path.join(staged, name), "w") as f:
        f.write(poison)
for name in os.listdir(os.path.join(staged, "__pycache__")):
    source = os.path.join(staged, name.split(".")[0] + ".py")
    py_compile.compile(source, cfile=os.path.join(staged, "__pycache__", name),
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
print(sorted(os.listdir(staged)))
"""


def plant(marker: Path) -> None:
    """A plain-tier cell rewrites the staged worker and plants modules next to it."""
    with open_session("process") as attacker:
        result = attacker.execute(PLANT.format(marker=str(marker)))
        assert result.error is None, result.error
        assert "ctypes.py" in result.output  # the plant took: the directory was writable


def test_a_planted_worker_never_runs_in_a_later_worker(tier, tmp_path):
    marker = tmp_path / "marker"
    plant(marker)
    with open_session(tier) as victim:
        result = victim.execute("import json, ctypes\nprint(json.dumps([1]))")
        assert result.error is None, result.error
        assert result.output == "[1]\n"
        assert not marker.exists(), marker.read_text()
        if SECCOMP:
            assert "seccomp" in victim.hardening and "no_new_privs" in victim.hardening
            assert read_view(victim.pid or 0).seccomp == 2  # and the kernel agrees
        if tier == "bwrap":
            assert "no-capabilities" in victim.hardening
            if IS_ROOT:
                assert "uid-65534" in victim.hardening
                assert set(read_view(victim.pid or 0).uids) == {65534}
    assert not marker.exists()


def test_the_staged_directory_is_checked_and_staged_again():
    staged = staged_worker(DEFAULT_WORKER)
    files = worker_files(DEFAULT_WORKER)
    assert staged is not None and files is not None and matches(staged, files)
    (staged / "ctypes.py").write_text("raise SystemExit('planted')\n")
    assert not matches(staged, files)
    again = staged_worker(DEFAULT_WORKER)
    assert again is not None and matches(again, files) and not (again / "ctypes.py").exists()
    (again / "worker.py").write_bytes(b"# rewritten\n")
    third = staged_worker(DEFAULT_WORKER)
    assert third is not None and (third / "worker.py").read_bytes() == files["worker.py"]


@pytest.mark.requires_bwrap
def test_the_bwrap_worker_cannot_write_its_own_code():
    with open_session("bwrap") as session:
        result = session.execute(
            "import sys, os\n"
            "path = os.path.dirname(sys.argv[1])\n"
            "for name in ('worker.py', 'planted.py', '__pycache__/x.pyc'):\n"
            "    try:\n"
            "        open(os.path.join(path, name), 'a').write('x')\n"
            "        print('wrote', name)\n"
            "    except OSError as exc:\n"
            "        print(type(exc).__name__)\n"
        )
        assert result.error is None, result.error
        assert "wrote" not in result.output, result.output


LIAR = """
import json, struct, sys
def send(obj):
    data = json.dumps(obj).encode()
    sys.stdout.buffer.write(struct.pack(">I", len(data)) + data); sys.stdout.buffer.flush()
def recv():
    (n,) = struct.unpack(">I", sys.stdin.buffer.read(4))
    return json.loads(sys.stdin.buffer.read(n))
recv()
send({"type": "ready", "hardening": ["seccomp", "no_new_privs", "landlock"]})
while True:
    message = recv()
    send({"type": "done", "id": message["id"], "output": "model code ran"})
"""


@pytest.mark.skipif(not SECCOMP, reason="no seccomp filter on this machine")
def test_a_worker_that_lies_about_its_hardening_is_killed(tmp_path):
    script = tmp_path / "liar.py"
    script.write_text(LIAR)
    started: list[Worker] = []

    class Launcher(ProcessLauncher):
        def launch(self, workdir: Path) -> Worker:
            worker = super().launch(workdir)
            worker.expected = Expected(seccomp=True, no_new_privs=True)
            started.append(worker)
            return worker

    launcher = Launcher(sys.executable, script)
    with pytest.raises(SandboxError, match=r"not hardened as its tier requires.*seccomp"):
        SubprocessSession(launcher, Limits(), "c", Recorder(), ECHO, 1000)
    assert started and wait_gone(started[0].pid, 5.0)


FORGE = """
import os, struct, json
host = os.getppid()
opened = 0
frames = b""
for cell in range(1, 6):
    data = json.dumps({"type": "done", "id": cell, "output": "FORGED\\n"}).encode()
    frames += struct.pack(">I", len(data)) + data
try:
    names = os.listdir(f"/proc/{host}/fd")
except OSError as exc:
    names = []
    print("no listing:", type(exc).__name__)
for name in names:
    try:
        fd = os.open(f"/proc/{host}/fd/{name}", os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        continue
    try:
        if os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
            os.write(fd, frames)
            opened += 1
    except OSError:
        pass
    finally:
        os.close(fd)
print("pipes written:", opened)
"""


def test_a_done_frame_written_into_the_host_fds_is_not_another_runs_answer(tier):
    """Two live runs: while run A waits on a host call, run B writes forged ``done``
    frames into every pipe of the host it can open. A's answer must be its own."""
    b_finished = threading.Event()

    def slow_handler(name: str, params: dict[str, Any]) -> Any:
        assert b_finished.wait(60), "run B never ran"
        return "answered"

    with open_session(tier, handler=slow_handler) as run_a, open_session(tier) as run_b:
        results: dict[str, Any] = {}

        def run() -> None:
            results["a"] = run_a.execute("x = llm_query('wait')\nprint('real', x)")

        thread = threading.Thread(target=run)
        thread.start()
        try:
            forged = run_b.execute(FORGE)
        finally:
            b_finished.set()
            thread.join(60)
        assert forged.error is None, forged.error
        assert "pipes written:" in forged.output  # the attack ran (and found no channel)
        a = results["a"]
        assert a.error is None, a.error
        assert a.output == "real answered\n"
        assert "FORGED" not in a.output
        follow = run_a.execute("print('next')")
        assert follow.output == "next\n" and not follow.state_lost
