"""Fixtures for viewer tests: synthetic runs, trace files, a headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rlmagent import events as ev
from rlmagent.trace import TraceWriter

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _load_synth() -> ModuleType:
    # the synthetic runs live beside the trace tests; load that one file by path
    if "synth" in sys.modules:
        return sys.modules["synth"]
    path = Path(__file__).parents[1] / "trace" / "synth.py"
    spec = importlib.util.spec_from_file_location("synth", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = module
    spec.loader.exec_module(module)
    return module


synth = _load_synth()


@pytest.fixture
def write_trace(tmp_path: Path) -> Callable[..., Path]:
    def write(events: list[ev.Event], name: str = "run.jsonl") -> Path:
        path = tmp_path / name
        with TraceWriter(path) as writer:
            for e in events:
                writer(e)
        return path

    return write


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: $RLMAGENT_TEST_ARTIFACTS, else tests/artifacts (git-ignored)."""
    default = Path(__file__).parents[1] / "artifacts"
    path = Path(os.environ.get("RLMAGENT_TEST_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium driven through chromedriver (Debian packages)."""
    missing = [
        name
        for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
        if path is None
    ]
    if missing:
        pytest.skip(
            f"headless browser tests need Chromium and chromedriver (Debian packages "
            f"`chromium`, `chromium-driver`): {' and '.join(missing)} not found on PATH"
        )
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="rlm-chromium-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1400",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
