"""Puts tests/ on sys.path (the loopback chat server of the engine tests) and gives the
batch tests a scripted model on that server."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parent.parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
