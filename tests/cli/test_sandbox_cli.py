"""`rlm doctor` and `--sandbox`, in-process: the tiers this machine really has, the
local model's status, API-key names (never values), and failing closed on the CLI."""

from __future__ import annotations

import json
import os
import sys

import pytest

from rlmagent import FunctionEngine
from rlmagent.cli import main
from rlmagent.engines import register_engine, unregister_engine
from rlmagent.sandbox.bwrap import find_bwrap
from rlmagent.sandbox.subprocess import bwrap_problem, landlock_problem

NO_LANDLOCK = "the kernel has no Landlock (Linux 5.13 or later is needed)"


@pytest.fixture
def fake_provider():
    def root(messages, model):
        return "```repl\nFINAL(len(context))\n```"

    register_engine("fake", lambda model, **kw: FunctionEngine(root), replace=True)
    yield "fake:root"
    unregister_engine("fake")


@pytest.fixture
def no_isolating_tier(monkeypatch):
    """This process sees a machine with neither bubblewrap nor Landlock."""
    monkeypatch.setattr("rlmagent.sandbox.subprocess.find_bwrap", lambda: None)
    monkeypatch.setattr("rlmagent.sandbox.bwrap.find_bwrap", lambda: None)
    for module in ("rlmagent.sandbox.landlock", "rlmagent.sandbox.landlock_tier"):
        monkeypatch.setattr(f"{module}.abi_version", lambda: (0, NO_LANDLOCK))
    monkeypatch.setattr("rlmagent.sandbox.subprocess._probe_results", {})


def test_doctor_names_the_tiers_the_model_and_set_keys_but_never_their_values(monkeypatch, capsys):
    secret = "sk-doctor-test-value-1234"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert secret not in out
    keys = next(line for line in out.splitlines() if line.startswith("API keys set:"))
    assert "OPENAI_API_KEY" in keys and "OPENROUTER_API_KEY" not in keys
    bwrap = bwrap_problem(find_bwrap(), sys.executable)
    landlock = landlock_problem(sys.executable)
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert ("works" if bwrap is None else bwrap) in lines["bwrap"]
    assert ("works" if landlock is None else landlock) in lines["landlock"]
    expected = "bwrap" if bwrap is None else "landlock" if landlock is None else None
    assert lines["default"].split()[1] == (expected or "none:")
    assert code == (0 if expected else 1)
    assert "llama-cpp-python" in out and "model file" in out


def test_doctor_json_where_no_tier_isolates(no_isolating_tier, capsys):
    assert main(["doctor", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    problems = {tier["name"]: tier["problem"] for tier in payload["tiers"]}
    assert problems["bwrap"] == "bwrap is not installed (Debian/Ubuntu package: bubblewrap)"
    assert problems["landlock"] == NO_LANDLOCK
    assert payload["default_tier"] is None
    assert set(payload["local_model"]) >= {"llama_cpp_installed", "model_file_present"}
    from rlmagent.sandbox.cgroups import own_cgroup

    path = own_cgroup()
    assert payload["cgroup"]["delegated"] == (path is not None and os.access(path, os.W_OK))


def test_doctor_says_how_to_go_on_where_no_tier_isolates(no_isolating_tier, capsys):
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "sudo apt-get install bubblewrap" in out and "--sandbox process" in out


@pytest.mark.parametrize(
    "tier",
    [pytest.param("landlock", marks=pytest.mark.requires_landlock), "process"],
)
def test_the_sandbox_flag_picks_the_tier(tier, fake_provider, tmp_path, capsys):
    path = tmp_path / "ctx.txt"
    path.write_text("four")
    args = ["run", "q", "-c", str(path), "--model", fake_provider, "--no-log", "--json"]
    assert main([*args, "--sandbox", tier]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert (payload["answer"], payload["isolation"]) == ("4", tier)


def test_the_cli_fails_closed_and_the_opt_in_it_names_works(
    no_isolating_tier, fake_provider, capsys
):
    assert main(["demo", "--model", fake_provider, "--no-log", "-q"]) == 1
    err = capsys.readouterr().err
    assert "SandboxError" in err and "no sandbox tier that isolates" in err
    assert "--sandbox process" in err
    with pytest.warns(Warning, match="can read every file"):
        main(["demo", "--model", fake_provider, "--no-log", "--json", "--sandbox", "process"])
    payload = json.loads(capsys.readouterr().out)  # it ran (the fake root's answer is wrong)
    assert payload["isolation"] == "process" and payload["answer"].isdigit()


@pytest.mark.requires_landlock
def test_the_demo_runs_where_only_landlock_works(monkeypatch, fake_provider, capsys):
    monkeypatch.setattr("rlmagent.sandbox.subprocess.find_bwrap", lambda: None)
    main(["demo", "--model", fake_provider, "--no-log", "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert payload["isolation"] == "landlock" and payload["answer"].isdigit()
    assert "bwrap is not installed" in payload["isolation_fallback"]
