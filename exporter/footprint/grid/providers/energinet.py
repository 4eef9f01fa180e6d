"""Energi Data Service (Energinet, Denmark; no auth): 5-minute CO2 emission per price area DK1/DK2.

`CO2Emis` holds measured values (the newest may still be null: the newest non-null of the last five is
used); `CO2EmisProg` holds the forecast (at least 9 hours ahead), asked at most every 15 minutes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

from footprint.grid.base import ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, Throttle, forecast_points, items, number, parse_time

log = logging.getLogger("footprint.grid")
FORECAST_EVERY = 900.0
AREAS = {"DK1": "DK1", "DK2": "DK2", "DK-DK1": "DK1", "DK-DK2": "DK2"}


class EnerginetProvider:
    name = "energinet"
    signal = "average"
    basis = "direct"  # CO2Emis: power plants' emissions, 125 % method (docs/methodology.md)

    def __init__(self, http: Http, base_url: str, area: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.area = area
        self.zone = f"DK-{area}"
        self._filter = json.dumps({"PriceArea": [area]}, separators=(",", ":"))
        self._forecast: tuple[ForecastPoint, ...] = ()
        self._forecast_due = Throttle(FORECAST_EVERY)

    def fetch(self) -> IntensityReading:
        data = self.http.get_json(
            f"{self.base}/dataset/CO2Emis",
            params={"limit": "5", "sort": "Minutes5UTC DESC", "filter": self._filter},
        )
        records = [r for r in items(self.name, data, "records") if isinstance(r, dict)]
        records = [r for r in records if r.get("PriceArea", self.area) == self.area]
        if not records:
            raise ProviderError("unknown_zone", f"{self.name}: no records for price area {self.area}")
        newest = next((r for r in records if r.get("CO2Emission") is not None), records[0])
        value = number(self.name, newest, "CO2Emission")
        now = self.http.clock()
        self._refresh_forecast(now)
        return IntensityReading(
            value=value, signal=self.signal, provider=self.name, zone=self.zone,
            published_at=parse_time(newest.get("Minutes5UTC")), fetched_at=now, forecast=self._forecast,
        )

    def _refresh_forecast(self, now: float) -> None:
        if not self._forecast_due.due(now):
            return
        start = datetime.fromtimestamp(now - 300, timezone.utc).strftime("%Y-%m-%dT%H:%M")
        try:
            data = self.http.get_json(
                f"{self.base}/dataset/CO2EmisProg",
                params={"start": start, "limit": "600", "sort": "Minutes5UTC ASC", "filter": self._filter},
            )
            records = items(self.name, data, "records")
        except ProviderError as exc:
            log.debug("grid: energinet forecast failed: %s", exc)
            return
        ours = [r for r in records if isinstance(r, dict) and r.get("PriceArea", self.area) == self.area]
        self._forecast = forecast_points(ours, "Minutes5UTC", "CO2Emission", self.http.dropped)

    def describe(self) -> str:
        return f"energinet: {self.base} price area {self.area}"
