"""Choosing the isolation tier, warning when it is weaker, and reporting it in results."""

from __future__ import annotations

import warnings

import pytest

from rlmagent import EventBus, RLMAgent, ScriptedEngine, UsageError
from rlmagent.errors import SandboxError
from rlmagent.events import RunStarted
from rlmagent.sandbox import IsolationWarning, Limits, SubprocessSandbox

from .helpers import BWRAP


def _broken_bwrap(tmp_path, name: str = "bwrap") -> str:
    fake = tmp_path / name
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.skipif(BWRAP is None, reason="bwrap is not installed")
def test_the_default_is_bwrap_where_it_works():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SubprocessSandbox().isolation == "bwrap"


def test_auto_falls_back_to_process_with_one_warning(tmp_path):
    fake = _broken_bwrap(tmp_path)
    with pytest.warns(IsolationWarning, match="isolation is 'process'.*create new namespace"):
        sandbox = SubprocessSandbox(bwrap=fake)
        assert sandbox.isolation == "process"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same problem again: no second warning
        again = SubprocessSandbox(bwrap=fake)
        assert again.isolation == "process"
        session = again.start("c", lambda name, params: None)
        try:
            assert session.isolation == "process"
            assert session.execute("1").output == "1\n"
        finally:
            session.close()


def test_forcing_bwrap_where_it_cannot_work_is_an_error_naming_why(tmp_path):
    sandbox = SubprocessSandbox(isolation="bwrap", bwrap=_broken_bwrap(tmp_path, "bw"))
    with pytest.raises(SandboxError, match="bubblewrap isolation was requested but"):
        sandbox.start("c", lambda name, params: None)


def test_forcing_process_never_probes_or_warns(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sandbox = SubprocessSandbox(isolation="process", bwrap=_broken_bwrap(tmp_path, "b3"))
        assert sandbox.isolation == "process"


def test_bad_settings_are_usage_errors():
    with pytest.raises(UsageError, match="isolation must be one of auto, bwrap, process"):
        SubprocessSandbox(isolation="docker")
    with pytest.raises(UsageError, match=r"Limits.processes must be a positive number"):
        Limits(processes=0)
    with pytest.raises(UsageError, match=r"Limits.cell_timeout_s"):
        Limits(cell_timeout_s=-1)


def test_the_tier_is_reported_in_the_result_and_the_events(tier):
    bus = EventBus()
    started: list[RunStarted] = []
    bus.subscribe(started.append, RunStarted)
    agent = RLMAgent(
        ScriptedEngine(["```repl\nFINAL(len(context))\n```"]),
        "root",
        sandbox=SubprocessSandbox(isolation=tier),
        bus=bus,
    )
    result = agent.run("How long?", context="four")
    assert result.content == "4"
    assert result.isolation == tier
    assert started[0].settings["sandbox"] == tier
