"""A grid source with a value the test sets. Stands in for the feed only in in-process accounting tests;
the feed itself is tested against real HTTP servers in test_grid_*."""

from __future__ import annotations

from footprint.grid.base import IntensityReading


class FixedGrid:
    def __init__(self, value: float, zone: str = "XX") -> None:
        self.value = value
        self.zone = zone
        self.answered = True  # what settled() says: the chain has answered its first fetch

    def settled(self) -> bool:
        return self.answered

    def accounting_intensity(self) -> IntensityReading:
        return IntensityReading(self.value, "average", "fixed", self.zone)
