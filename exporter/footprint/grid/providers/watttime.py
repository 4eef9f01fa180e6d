"""WattTime v3: marginal operating emissions rate (MOER) for a WattTime region, lbs/MWh -> g/kWh.

Log in with HTTP Basic auth for a bearer token (valid 30 minutes); log in again before it expires and
once more when the API answers 401. One call to /v3/forecast gives the value now (its first point) and
the curve ahead. MOER is a marginal signal: it drives emissions only with --grid.accounting-signal=marginal.
"""

from __future__ import annotations

from typing import Any

from footprint.grid.base import IntensityReading, ProviderError
from footprint.grid.providers._http import LBS_PER_MWH_TO_G_PER_KWH, Http, forecast_points, items, number, parse_time

TOKEN_LIFETIME = 25 * 60.0  # WattTime says 30 minutes; renew a little early
UNITS = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0, "kg_co2_per_mwh": 1.0}


class WattTimeProvider:
    name = "watttime"
    signal = "marginal"
    basis = "direct"  # MOER: the marginal generator's operating (stack) emissions (docs/methodology.md)

    def __init__(self, http: Http, base_url: str, username: str, password: str, region: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/")
        self._auth = (username, password)
        self.region = region
        self._token: str | None = None
        self._token_at = 0.0
        self.logins = 0

    def _login(self) -> None:
        self._token = None
        data = self.http.get_json(f"{self.base}/login", auth=self._auth)
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("auth", f"{self.name}: login answer holds no token")
        self._token, self._token_at = token, self.http.clock()
        self.logins += 1

    def _get(self, path: str, **params: str) -> Any:
        if self._token is None or self.http.clock() - self._token_at > TOKEN_LIFETIME:
            self._login()
        url = f"{self.base}{path}"
        try:
            return self.http.get_json(url, params=params, headers=self._bearer(), not_found="unknown_zone")
        except ProviderError as exc:
            if exc.reason != "auth":
                raise
        self._login()  # token expired or revoked: one fresh login, one retry
        return self.http.get_json(url, params=params, headers=self._bearer(), not_found="unknown_zone")

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def fetch(self) -> IntensityReading:
        data = self._get("/v3/forecast", region=self.region, signal_type="co2_moer", horizon_hours="24")
        meta = data.get("meta") if isinstance(data, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        region = meta.get("region")
        if isinstance(region, str) and region.upper() != self.region.upper():
            raise ProviderError("unknown_zone", f"{self.name}: asked for region {self.region}, got {region}")
        units = meta.get("units") or "lbs_co2_per_mwh"
        if units not in UNITS:
            raise ProviderError("malformed", f"{self.name}: unknown units {units!r}")
        scale = UNITS[units]
        points = items(self.name, data, "data")
        if not points:
            raise ProviderError("missing_field", f"{self.name}: forecast is empty")
        value = number(self.name, points[0], "value", scale=scale)
        first = points[0] if isinstance(points[0], dict) else {}
        return IntensityReading(
            value=value, signal=self.signal, provider=self.name, zone=self.region,
            published_at=parse_time(first.get("point_time")), fetched_at=self.http.clock(),
            estimated=True, forecast=forecast_points(points, "point_time", "value", self.http.dropped, scale=scale),
        )

    def describe(self) -> str:
        return f"watttime: {self.base} region {self.region} (co2_moer, marginal), user {self._auth[0]}, password set"
