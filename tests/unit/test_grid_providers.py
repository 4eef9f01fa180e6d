"""Every provider parses its documented answer (nulls and missing optional fields too), against a real
HTTP server on 127.0.0.1 speaking that API's JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from footprint import config
from footprint.grid.base import ForecastPoint
from footprint.grid.feed import GridFeed

from tests.fakes.grid_servers import (
    CarbonAwareFake,
    ElectricityMapsFake,
    EnerginetFake,
    NesoFake,
    PeerFake,
    WattTimeFake,
    serving,
)
from tests.support.grid_helpers import T0, TOKEN, Clock, exposition, make_feed, samples, secret_file, value


def em_feed(clock: Clock, em: ElectricityMapsFake, tmp_path: Path, *flags: str) -> GridFeed:
    token = secret_file(tmp_path, "em-token", TOKEN)
    return make_feed(clock, "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
                     f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", *flags)


def test_electricitymaps_latest(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    em.state.age = 1800
    feed = em_feed(clock, em, tmp_path)
    feed.refresh_due()
    r = feed.accounting_intensity()
    assert (r.value, r.signal, r.provider, r.zone, r.estimated) == (322.0, "average", "electricitymaps", "DE", True)
    assert r.published_at == T0 - 1800
    assert r.forecast == ()  # the free plan has none: asked once, then never again
    latest = next(q for q in em.requests if q.path == "/v3/carbon-intensity/latest")
    assert latest.query == {"zone": "DE", "shouldUseFallbackCallerLookup": "false"}
    assert latest.headers["auth-token"] == TOKEN
    clock.advance(7200)
    feed.refresh_due()
    assert em.paths() == {"/v3/carbon-intensity/latest": 2, "/v3/carbon-intensity/forecast": 1}


def test_electricitymaps_forecast_and_v4(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    em.state.forecast = [(0, 300.0), (3600, 250.0), (7200, 120.0), (10800, 400.0)]
    token = secret_file(tmp_path, "em-token", TOKEN)
    feed = make_feed(clock, "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v4/",
                     f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE")
    feed.refresh_due()
    r = feed.accounting_intensity()
    assert r.forecast[2] == ForecastPoint(T0 + 7200, 120.0) and len(r.forecast) == 4
    assert em.requests[0].query["disableCallerLookup"] == "true"


def test_electricitymaps_missing_optional_fields(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    em.state.omit = {"datetime", "isEstimated", "updatedAt", "createdAt", "emissionFactorType", "zone"}
    feed = em_feed(clock, em, tmp_path)
    feed.refresh_due()
    r = feed.accounting_intensity()
    assert (r.value, r.published_at, r.fetched_at, r.estimated) == (322.0, None, T0, False)


def test_electricitymaps_null_intensity_is_no_data_not_zero(
    clock: Clock, em: ElectricityMapsFake, tmp_path: Path
) -> None:
    em.state.intensity = None
    feed = em_feed(clock, em, tmp_path, "--grid.fallback=static")
    feed.refresh_due()
    r = feed.accounting_intensity()
    assert (r.provider, r.value) == ("static", 381.0)
    assert feed.api_payload()["chain"][0]["last_error"] == "missing_field"


def test_electricitymaps_config_errors(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.electricitymaps\.token-file: required .*"
                       r"FOOTPRINT_GRID_ELECTRICITYMAPS_TOKEN\)$"):
        GridFeed(config.load(["--grid.provider=electricitymaps", "--grid.zone=DE"], env={}))
    with pytest.raises(config.ConfigError, match=r"^grid\.electricitymaps\.token-file: file not found: "):
        GridFeed(config.load(["--grid.provider=electricitymaps", "--grid.zone=DE",
                              f"--grid.electricitymaps.token-file={tmp_path}/nope"], env={}))
    env = {"FOOTPRINT_GRID_ELECTRICITYMAPS_TOKEN": TOKEN}
    with pytest.raises(config.ConfigError, match=r"^grid\.zone: required by the electricitymaps provider"):
        GridFeed(config.load(["--grid.provider=electricitymaps"], env=env))
    with pytest.raises(config.ConfigError, match=r"^grid\.electricitymaps\.url: must start with http"):
        GridFeed(config.load(["--grid.provider=electricitymaps", "--grid.zone=DE",
                              "--grid.electricitymaps.url=ftp://x"], env=env))


def test_electricitymaps_token_from_environment(clock: Clock, em: ElectricityMapsFake) -> None:
    settings = config.load(["--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
                            "--grid.zone=DE"], env={"FOOTPRINT_GRID_ELECTRICITYMAPS_TOKEN": TOKEN})
    feed = GridFeed(settings, clock=clock)
    feed.refresh_due()
    assert feed.accounting_intensity().provider == "electricitymaps"


# --- WattTime --------------------------------------------------------------------------------------


def wt_feed(clock: Clock, wt: WattTimeFake, tmp_path: Path, *flags: str) -> GridFeed:
    password = secret_file(tmp_path, "wt-password", "hunter2-wt-pass")
    return make_feed(clock, "--grid.provider=watttime", f"--grid.watttime.url={wt.url}",
                     "--grid.watttime.username=alice", f"--grid.watttime.password-file={password}",
                     "--grid.zone=CAISO_NORTH", *flags)


def test_watttime_moer_is_marginal_in_g_per_kwh(clock: Clock, tmp_path: Path) -> None:
    with serving(WattTimeFake("alice", "hunter2-wt-pass", clock)) as wt:
        feed = wt_feed(clock, wt, tmp_path, "--grid.fallback=static", "--grid.zone=CAISO_NORTH")
        feed.refresh_due()
        m = feed.marginal()
        assert m is not None
        assert (m.signal, m.provider, m.zone) == ("marginal", "watttime", "CAISO_NORTH")
        assert m.value == pytest.approx(1048.41 * 0.45359237)
        assert [p.value for p in m.forecast] == pytest.approx([1048.41 * 0.45359237, 900 * 0.45359237,
                                                               700 * 0.45359237])
        assert m.forecast[1].start - m.forecast[0].start == 300
        # Marginal never drives the emissions counters unless asked for.
        assert feed.accounting_intensity().provider == "static"
        assert wt.paths() == {"/login": 1, "/v3/forecast": 1}
        q = wt.requests[1].query
        assert q == {"region": "CAISO_NORTH", "signal_type": "co2_moer", "horizon_hours": "24"}


def test_watttime_marginal_accounting_and_missing_units(clock: Clock, tmp_path: Path) -> None:
    with serving(WattTimeFake("alice", "hunter2-wt-pass", clock)) as wt:
        wt.state.units = None  # documented default: lbs/MWh
        feed = wt_feed(clock, wt, tmp_path, "--grid.accounting-signal=marginal")
        feed.refresh_due()
        r = feed.marginal()  # its own counter; the emissions counters keep the (static) average
        assert r is not None and (r.provider, r.signal) == ("watttime", "marginal")
        assert r.value == pytest.approx(475.56, abs=0.01)
        assert feed.accounting_intensity().signal == "average"
        assert not feed.fallback_active()


def test_watttime_token_is_renewed_before_it_expires(clock: Clock, tmp_path: Path) -> None:
    with serving(WattTimeFake("alice", "hunter2-wt-pass", clock)) as wt:
        feed = wt_feed(clock, wt, tmp_path, "--grid.refresh-interval=10m")
        for _ in range(4):
            feed.refresh_due()
            clock.advance(600)
        # 4 fetches over 40 minutes: a login at 0 and one after 25 minutes; never a 401 on the way.
        assert wt.paths() == {"/login": 2, "/v3/forecast": 4}


def test_watttime_config_errors(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.watttime\.username: required"):
        GridFeed(config.load(["--grid.provider=watttime", "--grid.zone=CAISO_NORTH"], env={}))
    with pytest.raises(config.ConfigError, match=r"^grid\.watttime\.password-file: required .*"
                       r"FOOTPRINT_GRID_WATTTIME_PASSWORD\)$"):
        GridFeed(config.load(["--grid.provider=watttime", "--grid.watttime.username=a", "--grid.zone=X"], env={}))
    empty = secret_file(tmp_path, "empty", "")
    with pytest.raises(config.ConfigError, match=r"^grid\.watttime\.password-file: .* is empty$"):
        GridFeed(config.load(["--grid.provider=watttime", "--grid.watttime.username=a", "--grid.zone=X",
                              f"--grid.watttime.password-file={empty}"], env={}))


# --- NESO ------------------------------------------------------------------------------------------


def test_neso_national_prefers_actual(clock: Clock) -> None:
    with serving(NesoFake(clock)) as neso:
        feed = make_feed(clock, "--grid.provider=neso", f"--grid.neso.url={neso.url}")
        feed.refresh_due()
        r = feed.accounting_intensity()
        assert (r.value, r.zone, r.estimated, r.provider) == (263.0, "GB", False, "neso")
        assert r.published_at == T0 - T0 % 1800
        assert [p.value for p in r.forecast] == [250.0, 240.0, 120.0, 300.0]
        assert feed.zone == "GB"  # implied: the static fallback uses Great Britain's figure
        fw = [q.path for q in neso.requests if q.path.endswith("/fw48h")]
        assert fw == ["/intensity/2027-01-15T08:00Z/fw48h"]
        neso.state.actual = None  # future/unmeasured period: use the forecast, marked estimated
        clock.advance(300)
        feed.refresh_due()
        r = feed.accounting_intensity()
        assert (r.value, r.estimated) == (266.0, True)


def test_neso_regional(clock: Clock) -> None:
    with serving(NesoFake(clock)) as neso:
        feed = make_feed(clock, "--grid.provider=neso", f"--grid.neso.url={neso.url}", "--grid.neso.region=3")
        feed.refresh_due()
        r = feed.accounting_intensity()
        assert (r.value, r.zone, r.estimated) == (180.0, "GB-region-3", True)
        assert len(r.forecast) == 4
        assert neso.paths() == {"/regional/regionid/3": 1,
                                "/regional/intensity/2027-01-15T08:00Z/fw48h/regionid/3": 1}


def test_neso_rejects_a_foreign_zone() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.zone: the neso provider covers Great Britain"):
        GridFeed(config.load(["--grid.provider=neso", "--grid.zone=DE"], env={}))


# --- Energinet -------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["DK1", "DK-DK1", "dk-dk1"])
def test_energinet_skips_a_null_newest_value(clock: Clock, zone: str) -> None:
    with serving(EnerginetFake(clock)) as dk:
        feed = make_feed(clock, "--grid.provider=energinet", f"--grid.energinet.url={dk.url}", f"--grid.zone={zone}")
        feed.refresh_due()
        r = feed.accounting_intensity()
        start = T0 - T0 % 300
        assert (r.value, r.zone, r.published_at) == (160.0, "DK-DK1", start - 300)
        assert [p.value for p in r.forecast] == [150.0, 140.0, 60.0, 170.0]
        q = dk.requests[0].query
        assert q == {"limit": "5", "sort": "Minutes5UTC DESC", "filter": '{"PriceArea":["DK1"]}'}


def test_energinet_needs_a_price_area() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.zone: the energinet provider needs DK1 or DK2"):
        GridFeed(config.load(["--grid.provider=energinet", "--grid.zone=DK"], env={}))


# --- Carbon Aware SDK ------------------------------------------------------------------------------


def test_carbonaware_newest_rating_and_forecast(clock: Clock) -> None:
    with serving(CarbonAwareFake(clock)) as ca:
        feed = make_feed(clock, "--grid.provider=carbonaware", f"--grid.carbonaware.url={ca.url}",
                         "--grid.zone=eastus")
        feed.refresh_due()
        r = feed.accounting_intensity()
        assert (r.value, r.zone, r.signal, r.published_at) == (70.0, "eastus", "average", T0)
        assert [p.value for p in r.forecast] == [532.0, 448.4, 500.0]


def test_carbonaware_marginal_source_and_no_forecast(clock: Clock) -> None:
    with serving(CarbonAwareFake(clock)) as ca:
        ca.state.forecast = None
        feed = make_feed(clock, "--grid.provider=carbonaware", f"--grid.carbonaware.url={ca.url}",
                         "--grid.region=eastus", "--grid.carbonaware.signal=marginal", "--grid.fallback=static")
        for _ in range(3):
            feed.refresh_due()
            clock.advance(3600)
        m = feed.marginal()
        assert m is not None and m.forecast == ()
        assert ca.paths() == {"/emissions/bylocation": 3, "/emissions/forecasts/current": 1}


def test_carbonaware_needs_url_and_location() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.carbonaware\.url: required"):
        GridFeed(config.load(["--grid.provider=carbonaware", "--grid.zone=eastus"], env={}))
    with pytest.raises(config.ConfigError, match=r"^grid\.zone: required by the carbonaware provider"):
        GridFeed(config.load(["--grid.provider=carbonaware", "--grid.carbonaware.url=http://127.0.0.1:1"], env={}))


# --- peer ------------------------------------------------------------------------------------------


def test_peer_reads_another_feeds_payload(clock: Clock, tmp_path: Path) -> None:
    with serving(WattTimeFake("alice", "hunter2-wt-pass", clock)) as wt, \
            serving(NesoFake(clock)) as neso:
        upstream = wt_feed(clock, wt, tmp_path, "--grid.provider=neso", f"--grid.neso.url={neso.url}",
                           "--grid.fallback=watttime", "--grid.zone=", "--grid.watttime.region=CAISO_NORTH")
        upstream.refresh_due()
        with serving(PeerFake(upstream.api_payload, clock)) as server:
            node = make_feed(clock, "--grid.provider=peer", f"--grid.peer.url={server.url}/",
                             "--grid.fallback=static", "--grid.zone=GB")
            node.refresh_due()
            r = node.accounting_intensity()
            assert (r.value, r.signal, r.provider, r.zone, r.published_at) == (
                263.0, "average", "peer", "GB", T0 - T0 % 1800)
            assert [p.value for p in r.forecast] == [250.0, 240.0, 120.0, 300.0]
            m = node.marginal()
            assert m is not None and (m.provider, m.zone) == ("peer", "CAISO_NORTH")
            assert m.value == pytest.approx(1048.41 * 0.45359237)
            assert not node.fallback_active()
            assert any("upstream neso" in line for line in node.doctor_lines())
            assert server.paths() == {"/api/v1/grid": 1}


def test_peer_needs_url() -> None:
    with pytest.raises(config.ConfigError, match=r"^grid\.peer\.url: required"):
        GridFeed(config.load(["--grid.provider=peer"], env={}))


def peer_payload(forecast: list[dict[str, object]], **reading: object) -> dict[str, object]:
    acc = {"value": 300.0, "signal": "average", "provider": "constant", "zone": "DE", "published_at": T0 - 60,
           "fetched_at": T0 - 60, "estimated": False, "forecast": forecast, **reading}
    return {"version": 1, "accounting": acc, "marginal": None}


def test_peer_forecast_points_at_nan_or_infinity_are_dropped_and_counted(clock: Clock) -> None:
    """Python's json reads NaN and +-Infinity; `int(nan)` while building families once failed every
    /metrics request on every node. The bad points go, counted; the good ones and the value stay."""
    bad: list[dict[str, object]] = [{"start": float("nan"), "value": 200.0}, {"start": float("inf"), "value": 200.0},
           {"start": float("-inf"), "value": 200.0}, {"start": 10**400, "value": 200.0},
           {"start": T0 + 3600, "value": float("nan")}, {"start": "soon", "value": 1.0}, {"value": 5.0}]
    good: list[dict[str, object]] = [{"start": T0, "value": 250.0}, {"start": T0 + 3600, "value": 120.0}]
    with serving(PeerFake(lambda: peer_payload(bad + good), clock)) as server:
        node = make_feed(clock, "--grid.provider=peer", f"--grid.peer.url={server.url}", "--grid.zone=DE")
        node.refresh_due()
        r = node.accounting_intensity()
        assert (r.provider, r.value) == ("peer", 300.0)
        assert [(p.start, p.value) for p in r.forecast] == [(T0, 250.0), (T0 + 3600, 120.0)]
        text = exposition(node)  # the families build: this is what /metrics serves
        assert 'footprint_grid_forecast_min_grams_per_kilowatt_hour{grid_zone="DE",provider="peer"' in text
        dropped = {reason: value(node, "footprint_grid_points_dropped_total", provider="peer", reason=reason)
                   for reason in ("non_finite", "malformed", "missing_field", "out_of_range")}
        assert dropped == {"non_finite": 4, "malformed": 2, "missing_field": 1, "out_of_range": 0}


@pytest.mark.parametrize("reading", [{"published_at": float("nan")}, {"published_at": float("inf")},
                                     {"published_at": -1.0}, {"published_at": "yesterday"},
                                     {"value": float("nan")}, {"value": 10**400}, {"signal": ["average"]}])
def test_a_peer_reading_with_a_bad_number_fails_with_a_reason(clock: Clock, reading: dict[str, object]) -> None:
    with serving(PeerFake(lambda: peer_payload([], **reading), clock)) as server:
        node = make_feed(clock, "--grid.provider=peer", f"--grid.peer.url={server.url}", "--grid.zone=DE")
        node.refresh_due()
        assert node.accounting_intensity().provider == "static"
        errors = {dict(labels)["reason"]: v for (name, labels), v in samples(node).items()
                  if name == "footprint_grid_fetch_errors_total" and v}
        assert set(errors) <= {"malformed", "out_of_range"} and sum(errors.values()) == 1, errors


def test_peer_basic_auth(clock: Clock, tmp_path: Path) -> None:
    password = secret_file(tmp_path, "peer-pw", "grid-pod-pass")
    with serving(PeerFake(lambda: peer_payload([]), clock)) as server:
        server.users = {"node": "grid-pod-pass"}
        node = make_feed(clock, "--grid.provider=peer", f"--grid.peer.url={server.url}", "--grid.zone=DE",
                         "--grid.peer.username=node", f"--grid.peer.password-file={password}")
        node.refresh_due()
        assert node.accounting_intensity().provider == "peer"
        assert any("basic auth as node" in line for line in node.doctor_lines())
        assert "grid-pod-pass" not in "\n".join(node.doctor_lines())
        server.users = {"node": "rotated"}
        clock.advance(3600)
        node.refresh_due()
        assert value(node, "footprint_grid_fetch_errors_total", provider="peer", reason="auth") == 1


@pytest.mark.parametrize(("flags", "key"), [
    (["--grid.peer.url=http://grid:10180", "--grid.peer.ca-file=/etc/ca.pem"], "grid.peer.ca-file"),
    (["--grid.peer.url=https://grid:10180", "--grid.peer.ca-file=/nonexistent/ca.pem"], "grid.peer.ca-file"),
    (["--grid.peer.url=https://grid:10180", "--grid.peer.username=node"], "grid.peer.password-file"),
    (["--grid.peer.url=https://grid:10180", "--grid.peer.password-file=/x"], "grid.peer.username"),
    (["--grid.peer.url=https://grid:10180", "--grid.peer.username=n", "--grid.peer.password-file=/nope"],
     "grid.peer.password-file"),
])
def test_peer_tls_and_auth_mistakes_name_the_key(flags: list[str], key: str) -> None:
    with pytest.raises(config.ConfigError) as err:
        GridFeed(config.load(["--grid.provider=peer", *flags], env={}))
    assert str(err.value).startswith(key + ": ")


def test_peer_ca_file_that_is_not_a_certificate(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    with pytest.raises(config.ConfigError, match=r"^grid\.peer\.ca-file: .* no usable PEM"):
        GridFeed(config.load(["--grid.provider=peer", "--grid.peer.url=https://grid:10180",
                              f"--grid.peer.ca-file={ca}"], env={}))


@pytest.mark.parametrize(("row", "words"), [
    (b"lab,XX-LAB,nan,2025,meter\n", "not a number"), (b"lab,XX-LAB,inf,2025,meter\n", "not a number"),
    (b"lab,XX-LAB," + b"9" * 400 + b",2025,meter\n", "not a number"), (b"lab,XX-LAB,3001,2025,m\n", "outside"),
    (b"lab,XX-LAB,\xff\xfe,2025,meter\n", "not UTF-8"), (b"lab,XX-LAB,4\x002,2025,meter\n", "not a number"),
    (b"lab,XX-LAB,42,2025," + b"m" * 200_000 + b"\n", "not a CSV table"),  # past csv's field size limit
])
def test_static_table_numbers_follow_the_same_rule(tmp_path: Path, row: bytes, words: str) -> None:
    table = tmp_path / "regions.csv"
    table.write_bytes(b"region,zone,value,year,source\n" + row)
    with pytest.raises(config.ConfigError) as err:
        GridFeed(config.load([f"--grid.static.file={table}", "--grid.region=lab"], env={}))
    assert str(err.value).startswith("grid.static.file: ") and words in str(err.value)


def test_forecast_throttle_lets_one_call_through_per_interval() -> None:
    from footprint.grid.providers._http import Throttle

    t = Throttle(1800.0)
    assert t.due(0.0)  # the first call always goes
    assert not t.due(1799.9)
    assert t.due(1800.0)  # counted from the last call let through, not from the refused ones
    assert not t.due(3599.0)
    assert t.due(3600.0)
