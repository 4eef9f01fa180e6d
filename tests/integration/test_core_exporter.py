"""The real exporter process on a machine with no RAPL and no GPU (like CI)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.support.exporter import REPO, start_exporter
from tests.support.promtext import parse, pick, value
from tests.support.tools import tool

NO_HARDWARE = ["--sample.interval=200ms", "--no-meter.nvml"]


def test_serves_within_two_seconds_and_every_series_is_an_estimate(tmp_path: Path) -> None:
    started = time.monotonic()
    with start_exporter([*NO_HARDWARE, f"--path.sysfs={tmp_path}"], ready_timeout=2.0) as exp:
        assert time.monotonic() - started < 2.0 + 0.5  # start_exporter already failed if /metrics was not up in 2 s
        first = parse(exp.scrape())
        energy = pick(first, "footprint_energy_joules_total")
        assert energy and all(dict(lbl)["source"] == "estimate" for lbl in energy)
        assert all(dict(lbl)["source"] == "estimate" for lbl in pick(first, "footprint_power_watts"))
        before = value(first, "footprint_node_energy_joules_total")
        exp.wait_until(lambda text: value(parse(text), "footprint_node_energy_joules_total") > before, timeout=5)
        assert value(first, "footprint_meter_up", meter="estimate") == 1.0


def test_emissions_equal_energy_times_pue_times_intensity(tmp_path: Path) -> None:
    args = [*NO_HARDWARE, f"--path.sysfs={tmp_path}", "--pue=1.3", "--grid.zone=FR"]
    with start_exporter(args) as exp:
        exp.wait_until(lambda text: value(parse(text), "footprint_node_energy_joules_total") > 0, timeout=5)
        s = parse(exp.scrape())
    intensity = value(s, "footprint_grid_accounting_intensity_grams_per_kilowatt_hour")
    assert intensity > 0 and value(s, "footprint_pue_ratio") == 1.3
    for lbl, joules in pick(s, "footprint_energy_joules_total").items():
        labels = dict(lbl)
        grams = value(s, "footprint_emissions_grams_total", component=labels["component"], device=labels["device"])
        assert grams == pytest.approx(joules * 1.3 * intensity / 3.6e6, rel=1e-9)
    node = value(s, "footprint_node_energy_joules_total")
    assert value(s, "footprint_node_emissions_grams_total") == pytest.approx(node * 1.3 * intensity / 3.6e6, rel=1e-9)


def test_promtool_accepts_real_output(tmp_path: Path) -> None:
    with start_exporter([*NO_HARDWARE, f"--path.sysfs={tmp_path}", "--water.wue=1.8"]) as exp:
        exp.wait_until(lambda text: "footprint_water_liters_total" in text, timeout=5)
        text = exp.get("/metrics")
    proc = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_endpoints(tmp_path: Path) -> None:
    with start_exporter([*NO_HARDWARE, f"--path.sysfs={tmp_path}"]) as exp:
        assert b"/metrics" in exp.get("/")
        assert exp.get("/healthz") == b"ok\n"
        om = exp.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.rstrip().endswith(b"# EOF")
        import json

        grid = json.loads(exp.get("/api/v1/grid"))
        assert isinstance(grid, dict) and grid
        import urllib.error
        import urllib.request

        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(exp.url + "/nope", timeout=5)
        assert err.value.code == 404
        req = urllib.request.Request(exp.url + "/metrics", data=b"x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == 405


def test_doctor_explains_estimation(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "footprint-exporter"), "doctor", *NO_HARDWARE, f"--path.sysfs={tmp_path}"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rapl: not used: no RAPL zones" in proc.stdout
    assert "source=estimate (integrated power)" in proc.stdout
    assert "intensity in use: 475" in proc.stdout
    assert "embodied: no figure known, accrues nothing" in proc.stdout
    assert "Attribution\n  off" in proc.stdout
    assert "counter reads: the C reader" in proc.stdout or "counter reads: pure Python" in proc.stdout
    assert "ledger arithmetic: the C twins" in proc.stdout or "ledger arithmetic: pure Python" in proc.stdout


def test_doctor_fails_when_nothing_can_be_measured(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "footprint-exporter"), "doctor", *NO_HARDWARE, "--no-meter.estimate",
         f"--path.sysfs={tmp_path}"], capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 1
    assert "Nothing can be measured" in proc.stdout
