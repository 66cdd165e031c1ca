"""Adversarial suite, the host's own state: another live sandbox's context, the user's run
log, trajectories and answer cache, the host's current directory, and its abstract unix
sockets. Every case runs in every tier and asserts what that tier really does (see
SECURITY.md's table): bubblewrap does not show them (``FileNotFoundError``), Landlock
refuses them (``PermissionError``), the plain tier reads them as the user would.
"""

from __future__ import annotations

import os
import socket

from rlmagent import RLMAgent, ScriptedEngine
from rlmagent.cache import default_cache_path
from rlmagent.sandbox import SubprocessSandbox
from rlmagent.trace import new_run_path, runs_dir

from .helpers import open_session

READ = """
for path in {paths!r}:
    try:
        if os.path.isdir(path):
            print(sorted(os.listdir(path)))
        else:
            with open(path, "rb") as f:
                print(f.read().decode("utf-8", "replace"))
    except OSError as exc:
        print(type(exc).__name__)
"""


def _read(session, *paths: str) -> str:
    result = session.execute("import os\n" + READ.format(paths=list(paths)))
    assert result.error is None, result.error
    return result.output


def _refused(tier: str) -> str:
    return "FileNotFoundError" if tier == "bwrap" else "PermissionError"


def test_another_live_sandboxs_context(tier):
    with (
        open_session(tier, context="context of run B: 5501") as other,
        open_session(tier, context="context of run A") as session,
    ):
        output = _read(session, str(other.workdir / "context.txt"), str(other.workdir))
    if tier == "process":  # the same user: SECURITY.md
        assert "context of run B: 5501" in output
    else:
        assert output == f"{_refused(tier)}\n" * 2


def test_the_users_run_log_trajectories_and_cache(tier, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    trace, cache = new_run_path(runs_dir()), default_cache_path()
    earlier = RLMAgent(
        ScriptedEngine(["```repl\nFINAL('earlier answer 7712')\n```"]),
        "root",
        sandbox=SubprocessSandbox(isolation=tier),
        trace=trace,
        cache=cache,
        temperature=0.0,
    )
    assert earlier.run("What was it?", context="an earlier run's context").content == (
        "earlier answer 7712"
    )
    assert trace.is_file() and cache.is_file()
    with open_session(tier) as session:
        output = _read(session, str(trace), str(runs_dir()), str(cache))
    if tier == "process":
        assert "earlier answer 7712" in output and trace.name in output
    else:
        assert output == f"{_refused(tier)}\n" * 3
        assert "7712" not in output


def test_the_hosts_current_directory(tier):
    here = os.getcwd()
    with open_session(tier) as session:
        output = _read(session, here)
    if tier == "process":
        assert output == f"{sorted(os.listdir(here))}\n"
    else:
        assert output == f"{_refused(tier)}\n"


def test_an_abstract_unix_socket_of_the_host(tier):
    name = f"\0rlmagent-host-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(name)
        listener.listen()
        listener.settimeout(0.5)
        code = f"""
import socket
try:
    socket.socket(socket.AF_UNIX).connect({name!r})
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""
        with open_session(tier) as session:
            result = session.execute(code)
        try:
            listener.accept()[0].close()
            accepted = True
        except TimeoutError:
            accepted = False
    assert not accepted
    # bwrap: abstract names belong to its own network namespace; the other tiers' seccomp
    # filters deny socket() (and Landlock scopes abstract sockets: test_landlock.py)
    expected = "ConnectionRefusedError" if tier == "bwrap" else "PermissionError"
    assert result.output == f"{expected}\n", result
