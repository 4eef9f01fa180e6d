"""Every provider's parser against hostile answers, served by its real fake over HTTP (hypothesis).

The documents keep each API's shape (shared/REFERENCE.md; tests/fakes/grid_servers.py) with every leaf
drawn from what Python's json can produce: null, booleans, strings, floats including NaN and the
infinities, and integers of hundreds of digits. The rule for all of them: a fetch yields a reading whose
value, times and forecast are finite and plausible, or fails with one of the feed's fixed reasons.
It never raises anything else (which the feed would count as reason="internal", with a traceback).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from footprint.grid.base import MAX_PLAUSIBLE_INTENSITY, IntensityReading, ProviderError
from footprint.grid.feed import REASONS
from footprint.grid.providers._http import POINT_REASONS, Http
from footprint.grid.providers.carbonaware import CarbonAwareProvider
from footprint.grid.providers.electricitymaps import ElectricityMapsProvider
from footprint.grid.providers.energinet import EnerginetProvider
from footprint.grid.providers.neso import NesoProvider
from footprint.grid.providers.peer import PeerProvider
from footprint.grid.providers.watttime import WattTimeProvider
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.grid_servers import (
    CarbonAwareFake,
    ElectricityMapsFake,
    EnerginetFake,
    FakeServer,
    Fault,
    NesoFake,
    PeerFake,
    WattTimeFake,
)
from tests.support.grid_helpers import T0, TOKEN, Clock

leaf = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12), st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**400), 10**400), st.integers(-5, 5000),
)
any_json = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.text(max_size=6), inner, max_size=3), max_leaves=8)
times = st.one_of(leaf, st.sampled_from(["2027-01-15T08:00:00Z", "2027-01-15T08:00Z", "2027-01-15T08:00:00+01:00",
                                         "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2027-13-45T99:99Z",
                                         "2027-01-15T08:00:00", "٢٠٢٧-01-15T08:00Z"]))
numbers_ = st.one_of(leaf, st.floats(0, 3000), st.integers(0, 3000))
unix = st.one_of(leaf, st.floats(T0 - 86400, T0 + 86400), st.just(T0))


def rows(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(any_json, st.lists(st.one_of(st.fixed_dictionaries(fields), any_json), max_size=5))


EM = st.one_of(any_json, st.fixed_dictionaries({
    "zone": st.one_of(st.just("DE"), leaf), "carbonIntensity": numbers_, "datetime": times,
    "isEstimated": leaf, "forecast": rows(datetime=times, carbonIntensity=numbers_)}))
WT = st.one_of(any_json, st.fixed_dictionaries({
    "meta": st.one_of(any_json, st.fixed_dictionaries({"region": st.one_of(st.just("CAISO_NORTH"), leaf),
                                                      "units": st.one_of(st.just("lbs_co2_per_mwh"), leaf)})),
    "data": rows(point_time=times, value=numbers_)}))
NESO = st.one_of(any_json, st.fixed_dictionaries({"data": rows(
    **{"from": times, "intensity": st.one_of(any_json, st.fixed_dictionaries({"forecast": numbers_,
                                                                              "actual": numbers_}))})}))
ENERGINET = st.one_of(any_json, st.fixed_dictionaries({"records": rows(
    Minutes5UTC=times, PriceArea=st.one_of(st.just("DK1"), leaf), CO2Emission=numbers_)}))
CARBONAWARE = st.one_of(rows(time=times, rating=numbers_), rows(forecastData=rows(timestamp=times, value=numbers_)))
READING = st.fixed_dictionaries({"signal": st.one_of(st.just("average"), leaf), "value": numbers_,
                                 "published_at": unix, "fetched_at": unix, "zone": leaf, "provider": leaf,
                                 "estimated": leaf, "forecast": rows(start=unix, value=numbers_)})
PEER = st.one_of(any_json, st.fixed_dictionaries({"accounting": st.one_of(READING, any_json),
                                                  "marginal": st.one_of(READING, leaf)}))


def check(fetch: Callable[[], list[IntensityReading]], http: Http) -> None:
    try:
        readings = fetch()
    except ProviderError as exc:
        assert exc.reason in REASONS and exc.reason != "internal"
        return
    for r in readings:
        assert math.isfinite(r.value) and 0 <= r.value <= MAX_PLAUSIBLE_INTENSITY
        assert r.published_at is None or math.isfinite(r.published_at)
        assert isinstance(r.zone, str)
        for p in r.forecast:
            assert math.isfinite(p.start) and math.isfinite(p.value) and 0 <= p.value <= MAX_PLAUSIBLE_INTENSITY
    assert set(http.dropped) == set(POINT_REASONS)


class Case:
    """One provider talking to its fake; each example's document pre-empts the fake's own answers."""

    def __init__(self, fake: FakeServer, build: Callable[[Http, str], Any], clock: Clock, paths: tuple[str, ...] = ()):
        self.fake, self.clock, self.paths = fake, clock, paths
        self.http = Http("test", requests.Session(), 2.0, clock)
        self.provider = build(self.http, fake.url)

    def run(self, doc: Any) -> None:
        self.fake.fault = Fault(body=json.dumps(doc).encode(), paths=self.paths)
        self.clock.advance(3600.0)  # every forecast is due again
        fetch_all = getattr(self.provider, "fetch_all", None)
        check(fetch_all or (lambda: [self.provider.fetch()]), self.http)


@pytest.fixture(scope="module")
def cases() -> Iterator[dict[str, Case]]:
    clock = Clock()
    fakes = {
        "electricitymaps": (ElectricityMapsFake(TOKEN, clock), lambda h, u: ElectricityMapsProvider(
            h, u + "/v3", TOKEN, "DE"), ()),
        "watttime": (WattTimeFake("alice", "pw", clock), lambda h, u: WattTimeProvider(
            h, u, "alice", "pw", "CAISO_NORTH"), ("/v3",)),  # the login stays real
        "neso": (NesoFake(clock), lambda h, u: NesoProvider(h, u, None), ()),
        "neso-regional": (NesoFake(clock), lambda h, u: NesoProvider(h, u, 13), ()),
        "energinet": (EnerginetFake(clock), lambda h, u: EnerginetProvider(h, u, "DK1"), ()),
        "carbonaware": (CarbonAwareFake(clock), lambda h, u: CarbonAwareProvider(h, u, "eastus", "average"), ()),
        "peer": (PeerFake(dict, clock), lambda h, u: PeerProvider(h, u, "average"), ()),
    }
    for fake, _, _ in fakes.values():
        fake.start()
    try:
        yield {name: Case(fake, build, clock, paths) for name, (fake, build, paths) in fakes.items()}
    finally:
        for fake, _, _ in fakes.values():
            fake.stop()


@given(EM)
def test_electricitymaps_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["electricitymaps"].run(doc)


@given(WT)
def test_watttime_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["watttime"].run(doc)


@given(NESO)
def test_neso_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["neso"].run(doc)


@given(st.one_of(NESO, NESO.map(lambda d: {"data": [d] if not isinstance(d, dict) else [{"regionid": 13, **d}]})))
def test_neso_regional_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["neso-regional"].run(doc)


@given(ENERGINET)
def test_energinet_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["energinet"].run(doc)


@given(CARBONAWARE)
def test_carbonaware_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["carbonaware"].run(doc)


@given(PEER)
def test_peer_parser(cases: dict[str, Case], doc: Any) -> None:
    cases["peer"].run(doc)
