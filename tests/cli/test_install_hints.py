"""Install hints say what works from where rlmagent was installed; `rlm bench report`
without matplotlib still prints its table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from rlmagent import extras
from rlmagent.cli import main


class FakeDistribution:
    def __init__(self, direct_url: dict | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch):
    """``installed(direct_url)``: rlmagent as pip recorded it (None: from an index)."""
    from importlib import metadata

    def set_to(direct_url: dict | None) -> None:
        extras._installed_from.cache_clear()
        monkeypatch.setattr(metadata, "distribution", lambda name: FakeDistribution(direct_url))

    yield set_to
    extras._installed_from.cache_clear()


def test_hints_follow_where_rlmagent_came_from(installed, tmp_path: Path) -> None:
    installed(None)
    assert extras.install_hint("openai") == 'pip install "rlmagent[openai]"'
    installed({"url": tmp_path.as_uri(), "dir_info": {"editable": True}})
    hint = extras.install_hint("openai")
    assert hint.startswith('pip install -e ".[openai]"') and str(tmp_path) in hint
    installed({"url": tmp_path.as_uri(), "dir_info": {}})
    assert extras.install_hint("bench").startswith('pip install ".[bench]" (in ')
    installed({"url": "file:///w/rlmagent-0.1.0-py3-none-any.whl", "archive_info": {}})
    assert extras.install_hint("bench") == 'pip install "rlmagent[bench]"'


def test_a_missing_sdk_names_the_extra_as_installed_here(installed, monkeypatch) -> None:
    installed({"url": "file:///src/rlmagent", "dir_info": {}})
    monkeypatch.setitem(sys.modules, "openai", None)  # as if the SDK were not installed
    from rlmagent.engines import get_engine
    from rlmagent.errors import EngineNotAvailable

    with pytest.raises(EngineNotAvailable, match=r'pip install "\.\[openai\]" \(in /src/rlmagent'):
        get_engine("openai:gpt-4o-mini", api_key="k")


def test_bench_report_without_matplotlib_prints_the_table_and_exits_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlmagent import FunctionEngine
    from rlmagent.bench import MethodConfig, Models, generate_items, run_bench

    results = tmp_path / "results.jsonl"
    engine = FunctionEngine(lambda messages, model: "I do not know")
    items = generate_items("sniah", 2048, 1, seed=1)
    config = MethodConfig(window=4096, max_tokens=256)
    run_bench(items, ["direct"], Models(engine, "fake"), config=config, out=results)
    for name in ["matplotlib", *(m for m in sys.modules if m.startswith("matplotlib."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if matplotlib were not installed
    assert main(["bench", "report", str(results)]) == 0
    out, err = capsys.readouterr()
    assert "sniah" in out  # the table
    assert "matplotlib" in err and "bench" in err and extras.install_hint("bench") in err
    assert not results.with_suffix(".png").exists()
    assert main(["bench", "report", str(results), "--plot", str(tmp_path / "p.png")]) == 2
