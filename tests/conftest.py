"""What every test shares: which sandbox tier this machine can run.

Tests that need the bubblewrap tier say so with ``@pytest.mark.requires_bwrap`` (or
``pytest.param("bwrap", marks=pytest.mark.requires_bwrap)``). Where bwrap is not
installed, or is installed but cannot run here (no user namespaces, say), they are
skipped and the skip names why. With ``RLMAGENT_REQUIRE_BWRAP=1`` (a CI machine that has
bubblewrap) that is a failure instead, so that a change breaking the tier cannot pass
as a row of skips.

The Landlock tier's tests carry ``requires_landlock`` the same way (skipped where the
kernel lacks Landlock; a failure under ``RLMAGENT_REQUIRE_LANDLOCK=1``).

Tests that only need "a sandbox" build the default ``SubprocessSandbox()``: bubblewrap,
else Landlock (it fails closed where neither works). Tests of the plain tier ask for
``isolation="process"``; its ``IsolationWarning`` is shown, not raised (pyproject's
``filterwarnings``); the tier tests assert that warning themselves.

A sandbox worker a test leaves running fails that test only (``tests/leaks.py``).
"""

from __future__ import annotations

import functools
import os
import signal
import sys

import pytest

from leaks import no_leaked_workers  # noqa: F401 (autouse: see tests/leaks.py)

# A suite started in the background of a non-interactive shell (`cmd &`, nohup, some CI
# runners) inherits SIGINT ignored, and every process it starts would too: the Ctrl-C
# tests (in this process and in children) need it delivered, as on a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REQUIRE_BWRAP = os.environ.get("RLMAGENT_REQUIRE_BWRAP", "") not in ("", "0")
REQUIRE_LANDLOCK = os.environ.get("RLMAGENT_REQUIRE_LANDLOCK", "") not in ("", "0")


@functools.cache
def bwrap_unavailable() -> str | None:
    """Why the bubblewrap tier cannot run on this machine, or None if it can."""
    from rlmagent.sandbox.bwrap import find_bwrap
    from rlmagent.sandbox.subprocess import bwrap_problem

    return bwrap_problem(find_bwrap(), sys.executable)  # one real probe, cached


@functools.cache
def landlock_unavailable() -> str | None:
    """Why the Landlock tier cannot run on this machine, or None if it can."""
    from rlmagent.sandbox.subprocess import landlock_problem

    return landlock_problem(sys.executable)  # one real probe, cached


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("requires_landlock") is not None:
        missing = landlock_unavailable()
        if missing is not None and REQUIRE_LANDLOCK:
            pytest.fail(f"RLMAGENT_REQUIRE_LANDLOCK is set but {missing}", pytrace=False)
        if missing is not None:
            pytest.skip(f"needs the Landlock tier: {missing}")
    if item.get_closest_marker("requires_bwrap") is None:
        return
    problem = bwrap_unavailable()
    if problem is None:
        return
    if REQUIRE_BWRAP:
        pytest.fail(f"RLMAGENT_REQUIRE_BWRAP is set but {problem}", pytrace=False)
    pytest.skip(f"needs the bubblewrap tier: {problem}")
