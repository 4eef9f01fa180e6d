"""Restarts of the real exporter on the same state file: kill -9, SIGTERM, damaged checkpoints.

Ground truth comes from the fixtures, not from the exporter: the fake NVML's counter (its clock is
frozen and moved by the test, so the energy is known to the millijoule) and the RAPL sysfs tree's
unwrapped total. Energy drawn while the exporter is down is moved by the test between the runs.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from footprint.checkpoint import decode
from footprint.ledger import Labels

from tests.fakes.nvml import FakeGpu, Scenario, fake_env
from tests.fakes.sysfs import RaplTree
from tests.support.exporter import ExporterProcess, start_exporter
from tests.support.promtext import Series, parse, pick, value

BASE = ["--sample.interval=100ms", "--grid.provider=constant", "--grid.constant.value=400"]
ENERGY = "footprint_energy_joules_total"
GAP = "footprint_checkpoint_restored_gap_joules_total"


def args(tmp_path: Path, *extra: str) -> list[str]:
    return [*BASE, f"--path.sysfs={tmp_path / 'sys'}", f"--state.file={tmp_path / 'state.json'}", *extra]


def joules(s: Series, component: str, device: str) -> float:
    return value(s, ENERGY, component=component, device=device)


def wait_for(exp: ExporterProcess, component: str, device: str, expected: float) -> Series:
    """Scrape until the device's exported energy equals `expected` (to well under a millijoule)."""

    def done(text: str) -> Series | None:
        s = parse(text)
        found = pick(s, ENERGY, component=component, device=device)
        return s if found and abs(next(iter(found.values())) - expected) < 1e-6 else None

    result: Series = exp.wait_until(done, timeout=15)
    return result


def kill_9(exp: ExporterProcess) -> None:
    exp.proc.send_signal(signal.SIGKILL)
    exp.proc.wait(10)


def wait_checkpointed(path: Path, predicate: Callable[[dict[tuple[str, Labels], float]], bool],
                      timeout: float = 10.0) -> None:
    """Poll the state file until predicate(series dict) holds: the write-after-scrape has landed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cp = decode(path.read_bytes())
            series = {(m, labels): v for m, labels, v, _ in cp.series}
            if predicate(series):
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the checkpoint never caught up with the scrape"
        time.sleep(0.05)


def test_kill_9_gpu_counter_continues_exactly_against_fake_nvml(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 250.0), (12.0, 612.5)], energy_offset_mj=4_321_987_654)], time=0.0)
    sc.write(path)

    def truth(t: float) -> float:  # what the exporter must show: energy since its first sample at t=0
        return (sc.energy_mj(0, t) - sc.energy_mj(0, 0.0)) / 1000

    run = args(tmp_path, "--no-meter.rapl", "--web.enable-created-series")  # _created is off by default
    with start_exporter(run, env=fake_env(path)) as exp:
        wait_for(exp, "gpu", "0", 0.0)
        sc.time = 10.0
        sc.write(path)
        before = wait_for(exp, "gpu", "0", truth(10.0))
        created = value(before, "footprint_energy_joules_created", component="gpu", device="0")
        kill_9(exp)
        # Down from t=10 to t=30, with a power step at 12 s the exporter never saw.
        sc.time = 30.0
        sc.write(path)
    with start_exporter(run, env=fake_env(path)) as exp:
        after = wait_for(exp, "gpu", "0", truth(30.0))
        assert truth(30.0) == pytest.approx(10 * 250.0 + 2 * 250.0 + 18 * 612.5)
        assert value(after, "footprint_energy_joules_created", component="gpu", device="0") == created
        # The gap is recovered (at least the 20 s down; more if the last checkpoint predates t=10).
        assert truth(30.0) - truth(10.0) <= value(after, GAP, component="gpu", device="0") <= truth(30.0)
        sc.time = 31.0
        sc.write(path)
        wait_for(exp, "gpu", "0", truth(31.0))  # and it goes on from there: nothing twice
        assert "recovered energy drawn while the exporter was down" in exp.log()


def test_kill_9_across_a_driver_reload_counts_only_what_the_counter_saw(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 300.0)], energy_offset_mj=10_000_000)], time=0.0)
    sc.write(path)
    run = args(tmp_path, "--no-meter.rapl")
    with start_exporter(run, env=fake_env(path)) as exp:
        sc.time = 10.0
        sc.write(path)
        wait_for(exp, "gpu", "0", 3000.0)
        kill_9(exp)
    # While down: a new driver is loaded at t=15 (new version: the counter's epoch changes).
    sc.reloads, sc.driver_version, sc.time = [15.0], "550.90.07", 20.0
    sc.write(path)
    with start_exporter(run, env=fake_env(path)) as exp:
        # 10..15 s happened before the reload and no counter kept it: lost, never guessed.
        s = wait_for(exp, "gpu", "0", 3000.0 + 5 * 300.0)
        assert value(s, GAP, component="gpu", device="0") >= 5 * 300.0
        assert "the counter restarted: energy since the restart only" in exp.log()


def test_kill_9_rapl_and_nothing_goes_backwards_for_prometheus(tmp_path: Path) -> None:
    """RAPL recovers the gap exactly, and every counter resumes at or above the last value a scraper
    saw (a decrease would read as a counter reset, and rate() would count the whole total again)."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 5_000_000)
        tree.advance("intel-rapl:0:1", 1_250_000)
        wait_for(exp, "dram", "dram-0", 1.25)
        last = wait_for(exp, "cpu", "package-0", 5.0)
        wait_checkpointed(tmp_path / "state.json",
                          lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 5.0)
        kill_9(exp)
    tree.advance("intel-rapl:0", 7_000_000)  # drawn while down
    with start_exporter(run) as exp:
        s = wait_for(exp, "cpu", "package-0", 12.0)
        assert tree.true_uj["intel-rapl:0"] / 1e6 == 12.0
        assert joules(s, "dram", "dram-0") == 1.25
        assert value(s, GAP, component="cpu", device="package-0") == 7.0
        counters = {k: v for k, v in last.items() if k[0].endswith("_total")}
        assert counters
        for key, seen in counters.items():
            assert s[key] >= seen, key
        assert "charged the gap's emissions at the intensity in use now" in exp.log()


