"""Choosing the isolation tier, warning when it is weaker, and reporting it in results."""

from __future__ import annotations

import sys
import warnings

import pytest

from rlmagent import EventBus, RLMAgent, ScriptedEngine, UsageError
from rlmagent.errors import SandboxError
from rlmagent.events import RunStarted
from rlmagent.sandbox import (
    InProcessSandbox,
    IsolationWarning,
    Limits,
    Session,
    SubprocessSandbox,
)
from rlmagent.sandbox.bwrap import find_bwrap
from rlmagent.sandbox.subprocess import bwrap_problem


def _no_calls(name, params):
    raise NameError(name)


def _broken_bwrap(tmp_path, name: str = "bwrap") -> str:
    fake = tmp_path / name
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.requires_bwrap
def test_the_default_is_bwrap_where_it_works():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sandbox = SubprocessSandbox()
        assert sandbox.isolation == "bwrap"
        session = sandbox.start("c", _no_calls)
    try:
        assert session.isolation == "bwrap"
        assert session.fallback_reason is None and sandbox.fallback_reason is None
    finally:
        session.close()


def test_the_default_works_on_this_machine_and_says_which_tier():
    # no mark: whichever tier this machine gives, the session says so and works
    problem = bwrap_problem(find_bwrap(), sys.executable)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = SubprocessSandbox().start("four", _no_calls)
    try:
        assert session.execute("len(context)").output == "4\n"
        fell_back = [w for w in caught if issubclass(w.category, IsolationWarning)]
        if problem is None:
            assert (session.isolation, session.fallback_reason, fell_back) == ("bwrap", None, [])
        else:
            assert (session.isolation, session.fallback_reason) == ("process", problem)
            assert len(fell_back) == 1 and problem in str(fell_back[0].message)
    finally:
        session.close()


def test_auto_falls_back_to_process_with_one_warning_per_sandbox(tmp_path):
    fake = _broken_bwrap(tmp_path)
    with pytest.warns(IsolationWarning, match="isolation is 'process'.*create new namespace") as w:
        sandbox = SubprocessSandbox(bwrap=fake)
        assert sandbox.isolation == "process"
    assert [r.filename for r in w] == [__file__]  # it points at the caller's line
    assert "create new namespace" in (sandbox.fallback_reason or "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same sandbox again: no second warning
        session = sandbox.start("c", _no_calls)
        try:
            assert session.isolation == "process"
            assert session.fallback_reason == sandbox.fallback_reason
            assert session.execute("1").output == "1\n"
        finally:
            session.close()
    # another sandbox warns again: nothing depends on what ran before in this process
    with pytest.warns(IsolationWarning, match="create new namespace"):
        again = SubprocessSandbox(bwrap=fake).start("c", _no_calls)
    try:
        assert again.fallback_reason == sandbox.fallback_reason
    finally:
        again.close()


def test_without_bwrap_installed_auto_falls_back_naming_the_package(monkeypatch):
    monkeypatch.setattr("rlmagent.sandbox.subprocess.find_bwrap", lambda: None)
    with pytest.warns(IsolationWarning, match="bwrap is not installed"):
        session = SubprocessSandbox().start("c", _no_calls)
    try:
        assert session.isolation == "process"
        assert session.fallback_reason == (
            "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
        )
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
        session = sandbox.start("c", _no_calls)
    try:
        assert session.fallback_reason is None  # pinned: nothing fell back
    finally:
        session.close()


def test_every_session_has_a_fallback_reason():
    session = InProcessSandbox().start("c", _no_calls)
    try:
        assert isinstance(session, Session)
        assert (session.isolation, session.fallback_reason) == ("none", None)
    finally:
        session.close()


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
