"""The ``tier`` fixture: every sandbox test that takes it runs against every tier."""

from __future__ import annotations

import pytest

from .helpers import TIERS


@pytest.fixture(params=TIERS)
def tier(request: pytest.FixtureRequest) -> str:
    return str(request.param)
