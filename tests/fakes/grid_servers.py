"""Real HTTP servers on 127.0.0.1 that speak each grid API's JSON (shapes from shared/REFERENCE.md).

Each fake counts the requests it gets (per path), checks credentials the way the real API does, and
can be told to misbehave: `fault` pre-empts every answer (an HTTP status with optional Retry-After, a
raw body, a delay longer than the client's timeout); the per-API attributes (value, omitted fields,
zone) shape the JSON itself. Times come from `clock`, so a test with a fake clock gets answers that
are as old as it says.

What the real APIs do (their public API docs, summed up in shared/REFERENCE.md) and the fakes copy:
Electricity Maps' `carbonIntensity` can be null and a free key answers one zone; WattTime's login
token expires after 30 minutes and is then refused with 401 (`expire_tokens`); NESO's `actual` is
null for future periods (forecast periods carry no `actual`); throttling answers 429. The ugly cases
a test can set beyond that: a Retry-After on any status, a non-number or missing field
(`intensity`, `omit`), a datetime far in the past or in our future (`age`, clock skew), an answer
for another zone than asked (`answer_zone`), a body that is not JSON, an answer slower than the
client's timeout, and (PeerFake) NaN / Infinity as bare words.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], bytes]


def iso(ts: float, fmt: str = "%Y-%m-%dT%H:%M:%S.000Z") -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime(fmt)


def as_json(obj: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


@dataclass
class Fault:
    status: int = 200
    body: bytes | None = None  # raw body (e.g. b"{not json")
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering (longer than the client timeout: a timeout)
    paths: tuple[str, ...] = ()  # only these path prefixes (all when empty)


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float  # the fake's clock when it arrived


class FakeServer:
    """The HTTP plumbing; subclasses implement `answer(request)`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[Request] = []
        self.fault: Fault | None = None
        self._lock = threading.Lock()
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                req = Request(
                    parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}, dict(self.headers.items()),
                    fake.clock(),
                )
                with fake._lock:
                    fake.requests.append(req)
                    fault = fake.fault
                if fault and (not fault.paths or parts.path.startswith(fault.paths)):
                    if fault.delay:
                        fake._release.wait(fault.delay)
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    answer: Answer = (fault.status, headers, fault.body if fault.body is not None else b"{}")
                else:
                    answer = fake.answer(req)
                status, headers, body = answer
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        # As UTF-8 bytes, as some servers write them; clients read them as latin-1 obs-text.
                        self.send_header(k, v.encode("utf-8").decode("latin-1"))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def answer(self, req: Request) -> Answer:
        raise NotImplementedError

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, prefix: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(prefix))

    def times(self, prefix: str = "") -> list[float]:
        with self._lock:
            return [r.at for r in self.requests if r.path.startswith(prefix)]

    def paths(self) -> Counter[str]:
        with self._lock:
            return Counter(r.path for r in self.requests)


@contextmanager
def serving(server: FakeServer) -> Iterator[Any]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


def refused_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- Electricity Maps ----------------------------------------------------------------------------


@dataclass
class _EMState:
    zones: set[str] = field(default_factory=lambda: {"DE"})
    intensity: Any = 322  # a number, None (null), or anything else to test parsing
    omit: set[str] = field(default_factory=set)  # fields left out of the latest answer
    age: float = 0.0  # how old the latest datetime is, seconds
    forecast: list[tuple[float, float]] | None = None  # (seconds from now, value); None: plan has none
    answer_zone: str | None = None  # zone the API claims it answered for (a caller-IP guess)


class ElectricityMapsFake(FakeServer):
    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.token = token
        self.state = _EMState()

    def answer(self, req: Request) -> Answer:
        if req.headers.get("auth-token") != self.token:
            return as_json({"error": "Invalid auth-token"}, 401)
        zone = req.query.get("zone", "")
        if zone not in self.state.zones:
            return as_json({"error": f"Zone '{zone}' does not exist."}, 404)
        now = self.clock()
        if req.path.endswith("/carbon-intensity/latest"):
            body = {
                "zone": self.state.answer_zone or zone, "carbonIntensity": self.state.intensity,
                "datetime": iso(now - self.state.age), "updatedAt": iso(now), "createdAt": iso(now - 86400),
                "emissionFactorType": "lifecycle", "isEstimated": True, "estimationMethod": None,
                "temporalGranularity": "hourly",
            }
            for k in self.state.omit:
                body.pop(k, None)
            return as_json(body)
        if req.path.endswith("/carbon-intensity/forecast"):
            if self.state.forecast is None:
                return as_json({"error": "Forecast is not available on your plan"}, 401)
            points = [
                {"datetime": iso(now + dt, "%Y-%m-%dT%H:%M:%S+00:00"), "carbonIntensity": v}
                for dt, v in self.state.forecast
            ]
            return as_json({"zone": zone, "updatedAt": iso(now), "forecast": points})
        return as_json({"error": "not found"}, 404)


