"""Green Software Foundation Carbon Aware SDK WebAPI: a service the user already runs.

The SDK relays another data source (WattTime: marginal; Electricity Maps: average), so the signal is
configuration (`--grid.carbonaware.signal`), not guessed. `rating` and forecast `value` are g/kWh.
"""

from __future__ import annotations

import logging
from typing import Any

from footprint.grid.base import ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, HttpStatusError, Throttle, forecast_points, number, parse_time

log = logging.getLogger("footprint.grid")
FORECAST_EVERY = 1800.0


class CarbonAwareProvider:
    name = "carbonaware"
    basis = "unknown"  # the SDK relays WattTime (direct) or Electricity Maps (lifecycle): configuration

    def __init__(self, http: Http, base_url: str, location: str, signal: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self.location = location
        self.signal = signal
        self._forecast: tuple[ForecastPoint, ...] = ()
        self._forecast_due = Throttle(FORECAST_EVERY)
        self._forecast_available = True

    def fetch(self) -> IntensityReading:
        data: Any = self.http.get_json(
            f"{self.base}/emissions/bylocation", params={"location": self.location}, not_found="unknown_zone"
        )
        if not isinstance(data, list):
            raise ProviderError("malformed", f"{self.name}: answer is not a list")
        rows = [r for r in data if isinstance(r, dict)]
        if not rows:
            raise ProviderError("unknown_zone", f"{self.name}: no emissions data for {self.location}")
        newest = max(rows, key=lambda r: parse_time(r.get("time")) or 0.0)
        value = number(self.name, newest, "rating")
        now = self.http.clock()
        self._refresh_forecast(now)
        return IntensityReading(
            value=value, signal=self.signal, provider=self.name, zone=self.location,
            published_at=parse_time(newest.get("time")), fetched_at=now, forecast=self._forecast,
        )

    def _refresh_forecast(self, now: float) -> None:
        if not self._forecast_available or not self._forecast_due.due(now):
            return
        try:
            data = self.http.get_json(
                f"{self.base}/emissions/forecasts/current", params={"location": self.location, "windowSize": "5"}
            )
        except HttpStatusError as exc:
            if exc.status in (400, 404, 501):  # 501: the SDK's data source has no forecast
                log.info("grid: carbonaware forecast not available (HTTP %d); current values only", exc.status)
                self._forecast_available = False
            return
        except ProviderError as exc:
            log.debug("grid: carbonaware forecast failed: %s", exc)
            return
        first = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        self._forecast = forecast_points(first.get("forecastData"), "timestamp", "value", self.http.dropped)

    def describe(self) -> str:
        return f"carbonaware: {self.base} location {self.location} ({self.signal})"
