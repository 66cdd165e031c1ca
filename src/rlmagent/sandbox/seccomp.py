"""A small seccomp filter for both tiers, assembled as classic BPF by hand.

Under bubblewrap, bwrap installs it (``--seccomp FD``) just before it starts the worker;
in the plain tier the worker installs it on itself before any model code runs. It denies:

- new user namespaces (``clone`` / ``unshare`` with ``CLONE_NEWUSER``): inside one,
  model code would be "root" over a mount namespace of its own and could mount an
  unbounded tmpfs, escaping ``Limits.disk_bytes``; ``clone3`` returns ``ENOSYS`` (its
  flags cannot be inspected) and the C library falls back to ``clone``;
- ``clone`` with ``CLONE_PARENT``: the new process would be a sibling of the worker (a
  child of the host in the plain tier), outside the tree that is killed;
- reaching into other processes: ``pidfd_open``, ``pidfd_getfd`` (which would copy the
  host's sockets and pipes), ``process_vm_readv`` / ``process_vm_writev``;
- memory the watch cannot see: ``memfd_create``, ``memfd_secret`` and System V shared
  memory (``shmget``, ``shmat``);
- a terminal's input and settings: ``ioctl`` with ``TIOCSTI`` (typing into a terminal),
  ``TIOCLINUX`` and the ``TCSETS*`` / ``TCSETA*`` family (turning echo off);
- kernel interfaces a REPL has no use for and that widen the attack surface: ``bpf``,
  ``userfaultfd``, ``perf_event_open``, ``io_uring_*``, the key-ring calls, ``ptrace``;
- what only a privileged process could do, for the plain tier run as root: mounts,
  kernel modules, ``kexec``, reboot, swap, setting the clock;
- with ``deny_sockets`` (the plain tier, which has no network namespace): ``socket``,
  so no network at all (``socketpair``, used by asyncio and multiprocessing, stays);
- system calls of a foreign ABI (i386 and x32 on x86-64), which would dodge the rules.

Only x86-64 and aarch64 are covered; elsewhere :func:`build_filter` returns None and
the sandbox runs without it (SECURITY.md says so).
"""

from __future__ import annotations

import errno
import platform
import struct

CLONE_NEWUSER = 0x10000000
CLONE_PARENT = 0x00008000
DENIED_CLONE_FLAGS = CLONE_NEWUSER | CLONE_PARENT
TERMINAL_IOCTLS = (
    0x5412,  # TIOCSTI
    0x541C,  # TIOCLINUX
    0x5402, 0x5403, 0x5404,  # TCSETS, TCSETSW, TCSETSF
    0x5406, 0x5407, 0x5408,  # TCSETA, TCSETAW, TCSETAF
    0x402C542B, 0x402C542C, 0x402C542D,  # TCSETS2, TCSETSW2, TCSETSF2
)  # fmt: skip
"""``ioctl`` requests denied: the same numbers on x86-64 and aarch64."""
MACHINES = ("x86_64", "aarch64")
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
SYSCALLS = {  # name: (x86_64, aarch64)
    "clone": (56, 220), "unshare": (272, 97), "clone3": (435, 435), "socket": (41, 198),
    "ptrace": (101, 117), "keyctl": (250, 219), "add_key": (248, 217),
    "request_key": (249, 218), "bpf": (321, 280), "perf_event_open": (298, 241),
    "userfaultfd": (323, 282), "io_uring_setup": (425, 425), "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "reboot": (169, 142), "init_module": (175, 105),
    "finit_module": (313, 273), "delete_module": (176, 106), "kexec_load": (246, 104),
    "kexec_file_load": (320, 294), "swapon": (167, 224), "swapoff": (168, 225),
    "settimeofday": (164, 170), "clock_settime": (227, 112), "clock_adjtime": (305, 266),
    "adjtimex": (159, 171), "pidfd_open": (434, 434), "pidfd_getfd": (438, 438),
    "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "memfd_create": (319, 279), "memfd_secret": (447, 447), "shmget": (29, 194),
    "shmat": (30, 196), "ioctl": (16, 29),
}  # fmt: skip
INSPECTED = ("clone", "unshare", "clone3", "socket", "ioctl")
DENIED = tuple(name for name in SYSCALLS if name not in INSPECTED)

# Classic BPF opcodes and seccomp return values.
LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET = 0x06  # BPF_RET | BPF_K
ALLOW = 0x7FFF0000
ERRNO = 0x00050000
OFFSET_NR, OFFSET_ARCH, OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data (little-endian)
OFFSET_ARG1 = 24  # low 32 bits of the second argument (an ioctl request is 32 bits)
X32_BIT = 0x40000000


def build_filter(machine: str | None = None, *, deny_sockets: bool = False) -> bytes | None:
    """The filter as ``struct sock_filter`` records, or None on an uncovered machine."""
    machine = machine or platform.machine()
    if machine not in MACHINES:
        return None
    column = MACHINES.index(machine)

    def nr(name: str) -> int:
        return SYSCALLS[name][column]

    # (opcode, k, true target, false target); targets are labels, None = the next one.
    code: list[tuple[int, int, str | None, str | None]] = [
        (LD_ABS, OFFSET_ARCH, None, None),
        (JEQ, AUDIT_ARCH[machine], None, "enosys"),
        (LD_ABS, OFFSET_NR, None, None),
    ]
    if machine == "x86_64":
        code.append((JGE, X32_BIT, "enosys", None))
    code += [
        (JEQ, nr("clone3"), "enosys", None),
        (JEQ, nr("clone"), "flags", None),
        (JEQ, nr("unshare"), "flags", None),
        (JEQ, nr("ioctl"), "ioctl", None),
    ]
    denied = [*DENIED, "socket"] if deny_sockets else list(DENIED)
    code += [(JEQ, nr(name), "eperm", None) for name in denied]
    code.append((RET, ALLOW, None, None))
    labels = {"flags": len(code)}
    code += [(LD_ABS, OFFSET_ARG0, None, None), (JSET, DENIED_CLONE_FLAGS, "eperm", None)]
    code.append((RET, ALLOW, None, None))
    labels["ioctl"] = len(code)
    code.append((LD_ABS, OFFSET_ARG1, None, None))
    code += [(JEQ, request, "eperm", None) for request in TERMINAL_IOCTLS]
    code.append((RET, ALLOW, None, None))
    labels["eperm"] = len(code)
    code.append((RET, ERRNO | errno.EPERM, None, None))
    labels["enosys"] = len(code)
    code.append((RET, ERRNO | errno.ENOSYS, None, None))

    def jump(index: int, target: str | None) -> int:
        return 0 if target is None else labels[target] - index - 1

    return b"".join(
        struct.pack("=HBBI", op, jump(i, jt), jump(i, jf), k)
        for i, (op, k, jt, jf) in enumerate(code)
    )
