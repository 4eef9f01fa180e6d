"""Another Footprint exporter's /api/v1/grid: in a cluster, one grid pod calls the outside API and
every node reads from it. Values keep their upstream publication time, so --grid.max-age still means
"how old the grid data is", however many hops away it was fetched.
"""

from __future__ import annotations

from typing import Any

from footprint.grid.base import ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, number, optional_number

SIGNALS = ("average", "marginal")


class PeerProvider:
    name = "peer"

    def __init__(self, http: Http, base_url: str, signal: str) -> None:
        self.http = http
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/api/v1/grid") else base + "/api/v1/grid"
        self.signal = signal
        self.origin = ""  # the upstream provider of the value in use, for doctor and /api/v1/grid

    def fetch(self) -> IntensityReading:
        for r in self.fetch_all():
            if r.signal == self.signal:
                return r
        raise ProviderError("missing_field", f"{self.name}: peer has no {self.signal} value")

    def fetch_all(self) -> list[IntensityReading]:
        data = self.http.get_json(self.url)
        if not isinstance(data, dict):
            raise ProviderError("malformed", f"{self.name}: answer is not an object")
        out: list[IntensityReading] = []
        for key in ("accounting", "marginal"):
            item = data.get(key)
            if item is None:
                continue
            r = self._reading(item)
            if key == "accounting":
                self.origin = str(item.get("provider", ""))
            if all(o.signal != r.signal for o in out):
                out.append(r)
        if not any(r.signal == self.signal for r in out):
            raise ProviderError("missing_field", f"{self.name}: peer has no {self.signal} value")
        return out

    def _reading(self, item: Any) -> IntensityReading:
        if not isinstance(item, dict):
            raise ProviderError("malformed", f"{self.name}: a reading is not an object")
        signal = item.get("signal")
        if signal not in SIGNALS:
            raise ProviderError("malformed", f"{self.name}: unknown signal {signal!r}")
        published = item.get("published_at")
        fetched = item.get("fetched_at")
        at = published if isinstance(published, (int, float)) else fetched
        if isinstance(at, bool) or not isinstance(at, (int, float)):
            raise ProviderError("missing_field", f"{self.name}: reading has no time")
        points = []
        for p in item.get("forecast") or []:
            start = p.get("start") if isinstance(p, dict) else None
            value = optional_number(p, "value")
            if isinstance(start, (int, float)) and not isinstance(start, bool) and value is not None:
                points.append(ForecastPoint(float(start), value))
        return IntensityReading(
            value=number(self.name, item, "value"), signal=str(signal), provider=self.name,
            zone=str(item.get("zone") or ""), published_at=float(at), fetched_at=self.http.clock(),
            estimated=bool(item.get("estimated")), forecast=tuple(points),
        )

    def describe(self) -> str:
        origin = f", upstream {self.origin}" if self.origin else ""
        return f"peer: {self.url}{origin}"
