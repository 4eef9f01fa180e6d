"""A value the user states (a contract's figure, a site's own measurement): never fails, never stale."""

from __future__ import annotations

import time
from collections.abc import Callable

from footprint.grid.base import IntensityReading


class ConstantProvider:
    name = "constant"
    basis = "unknown"  # the user's figure: its basis is theirs to state
    timeless = True

    def __init__(self, value: float, signal: str, zone: str, clock: Callable[[], float] = time.time) -> None:
        self.value = value
        self.signal = signal  # the user's figure is meant for the accounting they chose
        self.zone = zone or "user"
        self.clock = clock

    def fetch(self) -> IntensityReading:
        return IntensityReading(
            value=self.value, signal=self.signal, provider=self.name, zone=self.zone, fetched_at=self.clock()
        )

    def describe(self) -> str:
        return f"constant: {self.value:g} g/kWh ({self.signal}) set by the user for zone {self.zone}"
