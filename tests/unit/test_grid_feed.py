"""The feed as the exporter uses it: metrics, forecast and greenest window, /api/v1/grid payload,
background refresh that never blocks a sample, and secrets that never leak."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from footprint import config
from footprint.grid.feed import GridFeed

from tests.fakes.grid_servers import ElectricityMapsFake, Fault, NesoFake, WattTimeFake, refused_url, serving
from tests.support.grid_helpers import T0, TOKEN, Clock, exposition, make_feed, samples, secret_file, value

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "hunter2-wt-pass"


@pytest.fixture
def wt(clock: Clock) -> Iterator[WattTimeFake]:
    with serving(WattTimeFake("alice", PASSWORD, clock)) as server:
        yield server


def full_feed(clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path, *flags: str) -> GridFeed:
    """Average from Electricity Maps, marginal from WattTime, static last."""
    token = secret_file(tmp_path, "token", TOKEN)
    password = secret_file(tmp_path, "pw", PASSWORD)
    return make_feed(
        clock, "--grid.provider=electricitymaps", "--grid.fallback=watttime,static", "--grid.zone=DE",
        f"--grid.electricitymaps.url={em.url}/v3", f"--grid.electricitymaps.token-file={token}",
        f"--grid.watttime.url={wt.url}", "--grid.watttime.username=alice", f"--grid.watttime.password-file={password}",
        "--grid.watttime.region=CAISO_NORTH", *flags,
    )


def test_metric_families(clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path) -> None:
    em.state.age = 600
    feed = full_feed(clock, em, wt, tmp_path)
    feed.refresh_due()
    clock.advance(30)
    s = samples(feed)
    intensity = "footprint_grid_carbon_intensity_grams_per_kilowatt_hour"
    assert s[(intensity, (("grid_zone", "DE"), ("provider", "electricitymaps"), ("signal", "average")))] == 322
    moer = s[(intensity, (("grid_zone", "CAISO_NORTH"), ("provider", "watttime"), ("signal", "marginal")))]
    assert moer == pytest.approx(475.56, abs=0.01)
    assert s[(intensity, (("grid_zone", "DE"), ("provider", "static"), ("signal", "average")))] == 381
    assert value(feed, "footprint_grid_intensity_updated_timestamp_seconds", provider="electricitymaps") == T0 - 600
    assert value(feed, "footprint_grid_intensity_age_seconds", provider="electricitymaps") == 630
    assert value(feed, "footprint_grid_provider_up", provider="watttime") == 1
    assert value(feed, "footprint_grid_fallback_active") == 0
    errors = {k[1] for k in s if k[0] == "footprint_grid_fetch_errors_total"}
    assert (("provider", "electricitymaps"), ("reason", "timeout")) in errors  # initialised at 0
    assert not any(dict(labels).get("provider") == "static" for name, labels in s if "errors" in name)
    # The core renders the accounting gauge; the feed must not duplicate it.
    assert "footprint_grid_accounting_intensity" not in exposition(feed)


def test_exposition_passes_promtool(clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path) -> None:
    promtool = shutil.which("promtool") or str(REPO / ".tools/bin/promtool")
    if not os.access(promtool, os.X_OK):
        pytest.fail("promtool not found: run `make tools` (scripts/install-test-tools.sh .tools)")
    em.state.forecast = [(0, 300.0), (3600, 120.0)]
    feed = full_feed(clock, em, wt, tmp_path)
    feed.refresh_due()
    out = subprocess.run([promtool, "check", "metrics"], input=exposition(feed), capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_forecast_curve_and_greenest_window(
    clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path
) -> None:
    em.state.forecast = [(-3600, 999.0), (0, 300.0), (3600, 250.0), (7200, 120.0), (10800, 400.0),
                         (49 * 3600, 10.0)]  # one past point, one beyond 48 h: neither counts
    wt.state.moer = [1000.0, 800.0, 600.0]  # 5-minute points
    feed = full_feed(clock, em, wt, tmp_path)
    feed.refresh_due()
    wt_labels = {"grid_zone": "CAISO_NORTH", "provider": "watttime", "signal": "marginal"}
    curve = "footprint_grid_forecast_grams_per_kilowatt_hour"
    assert value(feed, curve, **wt_labels, hours_ahead="0") == pytest.approx(800 * 0.45359237)  # hour mean
    clock.advance(600)  # ten minutes in: the hour that started at T0 is still "0 hours ahead"
    em_labels = {"grid_zone": "DE", "provider": "electricitymaps", "signal": "average"}
    got = {h: value(feed, curve, **em_labels, hours_ahead=str(h)) for h in range(-1, 50)}
    assert {h: v for h, v in got.items() if v is not None} == {0: 300.0, 1: 250.0, 2: 120.0, 3: 400.0}
    assert value(feed, "footprint_grid_forecast_min_grams_per_kilowatt_hour", **em_labels) == 120.0
    assert value(feed, "footprint_grid_forecast_min_start_timestamp_seconds", **em_labels) == T0 + 7200
    wt_labels = {"grid_zone": "CAISO_NORTH", "provider": "watttime", "signal": "marginal"}
    # Fetched at T0 with points at T0, +5 min, +10 min: ten minutes later only the last is not over.
    assert value(feed, curve, **wt_labels, hours_ahead="0") == pytest.approx(600 * 0.45359237)
    assert value(feed, "footprint_grid_forecast_min_grams_per_kilowatt_hour", **wt_labels) == pytest.approx(
        600 * 0.45359237)


def test_api_payload(clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path) -> None:
    em.state.forecast = [(0, 300.0), (3600, 120.0)]
    feed = full_feed(clock, em, wt, tmp_path)
    feed.refresh_due()
    payload = json.loads(json.dumps(feed.api_payload()))  # JSON-able as it is
    acc = payload["accounting"]
    assert (acc["value"], acc["signal"], acc["provider"], acc["zone"]) == (322, "average", "electricitymaps", "DE")
    assert acc["forecast"] == [{"start": T0, "value": 300.0}, {"start": T0 + 3600, "value": 120.0}]
    assert payload["marginal"]["provider"] == "watttime"
    assert payload["accounting_signal"] == "average" and payload["fallback_active"] is False
    assert [c["provider"] for c in payload["chain"]] == ["electricitymaps", "watttime", "static"]
    assert payload["chain"][0]["up"] is True and payload["chain"][0]["last_error"] is None


def test_marginal_accounting_is_explicit(
    clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path
) -> None:
    """Marginal accounting is its own counter: the emissions counters keep the average."""
    feed = full_feed(clock, em, wt, tmp_path, "--grid.accounting-signal=marginal")
    feed.refresh_due()
    r = feed.accounting_intensity()
    assert (r.provider, r.signal, r.basis) == ("electricitymaps", "average", "lifecycle")
    m = feed.marginal()
    assert m is not None and (m.provider, m.signal, m.basis) == ("watttime", "marginal", "direct")
    assert not feed.fallback_active()


def test_background_refresh_never_blocks_a_sample(em: ElectricityMapsFake, tmp_path: Path) -> None:
    token = secret_file(tmp_path, "token", TOKEN)
    feed = GridFeed(config.load([
        "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
        f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.refresh-interval=1s",
        "--grid.timeout=10s",
    ], env={}))
    em.clock = time.time
    feed.start()
    try:
        deadline = time.monotonic() + 10
        while feed.accounting_intensity().provider != "electricitymaps":
            assert time.monotonic() < deadline, "no value from the background refresh"
            time.sleep(0.02)
        em.fault = Fault(delay=30.0)  # the API hangs
        n = em.count()
        while em.count() == n:
            assert time.monotonic() < deadline, "the background refresh did not ask again"
            time.sleep(0.02)
        # A fetch is in flight and will not return for seconds; samples still get the last good value.
        for _ in range(100):
            assert feed.accounting_intensity().value == 322.0
        assert em.count() == n + 1
    finally:
        em._release.set()
        feed.stop()


def test_secrets_never_leak(
    clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = [TOKEN, PASSWORD, "jwt-1-secretish", "jwt-2-secretish"]
    seen: list[str] = []
    with caplog.at_level(logging.DEBUG):
        feed = full_feed(clock, em, wt, tmp_path, "--grid.timeout=300ms")
        feed.refresh_due()
        for fault in (Fault(status=500), Fault(status=401, body=b'{"error":"bad token"}'), Fault(delay=5)):
            em.fault = wt.fault = fault
            clock.advance(3600)
            feed.refresh_due()
            seen += [exposition(feed), json.dumps(feed.api_payload()), *feed.doctor_lines()]
        em.fault = wt.fault = None
        wt.expire_tokens()
        wt.password = "rotated"
        clock.advance(3600)
        feed.refresh_due()
        seen += [exposition(feed), json.dumps(feed.api_payload()), *feed.doctor_lines()]
    seen.append(caplog.text)
    for bad in (["--grid.electricitymaps.token-file=/nonexistent"], [f"--grid.electricitymaps.url={refused_url()}"]):
        try:
            full_feed(clock, em, wt, tmp_path, *bad).refresh_due()
        except config.ConfigError as exc:
            seen.append(str(exc))
    rows = config.describe(config.load(["--grid.watttime.password=" + PASSWORD],
                                       env={"FOOTPRINT_GRID_ELECTRICITYMAPS_TOKEN": TOKEN}))
    seen += [" ".join(r) for r in rows]
    text = "\n".join(seen)
    assert "watttime" in text and "electricitymaps" in text  # we did look at real output
    for secret in secrets:
        assert secret not in text
    assert wt.logins >= 1  # a bearer token did exist


def test_neso_chain_to_world_never_none(clock: Clock) -> None:
    with serving(NesoFake(clock)) as neso:
        neso.fault = Fault(status=500)
        feed = make_feed(clock, "--grid.provider=neso", f"--grid.neso.url={neso.url}")
        feed.refresh_due()
        r = feed.accounting_intensity()
        assert (r.provider, r.zone, r.value) == ("static", "GB", 238.0)
        assert value(feed, "footprint_grid_carbon_intensity_grams_per_kilowatt_hour",
                     grid_zone="GB", provider="static", signal="average") == 238.0
        assert value(feed, "footprint_grid_fallback_active") == 1


def test_each_provider_declares_its_basis_and_a_mixed_chain_warns(
    clock: Clock, em: ElectricityMapsFake, wt: WattTimeFake, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="footprint.grid"):
        feed = full_feed(clock, em, wt, tmp_path)
    assert "grid: the chain mixes emission-factor bases (electricitymaps lifecycle, watttime direct, static " \
        "lifecycle)" in caplog.text
    feed.refresh_due()
    payload = feed.api_payload()
    assert [(c["provider"], c["basis"]) for c in payload["chain"]] == [
        ("electricitymaps", "lifecycle"), ("watttime", "direct"), ("static", "lifecycle")]
    assert payload["accounting"]["basis"] == "lifecycle" and payload["marginal"]["basis"] == "direct"
    assert any("basis direct" in line for line in feed.doctor_lines())


def test_one_basis_in_the_chain_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="footprint.grid"):
        make_feed(Clock(), "--grid.provider=static", "--grid.zone=DE")
    assert "mixes emission-factor bases" not in caplog.text