# --- WattTime ------------------------------------------------------------------------------------


@dataclass
class _WTState:
    regions: set[str] = field(default_factory=lambda: {"CAISO_NORTH"})
    moer: list[Any] = field(default_factory=lambda: [1048.41, 900.0, 700.0])  # lbs/MWh, 5-minute points
    units: str | None = "lbs_co2_per_mwh"
    period: int = 300


class WattTimeFake(FakeServer):
    def __init__(self, username: str, password: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.username, self.password = username, password
        self.state = _WTState()
        self.valid_tokens: set[str] = set()
        self.logins = 0

    def expire_tokens(self) -> None:
        """What happens after 30 minutes: every issued token is refused with 401."""
        self.valid_tokens.clear()

    def answer(self, req: Request) -> Answer:
        if req.path == "/login":
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            if req.headers.get("Authorization") != expected:
                return as_json({"error": "unauthorized"}, 403)
            self.logins += 1
            token = f"jwt-{self.logins}-secretish"
            self.valid_tokens.add(token)
            return as_json({"token": token})
        auth = req.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
            return as_json({"error": "token expired"}, 401)
        if req.path == "/v3/forecast":
            region = req.query.get("region", "")
            if region not in self.state.regions:
                return as_json({"error": "Invalid region"}, 400)
            now = self.clock()
            start = now - now % self.state.period
            data = [
                {"point_time": iso(start + i * self.state.period, "%Y-%m-%dT%H:%M:%S+00:00"), "value": v}
                for i, v in enumerate(self.state.moer)
            ]
            meta: dict[str, Any] = {
                "data_point_period_seconds": self.state.period, "region": region, "signal_type": "co2_moer",
                "model": {"date": "2023-03-01"}, "warnings": [], "generated_at_period_seconds": 300,
                "generated_at": iso(start, "%Y-%m-%dT%H:%M:%S+00:00"),
            }
            if self.state.units is not None:
                meta["units"] = self.state.units
            return as_json({"data": data, "meta": meta})
        return as_json({"error": "not found"}, 404)


# --- NESO ----------------------------------------------------------------------------------------


@dataclass
class _NesoState:
    actual: Any = 263
    forecast: Any = 266
    regional_forecast: Any = 180
    ahead: list[float] = field(default_factory=lambda: [250.0, 240.0, 120.0, 300.0])  # half-hours from now


class NesoFake(FakeServer):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.state = _NesoState()

    def _period(self, start: float, intensity: dict[str, Any]) -> dict[str, Any]:
        fmt = "%Y-%m-%dT%H:%MZ"
        return {"from": iso(start, fmt), "to": iso(start + 1800, fmt), "intensity": intensity}

    def answer(self, req: Request) -> Answer:
        now = self.clock()
        start = now - now % 1800
        parts = req.path.strip("/").split("/")
        fw = [
            self._period(start + i * 1800, {"forecast": v, "index": "moderate"})
            for i, v in enumerate(self.state.ahead)
        ]
        if parts == ["intensity"]:
            cur = {"forecast": self.state.forecast, "actual": self.state.actual, "index": "moderate"}
            return as_json({"data": [self._period(start, cur)]})
        if len(parts) == 3 and parts[0] == "intensity" and parts[2] == "fw48h":
            return as_json({"data": fw})
        region_info = {"dnoregion": "Electricity North West", "shortname": "North West England"}
        if parts[:2] == ["regional", "regionid"] and len(parts) == 3:
            rid = int(parts[2])
            if not 1 <= rid <= 17:
                return as_json({"error": {"code": "400 Bad Request", "message": "Invalid region id"}}, 400)
            cur = {"forecast": self.state.regional_forecast, "index": "moderate"}
            period = {**self._period(start, cur), "generationmix": [{"fuel": "gas", "perc": 43.6}]}
            return as_json({"data": [{"regionid": rid, **region_info, "data": [period]}]})
        if parts[:1] == ["regional"] and len(parts) == 6 and parts[3] == "fw48h":
            return as_json({"data": {"regionid": int(parts[5]), **region_info, "data": fw}})
        return as_json({"error": "not found"}, 404)


# --- Energi Data Service -------------------------------------------------------------------------


@dataclass
class _EnerginetState:
    values: dict[str, list[Any]] = field(default_factory=lambda: {"DK1": [None, 160.0, 158.0], "DK2": [90.0]})
    forecast: dict[str, list[float]] = field(default_factory=lambda: {"DK1": [150.0, 140.0, 60.0, 170.0]})


class EnerginetFake(FakeServer):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.state = _EnerginetState()

    def answer(self, req: Request) -> Answer:
        try:
            areas = json.loads(req.query.get("filter", "{}")).get("PriceArea", [])
        except ValueError:
            return as_json({"error": "bad filter"}, 400)
        now = self.clock()
        start = now - now % 300
        records = []
        dataset = req.path.rsplit("/", 1)[-1]
        for area in areas:
            if dataset == "CO2Emis":
                series = [(start - i * 300, v) for i, v in enumerate(self.state.values.get(area, []))]
            elif dataset == "CO2EmisProg":
                series = [(start + i * 300, v) for i, v in enumerate(self.state.forecast.get(area, []))]
            else:
                return as_json({"error": "dataset not found"}, 404)
            for ts, v in series:
                records.append({
                    "Minutes5UTC": iso(ts, "%Y-%m-%dT%H:%M:%S"), "Minutes5DK": iso(ts + 3600, "%Y-%m-%dT%H:%M:%S"),
                    "PriceArea": area, "CO2Emission": v,
                })
        return as_json({"total": 1903306, "limit": int(req.query.get("limit", "100")), "dataset": dataset,
                        "records": records})


# --- Carbon Aware SDK WebAPI ---------------------------------------------------------------------


@dataclass
class _CAState:
    locations: dict[str, list[Any]] = field(default_factory=lambda: {"eastus": [70, 65]})  # newest first
    forecast: list[float] | None = field(default_factory=lambda: [532.0, 448.4, 500.0])


class CarbonAwareFake(FakeServer):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.state = _CAState()

    def answer(self, req: Request) -> Answer:
        location = req.query.get("location", "")
        if location not in self.state.locations:
            return as_json({"type": "...", "title": "ArgumentException", "status": 400,
                            "detail": f"Unknown location: '{location}'"}, 400)
        now = self.clock()
        fmt = "%Y-%m-%dT%H:%M:%S+00:00"
        if req.path == "/emissions/bylocation":
            rows = [
                {"location": location, "time": iso(now - i * 300, fmt), "rating": v, "duration": "00:05:00"}
                for i, v in enumerate(self.state.locations[location])
            ]
            return as_json(rows[::-1])  # oldest first, as the SDK sorts by time
        if req.path == "/emissions/forecasts/current":
            if self.state.forecast is None:
                return as_json({"title": "NotImplementedException", "status": 501}, 501)
            forecast = self.state.forecast
            points = [
                {"location": location, "timestamp": iso(now + i * 600, fmt), "duration": 10, "value": v}
                for i, v in enumerate(forecast)
            ]
            best = points[forecast.index(min(forecast))]
            return as_json([{"location": location, "dataStartAt": iso(now, fmt), "dataEndAt": iso(now + 86400, fmt),
                             "windowSize": 10, "optimalDataPoint": best, "forecastData": points}])
        return as_json({"status": 404}, 404)


# --- a Footprint peer ----------------------------------------------------------------------------


class PeerFake(FakeServer):
    """Serves a payload the test sets (e.g. another GridFeed's api_payload()): the JSON of a real
    Footprint grid pod's /api/v1/grid (exporter/footprint/grid/feed.py `api_payload`; docs/grid.md).

    `hold`, when set, keeps every answer waiting until the test releases it (bounded): a grid pod
    that is still starting, or slow, answers a node's first fetch late; the node's fetch then waits
    up to --grid.timeout, as it does against a real pod behind a Service.

    Encoded with Python's json.dumps, as a real Footprint peer does: a float NaN or infinity goes out
    as the bare words NaN / Infinity / -Infinity (not JSON per RFC 8259, yet json.loads reads them
    back), and an int of any size as all its digits; so a test hands the node exactly what a broken or
    hostile peer would send. `users` (user -> password), when set, makes it ask for basic auth as a
    grid pod with a web config does (401 with WWW-Authenticate on a missing or wrong credential).
    """

    def __init__(self, payload: Callable[[], Any], clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self.payload = payload
        self.hold: threading.Event | None = None
        self.users: dict[str, str] = {}

    def answer(self, req: Request) -> Answer:
        hold = self.hold
        if hold is not None:
            hold.wait(30.0)
        if self.users:
            sent = req.headers.get("Authorization", "")
            if sent not in {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in self.users.items()}:
                return 401, {"WWW-Authenticate": 'Basic realm="footprint"'}, b"unauthorized\n"
        if req.path == "/api/v1/grid":
            return as_json(self.payload())
        return as_json({"error": "not found"}, 404)
