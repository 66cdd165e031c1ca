"""Adversarial suite, isolation: secrets, host processes, network, file system.

Every case runs in every tier and asserts what that tier really does. The bubblewrap
and Landlock tiers must block each one (bubblewrap: the thing is not there; Landlock:
it is there and access is refused, ``PermissionError``). The plain tier does not isolate
the file system or the user's processes (SECURITY.md says so); its cases assert that
exposure, so this file and the table in SECURITY.md cannot drift apart. Its network is
cut by its seccomp filter (the Landlock tier's too, and Landlock's TCP rules).
Escape routes (``os.system``, ``subprocess``, ``ctypes``, a ``__subclasses__`` walk) are
judged by their effects, not by their syntax.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rlmagent.sandbox.seccomp import build_filter

from .helpers import assert_continues, open_session

SECCOMP = build_filter() is not None


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A secret key in a stand-in home, a host process holding an API key, a marker path."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_rsa"
    secret = f"PLANTED-KEY-{secrets.token_hex(8)}"
    key.write_text(secret)
    api_key = f"sk-planted-{secrets.token_hex(8)}"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={"OPENAI_API_KEY": api_key},
    )
    try:
        yield {
            "key": str(key),
            "secret": secret,
            "api_key": api_key,
            "holder": str(holder.pid),
            "host": str(os.getpid()),
            "marker": str(tmp_path / "written-from-the-sandbox"),
        }
    finally:
        holder.kill()
        holder.wait()


def test_planted_secret_in_the_home(tier, planted):
    with open_session(tier) as session:
        result = session.execute(f"print(open({planted['key']!r}).read())")
        if tier != "process":
            refused = "FileNotFoundError" if tier == "bwrap" else "PermissionError"
            assert refused in result.error
            assert planted["secret"] not in result.output
        else:
            assert planted["secret"] in result.output  # not isolated: see SECURITY.md
        assert_continues(session)


def test_the_real_home_is_not_visible(tier):
    home = str(Path.home())
    with open_session(tier) as session:
        result = session.execute(f"import os\nprint(sorted(os.listdir({home!r})))")
        visible = set(eval(result.output)) if result.error is None else set()
        if tier == "bwrap":  # at most the path down to a Python installed in the home
            python = Path(sys.base_prefix).resolve()
            allowed = (
                {python.parts[len(Path(home).parts)]} if python.is_relative_to(home) else set()
            )
            assert visible <= allowed, visible
        elif tier == "landlock":
            assert "PermissionError" in result.error and visible == set()
        else:
            assert visible == set(os.listdir(home))


def test_environ_of_host_processes(tier, planted):
    code = f"""
for pid in ({planted["holder"]}, {planted["host"]}):
    try:
        print(open(f"/proc/{{pid}}/environ").read())
    except OSError as exc:
        print(type(exc).__name__)
"""
    with open_session(tier) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        if tier == "bwrap":
            assert result.output == "FileNotFoundError\nFileNotFoundError\n"
        elif tier == "landlock":  # no /proc at all, and no ptrace access outside the domain
            assert result.output == "PermissionError\nPermissionError\n"
        else:
            assert planted["api_key"] in result.output


def test_listing_and_signalling_host_processes(tier, planted):
    code = f"""
import os
try:
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    print({planted["host"]} in pids, len(pids))
except PermissionError:
    print("unlisted", 0)
for target in (os.kill, os.killpg):  # the host, then its process group
    try:
        target({planted["host"]}, 0)
        print("signalled")
    except ProcessLookupError:
        print("no such process")
    except PermissionError:
        print("refused")
"""
    with open_session(tier) as session:
        result = session.execute(code)
        assert result.error is None, result.error
        listing, signalled, group = result.output.splitlines()
        seen, count = listing.split()
        host_group = os.getpgid(int(planted["host"])) == int(planted["host"])
        if tier == "bwrap":
            assert seen == "False" and int(count) <= 3  # PID 1, the worker, maybe `ls`
            assert signalled == group == "no such process"
        elif tier == "landlock":  # signal scoping: EPERM, though the pid exists
            assert (seen, signalled) == ("unlisted", "refused")
            assert group == ("refused" if host_group else "no such process")
        else:
            assert seen == "True" and signalled == "signalled"


ESCAPES = {
    "os.system": "import os\nos.system('cat {key} > copied.txt; touch {marker}')\n"
    "print(open('copied.txt').read())",
    "subprocess": "import subprocess\n"
    "print(subprocess.run(['cat', '{key}'], capture_output=True, text=True).stdout)\n"
    "subprocess.run(['touch', '{marker}'])",
    "ctypes": "import ctypes, os\nlibc = ctypes.CDLL(None)\n"
    "fd = libc.open(b'{key}', os.O_RDONLY)\nprint(os.read(fd, 100).decode() if fd >= 0 else '')\n"
    "libc.creat(b'{marker}', 0o644)",
    "subclasses-walk": "wrap = [c for c in ().__class__.__base__.__subclasses__() "
    "if c.__name__ == '_wrap_close'][0]\nsystem = wrap.__init__.__globals__['system']\n"
    "system('cat {key} > copied.txt; touch {marker}')\nprint(open('copied.txt').read())",
}


@pytest.mark.parametrize("route", list(ESCAPES))
def test_escape_routes_are_judged_by_their_effects(tier, planted, route):
    code = ESCAPES[route].format(key=planted["key"], marker=planted["marker"])
    with open_session(tier) as session:
        result = session.execute(code)
        leaked = planted["secret"] in result.output
        written = os.path.exists(planted["marker"])
        if tier != "process":
            assert not leaked and not written, result
        else:
            assert leaked and written, result
        assert_continues(session)


def test_writing_outside_the_work_directory(tier, planted):
    targets = [planted["marker"]]
    if tier != "process":  # only where nothing can land on the host if isolation held
        targets += ["/usr/rlm-sandbox-test", "/etc/rlm-sandbox-test", "/rlm-sandbox-test"]
    code = f"""