def test_kill_9_estimated_energy_is_not_invented_for_the_gap(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    # A constant 1 kW estimate, so invented energy for a multi-second gap could not hide.
    run = args(tmp_path, "--no-meter.nvml", "--estimate.cpu-idle-watts=1000", "--estimate.cpu-max-watts=1000")
    with start_exporter(run) as exp:
        seen = exp.wait_until(lambda text: s if (s := parse(text)) and joules(s, "cpu", "0") > 500 else None)
        scraped = joules(seen, "cpu", "0")
        wait_checkpointed(tmp_path / "state.json",
                          lambda c: c.get((ENERGY, ("cpu", "0", "estimate")), 0.0) >= scraped)
        kill_9(exp)
        saved = dict(((m, labels), v) for m, labels, v, _ in decode((tmp_path / "state.json").read_bytes()).series)
    time.sleep(3.0)  # the exporter is down for 3 s: 3 kJ an inventing exporter would add
    started = time.monotonic()
    with start_exporter(run) as exp:
        s = parse(exp.scrape())
        bound = (time.monotonic() - started) * 1000.0  # at most what 1 kW drew since this process started
        resumed = joules(s, "cpu", "0")
        assert scraped <= saved[(ENERGY, ("cpu", "0", "estimate"))] <= resumed
        assert resumed - saved[(ENERGY, ("cpu", "0", "estimate"))] <= bound
        assert not pick(s, GAP, component="cpu", device="0")
        assert "estimated energy is process-local" in exp.log()


def test_sigterm_writes_a_final_checkpoint(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml", "--state.checkpoint-interval=1h")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 2_500_000)
        wait_for(exp, "cpu", "package-0", 2.5)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 2.5)
        written = decode(state.read_bytes()).written_at
        assert exp.stop(signal.SIGTERM) == 0
        log = exp.log()
    final = decode(state.read_bytes())
    assert final.written_at > written
    assert {(m, labels): v for m, labels, v, _ in final.series}[(ENERGY, ("cpu", "package-0", "rapl"))] == 2.5
    assert "final checkpoint written" in log
    tree.advance("intel-rapl:0", 1_000_000)
    with start_exporter(run) as exp:
        wait_for(exp, "cpu", "package-0", 3.5)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_checkpoint_gives_one_warning_and_a_clean_start(tmp_path: Path, damage: str) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 4_000_000)
        wait_for(exp, "cpu", "package-0", 4.0)
        assert exp.stop(signal.SIGTERM) == 0
    good = state.read_bytes()
    bad = b"\x89PNG\r\n\x1a\n not a checkpoint" if damage == "garbage" else good[: len(good) * 2 // 3]
    state.write_bytes(bad)
    with start_exporter(run) as exp:
        wait_for(exp, "cpu", "package-0", 0.0)  # a fresh start: counting begins again at zero
        tree.advance("intel-rapl:0", 1_000_000)
        wait_for(exp, "cpu", "package-0", 1.0)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 1.0)
        warnings = [line for line in exp.log().splitlines() if "level=warn" in line]
    assert len(warnings) == 1 and "ignoring the checkpoint" in warnings[0] and "reason=corrupt" in warnings[0]
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bad
