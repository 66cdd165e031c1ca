"""Model code that replaces its own work directory (with a file, or a link to a host
directory) and then kills its worker: the restart takes a fresh private directory, the
cell reports the restart, and the run goes on. Before, the restart raised SandboxError
out of the session (and so out of ``RLMAgent.run``) on the tiers whose work directory
model code can reach."""

from __future__ import annotations

import os

import pytest

from .helpers import assert_continues, open_session

REPLACE = """
import os, shutil
d = os.getcwd()
os.chdir("/")
try:
    shutil.rmtree(d)
    {make}
except OSError:
    pass  # a tier whose work directory cannot be removed: the kill below still counts
os._exit(3)
"""


@pytest.mark.parametrize(
    "make",
    ["open(d, 'w').write('x')", "os.symlink('/etc', d)"],
    ids=["a-file", "a-link-to-etc"],
)
def test_a_replaced_work_directory_is_made_fresh_on_restart(tier: str, make: str) -> None:
    with open_session(tier, context="abc " * 30) as session:
        before = session.workdir
        result = session.execute(REPLACE.format(make=make))
        assert result.state_lost
        assert "restarted" in (result.error or "")
        assert_continues(session)
        assert session.workdir.is_dir() and not session.workdir.is_symlink()
        if session.workdir != before:  # the old path, whatever stands there, is gone
            assert not os.path.lexists(before)
    assert not os.path.lexists(session.workdir)
