"""Importing rlmagent and rlmagent.batch never imports Ray (nor the model SDKs)."""

from __future__ import annotations

import subprocess
import sys


def test_the_batch_package_imports_no_ray() -> None:
    code = (
        "import sys, rlmagent, rlmagent.batch, rlmagent.batch.ray_executor\n"
        "heavy = sorted(m for m in ('ray', 'openai', 'anthropic') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
