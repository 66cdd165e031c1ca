"""Landlock through ctypes, and the launcher that restricts a worker before it starts.

Landlock (Linux 5.13+) lets an unprivileged process take rights away from itself for
good, without namespaces: which files it may open, read, write, run or create (by path
hierarchy), whether it may bind or connect TCP ports (ABI 4+), and, from ABI 6, whether it
may signal or reach through abstract unix sockets any process outside its own domain.
Children inherit the domain and can never widen it.

This module is both the host's view of the running kernel (:func:`abi_version`,
:func:`rights`) and a script. ``python -I -S -B landlock.py [options] -- COMMAND...``
restricts itself and then ``exec``\\ s COMMAND (the worker) in the same process, so the
worker and everything it starts run inside the domain from their first instruction:

- ``--user UID:GID`` switches to that user for good first (a host running as root);
  ``--no-caps`` instead stays uid 0 but drops every capability, from the bounding and
  ambient sets too, with the secure bits locked so that no ``exec`` gives them back;
- ``--allow r|rx|rw PATH`` (repeated): the rights beneath ``PATH`` (a directory) or on
  it (a file); ``rw`` is every right. Paths that do not exist are skipped. Everything
  else of the file system is denied;
- then ``no_new_privs``, one ruleset handling every right this kernel knows (file
  system, TCP bind/connect with no port allowed, signal and abstract-socket scoping),
  ``landlock_restrict_self``, and a self-check (``/`` must be unreadable) before exec.

Any failure ends the launcher with status 3 and one line on stderr: nothing runs
unrestricted. The module uses the standard library only (it runs before the worker, as a
plain script) and imports ``ctypes`` lazily.

PyPI's ``landlock`` (1.0.0.dev5, the newest release when this was written) is not used:
it is an alpha release covering file-system rights only (its ruleset attribute has no
network or scope fields, so no TCP rules and no signal / abstract-socket scoping) and
its import pulls in ``enum`` and ``platform``, which costs start-up time on every worker.
"""

from __future__ import annotations

import os
import sys

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # every architecture
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

# File-system rights (ABI 1: bits 0-12; REFER ABI 2; TRUNCATE ABI 3; IOCTL_DEV ABI 5).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
ABI1_FS = (1 << 13) - 1
FILE_ONLY = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
"""The rights a rule on a file (not a directory) may carry."""
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

ACCESS = {"r": READ_FILE | READ_DIR, "rx": READ_FILE | READ_DIR | EXECUTE, "rw": -1}
"""``--allow`` names: read, read and run, every right (masked to what the kernel has)."""

PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECUREBITS = 38, 24, 28
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SECUREBITS_LOCKED = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
"""NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE (each with its lock) and KEEP_CAPS_LOCKED."""
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
CAP_VERSION_3 = 0x20080522
FAILED = 3


def rights(abi: int) -> tuple[int, int, int]:
    """``(file system, network, scopes)`` rights that Landlock ABI ``abi`` handles."""
    fs = ABI1_FS if abi >= 1 else 0
    if abi >= 2:
        fs |= REFER
    if abi >= 3:
        fs |= TRUNCATE
    if abi >= 5:
        fs |= IOCTL_DEV
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scoped


def _libc():  # type: ignore[no-untyped-def]
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def abi_version() -> tuple[int, str | None]:
    """The running kernel's Landlock ABI, or ``(0, why it is unavailable)``."""
    if not sys.platform.startswith("linux"):
        return 0, "Landlock needs Linux"
    try:
        ctypes, libc = _libc()
        syscall = libc.syscall
    except (OSError, AttributeError, ImportError) as exc:
        return 0, f"no C library to call Landlock with ({exc})"
    syscall.restype = ctypes.c_long
    abi = syscall(
        ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0),
        ctypes.c_uint32(CREATE_RULESET_VERSION),
    )  # fmt: skip
    if abi > 0:
        return int(abi), None
    err = ctypes.get_errno()
    import errno

    if err == errno.ENOSYS:
        return 0, "the kernel has no Landlock (Linux 5.13 or later is needed)"
    if err == errno.EOPNOTSUPP:
        return 0, "Landlock is built into this kernel but not enabled (boot option lsm=)"
    return 0, f"Landlock is unavailable: {os.strerror(err)}"


