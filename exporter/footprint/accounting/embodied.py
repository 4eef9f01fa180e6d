"""Embodied (manufacturing) emissions, amortised as the Software Carbon Intensity spec does.

grams accrued in an interval = kgCO2e x 1000 x (interval seconds / lifetime seconds). Figures come
from the user's settings first, then the shipped table (every row names its source); a device with
neither accrues nothing, and doctor says so. Numbers are never invented.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

from footprint.config import Settings


@dataclass(frozen=True)
class EmbodiedFigure:
    kgco2e: float
    source: str


@dataclass(frozen=True)
class TableRow:
    component: str
    match: str
    kgco2e: float
    source: str
    year: int


def load_table() -> list[TableRow]:
    text = resources.files("footprint.accounting").joinpath("data/embodied.csv").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return [
        TableRow(row["component"], row["match"], float(row["kgco2e"]), row["source"], int(row["year"]))
        for row in csv.DictReader(io.StringIO("\n".join(lines)))
    ]


class EmbodiedModel:
    """Which devices carry embodied emissions, and how many grams per second each accrues."""

    def __init__(self, settings: Settings, table: list[TableRow] | None = None) -> None:
        self.lifetime = settings.embodied_lifetime
        self.table = load_table() if table is None else table
        self.overrides = {
            "gpu": settings.embodied_gpu_kgco2e,
            "cpu": settings.embodied_cpu_kgco2e,
            "server": settings.embodied_server_kgco2e,
        }

    def figure(self, component: str, model: str) -> EmbodiedFigure | None:
        override = self.overrides.get(component)
        if override is not None:
            return EmbodiedFigure(override, f"configured: embodied.{component}-kgco2e")
        for row in self.table:
            if row.component == component and row.match.lower() in model.lower():
                return EmbodiedFigure(row.kgco2e, f"{row.source} ({row.year})")
        return None

    def grams(self, figure: EmbodiedFigure, seconds: float) -> float:
        return amortised_grams(figure.kgco2e, seconds, self.lifetime)


def amortised_grams(kgco2e: float, seconds: float, lifetime: float) -> float:
    """The grams of a `kgco2e` figure that `seconds` of a `lifetime` (seconds) carry, in this order of
    operations (accounting/_fastledger.c's stage_energy computes it the same way)."""
    return kgco2e * 1000.0 * seconds / lifetime
