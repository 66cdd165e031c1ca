"""tests/leaks.py: a leaked sandbox worker fails the test that leaked it, and no other.

A small suite runs in a fresh pytest process with the fixture: one test leaves a
process running a ``worker.py`` behind, the next does nothing wrong.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent

SUITE = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path

    LEFT = Path(__file__).with_name("left.txt")

    def test_leaks_a_worker(tmp_path):
        worker = tmp_path / "worker.py"
        worker.write_text("import time\\ntime.sleep(600)\\n")
        proc = subprocess.Popen([sys.executable, str(worker)])
        LEFT.write_text(str(proc.pid))
        globals()["kept"] = proc  # as a sandbox that was never closed keeps its Popen

    def test_closes_its_worker(tmp_path):
        worker = tmp_path / "worker.py"
        worker.write_text("import time\\ntime.sleep(600)\\n")
        proc = subprocess.Popen([sys.executable, str(worker)])
        proc.kill()
        proc.wait()

    def test_innocent_bystander():
        time.sleep(0.1)
        del globals()["kept"]  # its Popen is collected here: no warning, it was killed
    """
)


def test_a_leaked_worker_fails_only_the_test_that_leaked_it(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
        "from leaks import no_leaked_workers  # noqa: F401\n"
    )
    (tmp_path / "test_suite.py").write_text(SUITE)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "-rA"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    pid = int((tmp_path / "left.txt").read_text())
    assert out.strip().splitlines()[-1].startswith("3 passed, 1 error in"), out
    assert re.search(r"ERROR test_suite.py::test_leaks_a_worker - Failed: this test left 1", out)
    assert f"pid {pid}: " in out and "worker.py" in out
    assert "PASSED test_suite.py::test_innocent_bystander" in out  # its call, not failed
    assert "PASSED test_suite.py::test_closes_its_worker" in out
    stat = Path(f"/proc/{pid}/stat")
    assert not stat.exists() or stat.read_text().split(") ")[1].startswith("Z")  # killed
