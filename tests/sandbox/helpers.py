"""Shared pieces of the sandbox tests: the tiers, a recording host and session helpers.

Every adversarial case runs against every tier (the ``tier`` fixture, see conftest.py).
The bubblewrap tier carries the ``requires_bwrap`` mark: skipped, naming why, where it
cannot run (a failure under ``RLMAGENT_REQUIRE_BWRAP=1``; see tests/conftest.py).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from rlmagent.sandbox import FunctionSpec, Limits, SubprocessSandbox
from rlmagent.sandbox.process import wait_gone
from rlmagent.sandbox.subprocess import SubprocessSession

IS_ROOT = os.geteuid() == 0
ECHO = [FunctionSpec("llm_query", "echo")]

TIERS = [
    pytest.param("bwrap", marks=pytest.mark.requires_bwrap),
    pytest.param("landlock", marks=pytest.mark.requires_landlock),
    "process",
]


def runs_as_root(tier: str) -> bool:
    """Whether model code of ``tier`` runs as uid 0 here, where the kernel never applies
    ``RLIMIT_NPROC``: the plain tier on a root host, and the Landlock tier on a root host
    whose Python ``nobody`` cannot reach (it then drops capabilities but stays uid 0)."""
    if not IS_ROOT or tier == "bwrap":
        return False
    if tier == "landlock":
        from rlmagent.sandbox.landlock_tier import LandlockLauncher
        from rlmagent.sandbox.process import DEFAULT_WORKER

        launcher = LandlockLauncher(sys.executable, DEFAULT_WORKER)
        return launcher.user(launcher.script()[0]) is None
    return True


class Recorder:
    """A host handler that answers ``llm_query`` by echoing and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, params: dict[str, Any]) -> Any:
        self.calls.append((name, params))
        if name != "llm_query":
            raise NameError(f"no host function named {name!r}")
        return f"echo:{params['args'][0]}"


@contextmanager
def open_session(
    tier: str, context: Any = "the context", handler: Any = None, **limits: Any
) -> Iterator[SubprocessSession]:
    """A session of ``tier``; on exit every one of its processes must be gone."""
    sandbox = SubprocessSandbox(isolation=tier, limits=Limits(**limits))
    session = sandbox.start(context, handler or Recorder(), functions=ECHO)
    try:
        yield session
    finally:
        pids = session.processes()
        session.close()
        left = [pid for pid in pids if not wait_gone(pid, 5.0)]
        assert not left, f"processes survived close(): {left}"


def assert_continues(session: SubprocessSession, *, state: str | None = None) -> None:
    """The run can go on: the context is there, and ``state`` (a variable) if given."""
    result = session.execute("print(len(context))")
    assert result.error is None, result.error
    assert result.output.strip().isdigit()
    if state is not None:
        kept = session.execute(f"print({state})")
        assert kept.error is None, kept.error
