"""Puts tests/ on sys.path, so that the bench tests import the loopback chat server of
the engine tests (``engines.fake_server``) as those tests do."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent.parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
