"""Electricity Maps: average, consumption-based intensity per zone (`auth-token` header).

Latest value on every refresh; the forecast (paid plans) at most every 30 minutes, and not again once
the API says the plan lacks it. Caller-IP lookup is switched off, so an unknown zone is an error, never
a guess from where the exporter happens to run.
"""

from __future__ import annotations

import logging
from typing import Any

from footprint.grid.base import ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, HttpStatusError, Throttle, forecast_points, number, parse_time

log = logging.getLogger("footprint.grid")
FORECAST_EVERY = 1800.0


class ElectricityMapsProvider:
    name = "electricitymaps"
    signal = "average"
    basis = "lifecycle"  # Electricity Maps' default emission factors are life-cycle (docs/methodology.md)

    def __init__(self, http: Http, base_url: str, token: str, zone: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self._headers = {"auth-token": token}
        self.zone = zone
        v4 = self.base.endswith("/v4")
        self._lookup = {"disableCallerLookup": "true"} if v4 else {"shouldUseFallbackCallerLookup": "false"}
        self._forecast: tuple[ForecastPoint, ...] = ()
        self._forecast_due = Throttle(FORECAST_EVERY)
        self._forecast_available = True

    def _get(self, path: str, **params: str) -> Any:
        return self.http.get_json(
            f"{self.base}{path}", params={"zone": self.zone, **self._lookup, **params}, headers=self._headers,
            not_found="unknown_zone",
        )

    def fetch(self) -> IntensityReading:
        data = self._get("/carbon-intensity/latest")
        zone = data.get("zone") if isinstance(data, dict) else None
        if isinstance(zone, str) and zone.upper() != self.zone.upper():
            raise ProviderError("unknown_zone", f"{self.name}: asked for zone {self.zone}, got {zone}")
        value = number(self.name, data, "carbonIntensity")
        now = self.http.clock()
        self._refresh_forecast(now)
        return IntensityReading(
            value=value, signal=self.signal, provider=self.name, zone=self.zone,
            published_at=parse_time(data.get("datetime")), fetched_at=now,
            estimated=bool(data.get("isEstimated")), forecast=self._forecast,
        )

    def _refresh_forecast(self, now: float) -> None:
        if not self._forecast_available:
            return
        if not self._forecast_due.due(now):
            return
        try:
            data = self._get("/carbon-intensity/forecast", horizonHours="48")
        except ProviderError as exc:
            if isinstance(exc, HttpStatusError) and 400 <= exc.status < 500 and exc.status != 429:
                self._forecast_available = False  # not on this plan: do not spend quota asking again
                log.info("grid: electricitymaps forecast not available (HTTP %d); latest values only", exc.status)
            else:
                log.debug("grid: electricitymaps forecast failed: %s", exc)
            return
        rows = data.get("forecast") if isinstance(data, dict) else None
        self._forecast = forecast_points(rows, "datetime", "carbonIntensity", self.http.dropped)

    def describe(self) -> str:
        forecast = "with forecast" if self._forecast else "forecast not (yet) available"
        return f"electricitymaps: {self.base} zone {self.zone}, token set, {forecast}"