for path in {targets!r}:
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
"""
    try:
        with open_session(tier) as session:
            result = session.execute(code)
            assert result.error is None, result.error
            if tier != "process":
                assert "wrote" not in result.output
                assert not any(os.path.exists(path) for path in targets)
            else:
                assert os.path.exists(planted["marker"])
            assert_continues(session)
    finally:
        for path in targets[1:]:
            if os.path.exists(path):
                os.remove(path)


def test_deleting_the_context_file_does_not_lose_the_context(tier):
    with open_session(tier, context="precious context") as session:
        result = session.execute("import os\nos.remove('context.txt')\nprint('deleted')")
        if tier == "bwrap":  # a read-only bind mount, not the sandbox user's: it stays
            assert result.error and "deleted" not in result.output
        else:
            assert result.output == "deleted\n"
        assert session.execute("import os\nos._exit(1)").state_lost  # force a restart
        assert session.execute("print(context)").output == "precious context\n"


def test_changing_the_cwd(tier):
    host_cwd = os.getcwd()
    with open_session(tier) as session:
        session.execute("import os\nos.chdir('/')\nkept = 1")
        assert session.execute("print(os.getcwd())").output == "/\n"
        assert_continues(session, state="kept")
        assert os.getcwd() == host_cwd
        session.execute("os._exit(1)")
        inside = "/tmp/work" if tier == "bwrap" else str(session.workdir)  # a neutral name
        assert session.execute("import os\nprint(os.getcwd())").output.strip() == inside


def _expect_filter(tier: str, session) -> None:
    """The plain tier's network and namespace rules come from its seccomp filter."""
    if tier == "process" and not SECCOMP:
        pytest.skip("no seccomp filter for this machine: the plain tier has the host's network")
    assert "seccomp" in session.hardening


def test_loopback_listener_of_the_host(tier):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""
        with open_session(tier) as session:
            _expect_filter(tier, session)
            result = session.execute(code)
            try:
                listener.accept()[0].close()
                accepted = True
            except TimeoutError:
                accepted = False
            assert not accepted
            # bwrap: its own empty loopback; Landlock and plain tiers: no sockets at all
            refused = "ConnectionRefusedError" if tier == "bwrap" else "PermissionError"
            assert result.output == f"{refused}\n"


def test_no_way_out_to_the_network(tier):
    code = """
import socket
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
except PermissionError:
    print("no sockets")
else:  # only in a namespace with nothing but its own loopback
    print(socket.if_nameindex())
    try:
        socket.getaddrinfo("example.com", 80)
        print("resolved")
    except OSError as exc:
        print(type(exc).__name__)
    try:  # TEST-NET-1: with no route in the namespace this fails before sending anything
        socket.create_connection(("192.0.2.1", 80), timeout=1)
        print("connected")
    except OSError as exc:
        print(exc.errno)
"""
    with open_session(tier) as session:
        _expect_filter(tier, session)
        if tier == "bwrap":  # guard: never send anything if the namespace were missing
            probe = session.execute("import socket\nprint(socket.if_nameindex())")
            assert probe.output == "[(1, 'lo')]\n", probe
        result = session.execute(code)
        assert result.error is None, result.error
        if tier == "bwrap":
            assert result.output == "[(1, 'lo')]\ngaierror\n101\n"  # 101: ENETUNREACH
        else:
            assert result.output == "no sockets\n"


def test_no_user_namespace_of_its_own(tier):
    code = """
import subprocess
r = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs none /tmp && echo mounted"],
                   capture_output=True, text=True)
print(r.returncode, r.stdout.strip(), r.stderr.strip())
"""
    with open_session(tier) as session:
        _expect_filter(tier, session)
        result = session.execute(code)
        assert result.error is None, result.error
        assert "mounted" not in result.output
        assert "Operation not permitted" in result.output  # the seccomp filter
