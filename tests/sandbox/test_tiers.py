"""Choosing the isolation tier, failing closed where none isolates, warning when the
plain tier is asked for, and reporting the tier in results."""

from __future__ import annotations

import re
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
from rlmagent.sandbox.subprocess import bwrap_problem, landlock_problem


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
    landlock = landlock_problem(sys.executable)
    if problem is not None and landlock is not None:
        with pytest.raises(SandboxError, match="no sandbox tier that isolates"):
            SubprocessSandbox().start("four", _no_calls)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither isolating tier warns
        session = SubprocessSandbox().start("four", _no_calls)
    try:
        assert session.execute("len(context)").output == "4\n"
        if problem is None:
            assert (session.isolation, session.fallback_reason) == ("bwrap", None)
        else:
            assert (session.isolation, session.fallback_reason) == ("landlock", problem)
    finally:
        session.close()


@pytest.mark.requires_landlock
def test_auto_falls_back_to_landlock_and_says_why(tmp_path):
    fake = _broken_bwrap(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Landlock isolates: no IsolationWarning
        sandbox = SubprocessSandbox(bwrap=fake)
        assert sandbox.isolation == "landlock"
        session = sandbox.start("c", _no_calls)
    try:
        assert "create new namespace" in (sandbox.fallback_reason or "")
        assert session.isolation == "landlock"
        assert session.fallback_reason == sandbox.fallback_reason
        assert "landlock-fs" in session.hardening
        assert session.execute("1").output == "1\n"
    finally:
        session.close()


@pytest.mark.requires_landlock
def test_without_bwrap_installed_auto_falls_back_naming_the_package(monkeypatch):
    monkeypatch.setattr("rlmagent.sandbox.subprocess.find_bwrap", lambda: None)
    session = SubprocessSandbox().start("c", _no_calls)
    try:
        assert session.isolation == "landlock"
        assert session.fallback_reason == (
            "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
        )
        assert session.execute("1").output == "1\n"
    finally:
        session.close()


def _without_landlock(monkeypatch) -> str:
    """This process's Landlock probe answers as on a kernel without Landlock."""
    why = "the kernel has no Landlock (Linux 5.13 or later is needed)"
    monkeypatch.setattr("rlmagent.sandbox.landlock_tier.abi_version", lambda: (0, why))
    monkeypatch.setattr("rlmagent.sandbox.subprocess._probe_results", {})
    return why


def test_where_no_tier_isolates_the_agent_fails_closed_before_any_model_call(tmp_path, monkeypatch):
    why = _without_landlock(monkeypatch)
    engine = ScriptedEngine(["```repl\nFINAL(open('/etc/hostname').read())\n```"])
    agent = RLMAgent(engine, "root", sandbox=SubprocessSandbox(bwrap=_broken_bwrap(tmp_path)))
    with pytest.raises(SandboxError) as failed:
        agent.run("What is the host's name?", context="c")
    assert engine.calls == []  # no model call was made
    message = str(failed.value)
    assert "no sandbox tier that isolates model code works" in message
    assert "create new namespace" in message and why in message  # why, for each tier
    assert "sudo apt-get install bubblewrap" in message and "sudo dnf install" in message
    assert 'SubprocessSandbox(isolation="process")' in message
    assert "--sandbox process" in message


def test_the_plain_tier_runs_only_when_asked_for_by_name(tmp_path, monkeypatch):
    _without_landlock(monkeypatch)
    with pytest.raises(SandboxError):
        SubprocessSandbox(bwrap=_broken_bwrap(tmp_path, "b4")).start("c", _no_calls)
    with pytest.warns(IsolationWarning, match="can read every file you can read") as w:
        session = SubprocessSandbox(isolation="process").start("c", _no_calls)
    assert [r.filename for r in w] == [__file__]  # it points at the caller's line
    try:
        assert (session.isolation, session.fallback_reason) == ("process", None)
        assert session.execute("1").output == "1\n"
    finally:
        session.close()


def test_forcing_bwrap_where_it_cannot_work_is_an_error_naming_why(tmp_path):
    sandbox = SubprocessSandbox(isolation="bwrap", bwrap=_broken_bwrap(tmp_path, "bw"))
    with pytest.raises(SandboxError, match="bubblewrap isolation was requested but"):
        sandbox.start("c", lambda name, params: None)


def test_forcing_landlock_where_it_cannot_work_is_an_error_naming_why(monkeypatch):
    why = _without_landlock(monkeypatch)
    sandbox = SubprocessSandbox(isolation="landlock")
    assert sandbox.isolation == "landlock"  # what was asked for; start() says it fails
    with pytest.raises(
        SandboxError, match=re.escape(f"Landlock isolation was requested but {why}")
    ):
        sandbox.start("c", lambda name, params: None)


def test_forcing_process_never_probes_and_warns_what_model_code_can_read(tmp_path):
    with pytest.warns(IsolationWarning) as caught:
        sandbox = SubprocessSandbox(isolation="process", bwrap=_broken_bwrap(tmp_path, "b3"))
        assert sandbox.isolation == "process"
        session = sandbox.start("c", _no_calls)
    try:
        assert len(caught) == 1  # once per sandbox
        text = str(caught[0].message)
        assert "home" in text and "/proc/<pid>/environ" in text and "signal" in text
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
    with pytest.raises(UsageError, match="isolation must be one of auto, bwrap, landlock, process"):
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
