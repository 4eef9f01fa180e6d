"""Another Footprint exporter's /api/v1/grid: in a cluster, one grid pod calls the outside API and
every node reads from it. Values keep their upstream publication time, so --grid.max-age still means
"how old the grid data is", however many hops away it was fetched.

The peer is one more outside party: every number in its answer goes through the same checks as an
upstream API's (a reading with an implausible value or time fails the fetch; a forecast point with a
NaN, infinite or out-of-range start or value is dropped and counted), and the grid pod may be
secured like any exporter (https with its own CA, basic auth), so the nodes take the same options.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from footprint import numbers
from footprint.config import ConfigError, Settings, read_secret
from footprint.grid.base import BASES, ForecastPoint, IntensityReading, ProviderError
from footprint.grid.providers._http import Http, number, optional_number, timestamp

log = logging.getLogger("footprint.grid")
SIGNALS = ("average", "marginal")
MAX_LABEL = 128  # zone and upstream provider names end up in labels and doctor lines


def build(http: Http, url: str, settings: Settings) -> PeerProvider:
    """The provider with the settings' TLS and basic auth; ConfigError for a setting that cannot work."""
    https = url.startswith("https://")
    ca_file = settings.grid_peer_ca_file
    if ca_file:
        if not https:
            raise ConfigError("grid.peer.ca-file: needs an https:// grid.peer.url")
        try:
            ssl.create_default_context(cafile=ca_file)
        except FileNotFoundError:
            raise ConfigError(f"grid.peer.ca-file: file not found: {ca_file}") from None
        except (OSError, ssl.SSLError, ValueError):
            raise ConfigError(f"grid.peer.ca-file: {ca_file} holds no usable PEM certificate") from None
        http.verify = ca_file  # only this CA: the grid pod's certificate is the cluster's own
    user, password_file = settings.grid_peer_username, settings.grid_peer_password_file
    auth = None
    if user or password_file:
        if not user:
            raise ConfigError("grid.peer.username: required with grid.peer.password-file")
        if not password_file:
            raise ConfigError("grid.peer.password-file: required with grid.peer.username")
        auth = (user, read_secret(password_file, "grid.peer.password-file"))
        if not https:
            log.warning("grid: peer basic auth over plain http sends the password in clear text")
    return PeerProvider(http, url, settings.grid_accounting_signal, auth=auth)


def _label(value: Any) -> str:
    return value if isinstance(value, str) and len(value) <= MAX_LABEL and value.isprintable() else ""


class PeerProvider:
    name = "peer"
    basis = "unknown"  # each reading carries its upstream's basis (the peer's /api/v1/grid says it)

    def __init__(self, http: Http, base_url: str, signal: str, auth: tuple[str, str] | None = None) -> None:
        self.http = http
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/api/v1/grid") else base + "/api/v1/grid"
        self.signal = signal
        self._auth = auth
        self.origin = ""  # the upstream provider of the value in use, for doctor and /api/v1/grid

    def fetch(self) -> IntensityReading:
        return next(r for r in self.fetch_all() if r.signal == self.signal)  # fetch_all raises when absent

    def fetch_all(self) -> list[IntensityReading]:
        data = self.http.get_json(self.url, auth=self._auth)
        if not isinstance(data, dict):
            raise ProviderError("malformed", f"{self.name}: answer is not an object")
        out: list[IntensityReading] = []
        for key in ("accounting", "marginal"):
            item = data.get(key)
            if item is None:
                continue
            r = self._reading(item)
            if key == "accounting":
                self.origin = _label(item.get("provider"))
            if all(o.signal != r.signal for o in out):
                out.append(r)
        if not any(r.signal == self.signal for r in out):
            raise ProviderError("missing_field", f"{self.name}: peer has no {self.signal} value")
        return out

    def _time(self, item: dict[str, Any]) -> float:
        """The upstream publication time, else the peer's fetch time; a time that is there but not a
        plausible Unix time fails the reading (its age, hence its freshness, would be unknown)."""
        for key in ("published_at", "fetched_at"):
            raw = item.get(key)
            if raw is None:
                continue
            if not isinstance(raw, (int, float)):
                raise ProviderError("malformed", f"{self.name}: {key} is not a number")
            try:
                return timestamp(raw)
            except numbers.NumberError as exc:
                raise ProviderError("malformed", f"{self.name}: {key} is not a Unix time: {exc}") from None
        raise ProviderError("missing_field", f"{self.name}: reading has no time")

    def _points(self, rows: Any) -> tuple[ForecastPoint, ...]:
        points = []
        dropped = self.http.dropped
        for p in rows if isinstance(rows, list) else []:
            start = p.get("start") if isinstance(p, dict) else None
            if start is None or not isinstance(start, (int, float)):
                dropped["missing_field" if start is None else "malformed"] += 1
                continue
            try:
                at = timestamp(start)
            except numbers.NumberError as exc:
                dropped[exc.reason] += 1
                continue
            value = optional_number(p, "value", dropped)
            if value is not None:
                points.append(ForecastPoint(at, value))
        return tuple(sorted(points, key=lambda p: p.start))

    def _reading(self, item: Any) -> IntensityReading:
        if not isinstance(item, dict):
            raise ProviderError("malformed", f"{self.name}: a reading is not an object")
        signal = item.get("signal")
        if signal not in SIGNALS:
            raise ProviderError("malformed", f"{self.name}: unknown signal {_label(signal)!r}")
        return IntensityReading(
            value=number(self.name, item, "value"), signal=str(signal), provider=self.name,
            zone=_label(item.get("zone")), published_at=self._time(item), fetched_at=self.http.clock(),
            estimated=item.get("estimated") is True, forecast=self._points(item.get("forecast")),
            basis=item["basis"] if item.get("basis") in BASES else "unknown",
        )

    def describe(self) -> str:
        origin = f", upstream {self.origin}" if self.origin else ""
        auth = f", basic auth as {self._auth[0]}" if self._auth else ""
        ca = f", CA {self.http.verify}" if isinstance(self.http.verify, str) else ""
        return f"peer: {self.url}{origin}{auth}{ca}"
