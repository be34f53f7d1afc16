"""Shared fixtures."""

from __future__ import annotations

import pytest
from known_data import block_interactions

from avrec.data import Interactions


@pytest.fixture
def blocks() -> Interactions:
    return block_interactions()
