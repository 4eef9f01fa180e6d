"""The grid feed inside the real exporter process: emissions follow the intensity of each sample, a node
reads another exporter through `peer`, and API keys never show anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest

from tests.fakes.grid_servers import ElectricityMapsFake, WattTimeFake, serving
from tests.fakes.sysfs import RaplTree
from tests.support.exporter import REPO, start_exporter
from tests.support.promtext import parse, pick, value

TOKEN = "em-token-Integration-7f3a9c"
PASSWORD = "wt-password-Integration-51d2"
ACC = "footprint_grid_accounting_intensity_grams_per_kilowatt_hour"
INTENSITY = "footprint_grid_carbon_intensity_grams_per_kilowatt_hour"
PUE = 1.5
PACKAGE = "intel-rapl:0"


@pytest.fixture
def em() -> Iterator[ElectricityMapsFake]:
    with serving(ElectricityMapsFake(TOKEN)) as server:
        yield server


def em_args(em: ElectricityMapsFake, tmp_path: Path) -> list[str]:
    token = tmp_path / "em-token"
    token.write_text(TOKEN + "\n")
    return ["--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
            f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.refresh-interval=1s"]


def test_emissions_use_the_intensity_of_each_sample(em: ElectricityMapsFake, tmp_path: Path) -> None:
    """Energy moves only while the intensity holds still, so each joule's intensity is known exactly:
    the counter must equal sum(delta joules x PUE x intensity of that sample), not total x latest."""
    tree = RaplTree(tmp_path / "sysfs", packages=1, dram=False)
    em.state.intensity = 100
    args = ["--sample.interval=100ms", "--no-meter.nvml", "--no-meter.estimate", f"--path.sysfs={tmp_path}/sysfs",
            f"--pue={PUE}", *em_args(em, tmp_path)]
    with start_exporter(args) as exp:
        def settled(text: str, intensity: float) -> bool:
            found = pick(parse(text), ACC, grid_zone="DE", provider="electricitymaps", signal="average")
            return list(found.values()) == [intensity]

        def energy_reached(text: str, joules: float) -> bool:
            return value(parse(text), "footprint_node_energy_joules_total") >= joules

        exp.wait_until(lambda text: settled(text, 100))
        s0 = parse(exp.scrape())
        energy0 = value(s0, "footprint_node_energy_joules_total")
        grams0 = value(s0, "footprint_node_emissions_grams_total")
        expected_grams, moved = 0.0, 0.0
        for intensity, joules in ((100, 2.0), (500, 3.0), (100, 1.25), (500, 4.5)):
            em.state.intensity = intensity
            exp.wait_until(partial(settled, intensity=intensity))
            tree.advance(PACKAGE, int(joules * 1e6))
            moved += joules
            expected_grams += joules * PUE * intensity / 3.6e6
            exp.wait_until(partial(energy_reached, joules=energy0 + moved - 1e-9))
        s = parse(exp.scrape())
    assert value(s, "footprint_node_energy_joules_total") - energy0 == pytest.approx(moved, abs=1e-9)
    grams = value(s, "footprint_node_emissions_grams_total") - grams0
    assert grams == pytest.approx(expected_grams, rel=1e-9)
    # What "latest intensity x total energy" would give is measurably different.
    assert abs(grams - moved * PUE * 500 / 3.6e6) > 1e-7
    device = pick(s, "footprint_emissions_grams_total", component="cpu")
    assert sum(device.values()) == pytest.approx(value(s, "footprint_node_emissions_grams_total"), rel=1e-9)


def test_peer_reads_another_exporter_and_falls_back_when_it_goes(em: ElectricityMapsFake, tmp_path: Path) -> None:
    base = ["--sample.interval=200ms", "--no-meter.nvml", f"--path.sysfs={tmp_path}"]
    with ExitStack() as stack:
        grid = stack.enter_context(start_exporter([*base, *em_args(em, tmp_path)]))
        node = stack.enter_context(start_exporter([
            *base, "--grid.provider=peer", f"--grid.peer.url={grid.url}", "--grid.fallback=static",
            "--grid.zone=DE", "--grid.refresh-interval=1s", "--grid.max-age=5s", "--grid.timeout=500ms",
        ]))
        node.wait_until(lambda text: pick(parse(text), ACC, provider="peer"))
        s = parse(node.scrape())
        assert value(s, ACC, provider="peer") == 322
        assert value(s, INTENSITY, grid_zone="DE", provider="peer", signal="average") == 322
        assert value(s, "footprint_grid_fallback_active") == 0
        payload = json.loads(node.get("/api/v1/grid"))
        assert payload["accounting"]["provider"] == "peer"
        assert em.count() > 0 and all(r.headers.get("auth-token") == TOKEN for r in em.requests)
        em.state.intensity = 222  # upstream changes: the node follows through its peer
        node.wait_until(lambda text: list(pick(parse(text), ACC, provider="peer").values()) == [222])
        calls = em.count()
        grid.stop()  # the grid pod goes away: the node keeps sampling, then falls back after max age
        node.wait_until(lambda text: pick(parse(text), ACC, provider="static"), timeout=15)
        s = parse(node.scrape())
        assert value(s, ACC, provider="static") == 381
        assert value(s, "footprint_grid_fallback_active") == 1
        assert value(s, "footprint_grid_fetch_errors_total", provider="peer", reason="connection") >= 1
        assert value(s, "footprint_grid_provider_up", provider="peer") == 0
        assert em.count() <= calls + 2  # only the grid exporter ever called the outside API
        assert "reason=connection" in node.log()


def test_api_keys_never_show(em: ElectricityMapsFake, tmp_path: Path) -> None:
    with serving(WattTimeFake("alice", PASSWORD)) as wt:
        password = tmp_path / "wt-password"
        password.write_text(PASSWORD + "\n")
        args = [
            "--sample.interval=200ms", "--no-meter.nvml", f"--path.sysfs={tmp_path}", "--log.level=debug",
            *em_args(em, tmp_path), "--grid.fallback=watttime,static", f"--grid.watttime.url={wt.url}",
            "--grid.watttime.username=alice", f"--grid.watttime.password-file={password}",
            "--grid.watttime.region=CAISO_NORTH",
        ]
        seen = []
        with start_exporter(args) as exp:
            exp.wait_until(lambda text: pick(parse(text), INTENSITY, provider="watttime"))
            seen += [exp.scrape(), exp.get("/api/v1/grid").decode()]
            em.token = "rotated"  # the key stops working: errors are logged, the key is not
            wt.expire_tokens()
            exp.wait_until(lambda text: sum(pick(parse(text), "footprint_grid_fetch_errors_total",
                                                 provider="electricitymaps", reason="auth").values()) >= 1)
            seen += [exp.scrape(), exp.get("/api/v1/grid").decode()]
            log = exp.log()
        assert "reason=auth" in log and wt.logins == 2
        seen.append(log)
        env = {"FOOTPRINT_GRID_ELECTRICITYMAPS_TOKEN": TOKEN, "PYTHONPATH": str(REPO / "exporter")}
        doctor = subprocess.run(
            [sys.executable, "-m", "footprint", "doctor", *args], capture_output=True, text=True, timeout=60,
            env=env,
        )
        seen += [doctor.stdout, doctor.stderr]
        assert "electricitymaps" in doctor.stdout
    text = "\n".join(seen)
    for secret in (TOKEN, PASSWORD, "jwt-1-secretish", "jwt-2-secretish"):
        assert secret not in text
