"""The README's Python example runs as written (engines swapped for test doubles) and
shows what a failed cell said, not only its empty output."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import rlmagent.engines
from rlmagent import ScriptedEngine

README = Path(__file__).parents[2] / "README.md"


def python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Python\n") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "README's ## Python section has no python block"
    return match.group(1)


def test_the_python_example_prints_each_cells_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replies = [
        "```repl\nshutdowns = [l for l in context.splitlines() if 'shut down' in l]\n"
        "print(shutdowns[5])\n```",  # fails: IndexError, and prints nothing
        "```repl\nFINAL(shutdowns[0].split()[0])\n```",
    ]

    def fake_get_engine(spec: str | None = None, **options: object) -> ScriptedEngine:
        engine = ScriptedEngine(replies if spec == "openai:gpt-5" else ["unused"])
        engine.model = spec or "local"  # type: ignore[attr-defined]
        return engine

    monkeypatch.setattr(rlmagent.engines, "get_engine", fake_get_engine)
    monkeypatch.chdir(tmp_path)
    Path("operations-log.txt").write_text("2024-03-01 reactor shut down\nall fine\n")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(python_example(), "README.md", "exec"), {})
    printed = out.getvalue()
    assert printed.startswith("2024-03-01 final\n")
    assert "IndexError" in printed  # the failed cell's error is shown
