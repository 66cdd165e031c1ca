"""What the kernel says is in force for a worker, read by the host from ``/proc``.

The worker runs the model's code and cannot be believed about its own hardening: a worker
whose start was tampered with would report whatever the host wants to hear. So before
any model code runs the host reads ``/proc/<pid>/status`` of the worker itself and checks
it against what its tier must have: the seccomp mode (``Seccomp: 2``, a filter),
``NoNewPrivs``, the four uids and the effective capabilities. A worker that does not
match is killed and the start fails (:class:`~rlmagent.errors.SandboxError`);
``session.hardening`` lists only what was verified this way.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlmagent.errors import SandboxError

SECCOMP_FILTER = 2


@dataclass(frozen=True)
class KernelView:
    """The protection-related fields of one process's ``/proc/<pid>/status``."""

    seccomp: int
    no_new_privs: bool
    uids: tuple[int, ...]
    cap_eff: int


@dataclass(frozen=True)
class Expected:
    """What a tier requires of its worker; None where it requires nothing."""

    seccomp: bool = False
    no_new_privs: bool = False
    uid: int | None = None
    """Every one of the four uids (real, effective, saved, file system), host view."""
    no_capabilities: bool = False


def read_view(pid: int) -> KernelView:
    """The kernel's view of process ``pid``; SandboxError if it cannot be read."""
    fields: dict[str, str] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return KernelView(
            seccomp=int(fields.get("Seccomp", "0")),
            no_new_privs=fields.get("NoNewPrivs") == "1",
            uids=tuple(int(uid) for uid in fields["Uid"].split()),
            cap_eff=int(fields["CapEff"], 16),
        )
    except (OSError, KeyError, ValueError) as exc:
        raise SandboxError(f"cannot read the worker's status from /proc/{pid}: {exc}") from None


def verify(pid: int, expected: Expected) -> list[str]:
    """Check ``pid`` against ``expected``; the verified protections, for ``hardening``.

    Raises SandboxError naming every requirement the kernel does not confirm."""
    view = read_view(pid)
    problems: list[str] = []
    found: list[str] = []
    if expected.seccomp:
        if view.seccomp == SECCOMP_FILTER:
            found.append("seccomp")
        else:
            problems.append(f"no seccomp filter (Seccomp: {view.seccomp})")
    if expected.no_new_privs:
        if view.no_new_privs:
            found.append("no_new_privs")
        else:
            problems.append("no_new_privs is not set")
    if expected.uid is not None:
        if view.uids and all(uid == expected.uid for uid in view.uids):
            found.append(f"uid-{expected.uid}")
        else:
            problems.append(f"its uids are {list(view.uids)}, not {expected.uid}")
    if expected.no_capabilities:
        if view.cap_eff == 0:
            found.append("no-capabilities")
        else:
            problems.append(f"it holds capabilities (CapEff {view.cap_eff:#x})")
    if problems:
        raise SandboxError(
            "the sandbox worker is not hardened as its tier requires: " + "; ".join(problems)
        )
    return found