class LandlockFailed(Exception):
    """A step of the restriction failed; the launcher must not start its command."""


def _check(result: int, what: str) -> int:
    if result < 0:
        import ctypes

        raise LandlockFailed(f"{what}: {os.strerror(ctypes.get_errno())}")
    return result


def restrict(rules: list[tuple[int, str]], abi: int) -> None:
    """Restrict this process (and what it starts) to ``rules`` (``(access, path)``):
    every file-system right of ``abi`` is handled, no TCP port is allowed, and from
    ABI 6 signals and abstract unix sockets stay inside the domain."""
    import ctypes  # here, not at the top: the host imports this module too

    _, libc = _libc()
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    fs, net, scoped = rights(abi)

    class RulesetAttr(ctypes.Structure):
        _fields_ = (("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64))

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = (("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32))

    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the fields this ABI knows
    attr = RulesetAttr(fs, net, scoped)
    ruleset = _check(
        syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size),
                ctypes.c_uint32(0)),
        "landlock_create_ruleset",
    )  # fmt: skip
    try:
        for access, path in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                allowed = access & fs
                if os.fstat(fd).st_mode & 0o170000 != 0o040000:  # not a directory
                    allowed &= FILE_ONLY
                rule = PathBeneath(allowed, fd)
                _check(
                    syscall(ctypes.c_long(SYS_ADD_RULE), ctypes.c_int(ruleset),
                            ctypes.c_int(RULE_PATH_BENEATH), ctypes.byref(rule),
                            ctypes.c_uint32(0)),
                    f"landlock_add_rule({path})",
                )  # fmt: skip
            finally:
                os.close(fd)
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
        _check(
            syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(ruleset), ctypes.c_uint32(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)


def drop_capabilities() -> None:
    """Stay uid 0 with no capability at all, for good (see the module docstring)."""
    ctypes, libc = _libc()
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # EINVAL: past the last capability this kernel has
    _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    _check(libc.prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED, 0, 0, 0), "prctl(PR_SET_SECUREBITS)")
    number = SYS_CAPSET.get(os.uname().machine)
    if number is None:
        raise LandlockFailed(f"capset is not known on {os.uname().machine}")
    header = (ctypes.c_uint32 * 2)(CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable: twice, all zero
    libc.syscall.restype = ctypes.c_long
    _check(libc.syscall(ctypes.c_long(number), header, data), "capset")


def switch_user(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise LandlockFailed(f"could not switch to uid {uid}")


def launch(argv: list[str]) -> str:
    """Parse the launcher's options, restrict, and exec; returns only the error."""
    if "--" not in argv:
        return "usage: landlock.py [--user UID:GID | --no-caps] [--allow r|rx|rw PATH]... -- CMD"
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    rules: list[tuple[int, str]] = []
    user: tuple[int, int] | None = None
    no_caps = False
    i = 0
    while i < len(options):
        option = options[i]
        if option == "--allow" and i + 2 < len(options) and options[i + 1] in ACCESS:
            rules.append((ACCESS[options[i + 1]], options[i + 2]))
            i += 3
        elif option == "--user" and i + 1 < len(options):
            uid, gid = options[i + 1].split(":")
            user = int(uid), int(gid)
            i += 2
        elif option == "--no-caps":
            no_caps, i = True, i + 1
        else:
            return f"unknown option {option!r}"
    if not command:
        return "no command to run"
    abi, why = abi_version()
    if abi < 1:
        return str(why)
    try:
        if user is not None:
            switch_user(*user)
        elif no_caps:
            drop_capabilities()
        restrict(rules, abi)
    except (LandlockFailed, OSError) as exc:
        return str(exc)
    try:
        os.close(os.open("/", os.O_RDONLY | os.O_DIRECTORY))
    except PermissionError:
        pass  # as it must be: the domain holds
    else:
        return "the Landlock domain is not in force (/ is still readable)"
    try:
        os.execv(command[0], command)
    except OSError as exc:
        return f"could not start {command[0]}: {exc}"
    return "exec returned"  # pragma: no cover


if __name__ == "__main__":
    error = launch(sys.argv[1:])
    print(f"landlock: {error}", file=sys.stderr)
    sys.exit(FAILED)
