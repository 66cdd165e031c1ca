"""The memory watch counts memfds and System V segments where no seccomp filter denies them.

On the machines the filter covers, both are refused (``test_escapes.py``); elsewhere the
watch adds the memfds each process holds open and the segments its processes created.
Measured here on the test process itself, then end to end on a plain-tier worker started
without its filter.
"""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from rlmagent.sandbox import memwatch, process
from rlmagent.sandbox.memwatch import memfd_bytes, sysv_bytes

from .helpers import open_session

MB = 1024 * 1024
linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")


@linux
def test_an_open_memfd_is_counted_once():
    before = memfd_bytes(os.getpid())
    fd = os.memfd_create("counted")
    try:
        for _ in range(8):
            os.write(fd, b"x" * MB)
        twin = os.dup(fd)  # the same file twice: counted once
        try:
            assert 8 * MB <= memfd_bytes(os.getpid()) - before < 9 * MB
        finally:
            os.close(twin)
    finally:
        os.close(fd)
    assert memfd_bytes(os.getpid()) == before


@linux
def test_a_system_v_segment_is_counted_for_the_process_that_made_it():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(0, 8 * MB, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if shmid < 0:
        pytest.skip(f"no System V shared memory here: {os.strerror(ctypes.get_errno())}")
    try:
        address = libc.shmat(shmid, None, 0)
        ctypes.memset(address, 1, 8 * MB)
        libc.shmdt(ctypes.c_void_p(address))  # detached: only the segment holds it now
        assert sysv_bytes([os.getpid()]) >= 8 * MB
        assert sysv_bytes([os.getpid() + 10**6]) < 8 * MB
    finally:
        libc.shmctl(shmid, 0, None)  # IPC_RMID


HOARD = """
import os
held = []
for n in range(5):
    fd = os.memfd_create(f"m{n}")
    for _ in range(64):
        os.write(fd, b"x" * (1 << 20))
    held.append(fd)
print("held", len(held))
"""


@linux
def test_unmapped_memfds_of_an_unfiltered_worker_are_killed(monkeypatch):
    monkeypatch.setattr(process, "build_filter", lambda **options: None)
    monkeypatch.setattr(memwatch, "FILTERED", False)
    with open_session("process", total_memory_bytes=128 * MB) as session:
        assert "seccomp" not in session.hardening  # memfd_create is allowed here
        result = session.execute(HOARD)
        assert result.state_lost, result
        assert "total_memory_bytes" in (result.error or "")
