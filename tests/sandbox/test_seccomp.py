"""The hand-assembled seccomp filter: its shape on each covered machine."""

from __future__ import annotations

import struct

import pytest

from rlmagent.sandbox.seccomp import ALLOW, AUDIT_ARCH, ERRNO, RET, build_filter


@pytest.mark.parametrize("machine", sorted(AUDIT_ARCH))
def test_filter_is_well_formed(machine):
    program = build_filter(machine)
    assert program is not None and len(program) % 8 == 0
    records = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    assert records[1][3] == AUDIT_ARCH[machine]  # the architecture is checked first
    for index, (op, jt, jf, _) in enumerate(records):
        if op & 0x07 == 0x05:  # a jump: both branches land inside the program
            assert index + 1 + max(jt, jf) < len(records)
    returns = {k for op, _, _, k in records if op == RET}
    assert returns == {ALLOW, ERRNO | 1, ERRNO | 38}  # allow, EPERM, ENOSYS
    assert records[-1][0] == RET


def test_no_filter_on_an_uncovered_machine():
    assert build_filter("riscv64") is None
