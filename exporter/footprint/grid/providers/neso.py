"""UK NESO Carbon Intensity API (no auth, CC BY 4.0): Great Britain, national or one of 17 regions.

Half-hourly periods. National periods carry `actual` once measured, else only `forecast`; regional ones
only `forecast`, so a regional value is always marked estimated. The 48-hour forecast comes from the
`fw48h` endpoints, asked at most every 30 minutes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from footprint.grid.base import ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, Throttle, items, number, optional_number, parse_time

log = logging.getLogger("footprint.grid")
FORECAST_EVERY = 1800.0


def _periods(name: str, data: Any, regional: bool) -> list[Any]:
    """The list of half-hour periods, national or regional (whose `data` nests one level deeper and is
    a list in some answers, an object in others)."""
    outer = items(name, data, "data") if not (regional and isinstance(data, dict) and isinstance(
        data.get("data"), dict)) else [data["data"]]
    if not regional:
        return outer
    if not outer:
        raise ProviderError("missing_field", f"{name}: answer holds no region")
    return items(name, outer[0], "data")


class NesoProvider:
    name = "neso"
    signal = "average"
    basis = "direct"  # NESO factors: generation CO2 only, wind/solar/nuclear 0 (docs/methodology.md)

    def __init__(self, http: Http, base_url: str, region: int | None) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.region = region
        self.zone = "GB" if region is None else f"GB-region-{region}"
        self._forecast: tuple[ForecastPoint, ...] = ()
        self._forecast_due = Throttle(FORECAST_EVERY)

    def fetch(self) -> IntensityReading:
        regional = self.region is not None
        path = f"/regional/regionid/{self.region}" if regional else "/intensity"
        data = self.http.get_json(self.base + path, not_found="unknown_zone")
        periods = _periods(self.name, data, regional)
        if not periods:
            raise ProviderError("missing_field", f"{self.name}: no current period")
        period = periods[0]
        intensity = period.get("intensity") if isinstance(period, dict) else None
        if not isinstance(intensity, dict):
            raise ProviderError("missing_field", f"{self.name}: period has no 'intensity'")
        actual = intensity.get("actual")
        key = "actual" if actual is not None else "forecast"
        value = number(self.name, intensity, key)
        now = self.http.clock()
        self._refresh_forecast(now)
        return IntensityReading(
            value=value, signal=self.signal, provider=self.name, zone=self.zone,
            published_at=parse_time(period.get("from")), fetched_at=now, estimated=key == "forecast",
            forecast=self._forecast,
        )

    def _refresh_forecast(self, now: float) -> None:
        if not self._forecast_due.due(now):
            return
        start = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        if self.region is None:
            path = f"/intensity/{start}/fw48h"
        else:
            path = f"/regional/intensity/{start}/fw48h/regionid/{self.region}"
        try:
            periods = _periods(self.name, self.http.get_json(self.base + path), self.region is not None)
        except ProviderError as exc:
            log.debug("grid: neso forecast failed: %s", exc)
            return
        points = []
        for p in periods:
            start_at = parse_time(p.get("from")) if isinstance(p, dict) else None
            if start_at is None:
                self.http.dropped["malformed"] += 1
                continue
            value = optional_number(p.get("intensity"), "forecast", self.http.dropped)
            if value is not None:
                points.append(ForecastPoint(start_at, value))
        self._forecast = tuple(sorted(points, key=lambda p: p.start))

    def describe(self) -> str:
        where = "national (GB)" if self.region is None else f"region {self.region}"
        return f"neso: {self.base} {where}"
