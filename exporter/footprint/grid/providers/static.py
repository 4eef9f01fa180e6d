"""Embedded annual intensities: the offline provider and the chain's last resort.

Three tables in `grid/data/` (sources and licences in its README): country averages, cloud regions
(Google's published per-region grid intensity, AWS and Azure regions mapped to their grid zone) and,
optionally, a user file that maps more region names (e.g. Kubernetes `topology.kubernetes.io/region`
values of an on-prem cluster) to zones or overrides a zone's figure.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from footprint import numbers
from footprint.grid.base import MAX_PLAUSIBLE_INTENSITY, IntensityReading

log = logging.getLogger("footprint.grid")

DATA = Path(__file__).resolve().parent.parent / "data"
WORLD_AVERAGE = 475.0  # gCO2e/kWh, IEA 2019: the figure used widely when nothing is known
WORLD_ZONE = "world"


@dataclass(frozen=True)
class Figure:
    zone: str
    value: float
    year: str
    source: str


class TableError(ValueError):
    """A table file is unreadable or has a bad row; the message names the file and line."""


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return [
                (n + 2, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                for n, row in enumerate(csv.DictReader(fh))
            ]
    except OSError as exc:
        raise TableError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TableError(f"{path} is not UTF-8 text (byte {exc.start})") from None
    except csv.Error as exc:
        raise TableError(f"{path} is not a CSV table: {exc}") from None


def _value(path: Path, line: int, text: str) -> float:
    try:
        return numbers.bounded(text, 0.0, MAX_PLAUSIBLE_INTENSITY)
    except numbers.NumberError as exc:
        what = "is outside 0-3000 g/kWh" if exc.reason == "out_of_range" else "is not a number"
        raise TableError(f"{path}:{line}: value {text[:40]!r} {what}") from None


class Tables:
    """Zone figures and region -> zone maps. Lookups are case-insensitive; zones are kept upper case."""

    def __init__(self, extra_file: str = "") -> None:
        self.zones: dict[str, Figure] = {}  # country averages and user overrides
        self.region_zone: dict[str, str] = {}
        self.region_figure: dict[str, Figure] = {}  # regions with their own published figure
        self.subzones: dict[str, Figure] = {}  # zones known only through a region's figure
        countries = DATA / "countries.csv"
        for line, row in _rows(countries):
            zone = row["zone"].upper()
            self.zones[zone] = Figure(zone, _value(countries, line, row["value"]), row["year"], row["source"])
        self._load_regions(DATA / "cloud_regions.csv")
        if extra_file:
            self._load_regions(Path(extra_file), user=True)

    def _load_regions(self, path: Path, user: bool = False) -> None:
        for line, row in _rows(path):
            zone = row.get("zone", "").upper()
            region = row.get("region", "").lower()
            if not zone:
                raise TableError(f"{path}:{line}: zone is empty")
            text = row.get("value", "")
            figure = None
            if text:
                source = row.get("source") or ("user table" if user else "")
                figure = Figure(zone, _value(path, line, text), row.get("year", ""), source)
            if region:
                self.region_zone[region] = zone
                if figure:
                    self.region_figure[region] = figure
                    self.subzones.setdefault(zone, figure)
            elif figure:
                self.zones[zone] = figure  # a user override of a zone's figure
            else:
                raise TableError(f"{path}:{line}: a row needs a region, a value or both")

    def zone_for_region(self, region: str) -> str | None:
        return self.region_zone.get(region.strip().lower())

    def figure(self, zone: str, region: str = "") -> Figure | None:
        """The best figure for a zone (or, with no zone, a region): exact zone, the region's own
        published figure, a sub-zone known from a region, then the country the zone belongs to."""
        region = region.strip().lower()
        zone = zone.strip().upper() or self.region_zone.get(region, "")
        if region in self.region_figure and self.region_figure[region].zone == zone:
            return self.region_figure[region]
        if not zone:
            return None
        if zone in self.zones:
            return self.zones[zone]
        if zone in self.subzones:
            return self.subzones[zone]
        country = zone.split("-")[0]
        if len(zone) > 2 and zone[:2].isalpha() and zone[2:].isdigit():
            country = zone[:2]  # bidding zones such as DK1, NO2, SE3
        return self.zones.get(country)


class StaticProvider:
    """Never fails and never goes stale: the value does not pretend to be live (estimated=True)."""

    name = "static"
    signal = "average"
    timeless = True

    def __init__(
        self, tables: Tables, zone: str = "", region: str = "", clock: Callable[[], float] = time.time
    ) -> None:
        self.requested = zone or region
        self.clock = clock
        self.figure = tables.figure(zone, region)
        if self.figure is None:
            if self.requested:
                log.warning(
                    "grid: static table has no figure for %r; using the world average %g g/kWh (IEA 2019)",
                    self.requested, WORLD_AVERAGE,
                )
            else:
                log.info(
                    "grid: no --grid.zone or --grid.region set; using the world average %g g/kWh (IEA 2019)",
                    WORLD_AVERAGE,
                )
            self.figure = Figure(WORLD_ZONE, WORLD_AVERAGE, "2019", "IEA world average")

    @property
    def basis(self) -> str:
        """Ember's country figures (via OWID) are life-cycle; Google's region figures are operational
        (direct); the IEA world average counts combustion CO2 (direct); a user's row: unknown."""
        source = self.figure.source if self.figure else ""
        if source.startswith("Ember"):
            return "lifecycle"
        if source.startswith(("Google", "IEA")):
            return "direct"
        return "unknown"

    @property
    def known(self) -> bool:
        return self.figure is not None and self.figure.zone != WORLD_ZONE

    def fetch(self) -> IntensityReading:
        assert self.figure is not None
        return IntensityReading(
            value=self.figure.value, signal="average", provider=self.name, zone=self.figure.zone,
            published_at=None, fetched_at=self.clock(), estimated=True,
        )

    def describe(self) -> str:
        assert self.figure is not None
        f = self.figure
        asked = f" for {self.requested}" if self.requested and self.requested.upper() != f.zone else ""
        return f"static: {f.zone}{asked} {f.value:g} g/kWh ({f.source}, {f.year}), annual average"
