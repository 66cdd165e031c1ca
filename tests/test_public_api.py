"""The curated public API."""

from __future__ import annotations

import subprocess
import sys

import rlmagent


def test_all_is_sorted_and_importable():
    assert list(rlmagent.__all__) == sorted(rlmagent.__all__)
    for name in rlmagent.__all__:
        assert hasattr(rlmagent, name), name


def test_issue_names_are_public():
    for name in ("RLMAgent", "AgentResult", "FunctionEngine", "ScriptedEngine", "EventBus"):
        assert name in rlmagent.__all__
    from rlmagent.sandbox import InProcessSandbox, SubprocessSandbox

    assert SubprocessSandbox.__doc__ and InProcessSandbox.__doc__


def test_importing_rlmagent_imports_no_provider_sdk():
    code = (
        "import sys, rlmagent, rlmagent.cli\n"
        "bad = [m for m in ('openai', 'anthropic', 'llama_cpp') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
