"""Fixtures shared by the grid tests: a test clock and a fake Electricity Maps server on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.support.grid_helpers import TOKEN, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def em(clock: Clock) -> Iterator[ElectricityMapsFake]:
    with serving(ElectricityMapsFake(TOKEN, clock)) as server:
        yield server
