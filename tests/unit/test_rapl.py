"""RAPL on a real powercap layout: packages + dram, never core; wraparound; exact joules; zones checked
one by one and found again; ceilings; the estimate filling in exactly what RAPL does not read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psutil
import pytest
from footprint import config
from footprint.accounting.accountant import ENERGY, NODE_ENERGY, Accountant, AttributionWindow
from footprint.accounting.ledger import Ledger
from footprint.config import ConfigError
from footprint.exposition.catalog import REJECTED_METRIC
from footprint.meters.base import MeterError, MeterUnavailable, Reading
from footprint.meters.estimate import EstimateMeter
from footprint.meters.rapl import RAPL_MARGIN, RaplMeter
from footprint.meters.registry import detect, estimate_meter, rapl_meter
from footprint.sampler import Sampler

from tests.fakes.sysfs import RaplTree
from tests.support.fixed_grid import FixedGrid

pytestmark = pytest.mark.usefixtures("read_path")  # the C reader and the pure-Python reads alike


class Rig:
    """A sampler over the tree with a clock the test moves (one second per `step()` by default)."""

    def __init__(self, tmp_path: Path, tree: RaplTree, *args: str) -> None:
        self.t = 0.0
        self.settings = config.load([f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path / 'proc'}",
                                     "--no-meter.nvml", "--no-meter.amdsmi", *args], env={})
        self.ledger = Ledger()
        self.meter = rapl_meter(self.settings, clock=lambda: self.t)
        self.sampler = Sampler([self.meter], self.ledger, Accountant(self.settings), FixedGrid(100.0), 1.0,
                               clock=lambda: self.t, wall=lambda: 1.7e9)

    def step(self, seconds: float = 1.0) -> None:
        self.t += seconds
        self.sampler.sample()

    def energy(self, component: str, device: str) -> float:
        return self.ledger.get(ENERGY, (component, device, "rapl"))


def test_packages_and_dram_counted_core_never(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True, psys=True)
    rig = Rig(tmp_path, tree)
    rig.step()  # baseline
    steps = [(123_456, 7_000, 55_555, 1_000, 999_999), (1, 2, 3, 4, 5), (10_000_001, 0, 20_000_002, 17, 3)]
    for p0, d0, p1, d1, psys in steps:
        tree.advance("intel-rapl:0", p0)
        tree.advance("intel-rapl:0:1", d0)
        tree.advance("intel-rapl:1", p1)
        tree.advance("intel-rapl:1:1", d1)
        tree.advance("intel-rapl:0:0", 5_000_000)  # core moves too: must never be counted
        tree.advance("intel-rapl:2", psys)
        rig.step()
    got = rig.ledger.series(ENERGY)
    assert got[("cpu", "package-0", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:0"] / 1e6, rel=1e-12)
    assert got[("cpu", "package-1", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:1"] / 1e6, rel=1e-12)
    assert got[("dram", "dram-0", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:0:1"] / 1e6, rel=1e-12)
    assert got[("dram", "dram-1", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:1:1"] / 1e6, rel=1e-12)
    assert got[("psys", "psys", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:2"] / 1e6, rel=1e-12)
    assert not any(device == "core" or "core" in device for _, device, _ in got)
    zones = ("intel-rapl:0", "intel-rapl:1", "intel-rapl:0:1", "intel-rapl:1:1")
    packages_and_dram = sum(tree.true_uj[z] for z in zones)
    assert rig.ledger.get(NODE_ENERGY) == pytest.approx(packages_and_dram / 1e6, rel=1e-12)


def test_wraparound_mid_run_is_absorbed(tmp_path: Path) -> None:
    # A 10 J range at 1.5 W max power: a 2.25 W ceiling, 2.4 J a second at most, so one wrap at most.
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, max_range_uj=10_000_000, max_power_uw=1_500_000)
    tree.set_counter("intel-rapl:0", 9_000_000)
    rig = Rig(tmp_path, tree)
    rig.step()
    totals = []
    for step in (1_500_000, 2_200_000, 2_000_000, 2_100_000, 2_000_000, 1_999_999, 2_200_000):  # wraps twice
        tree.advance("intel-rapl:0", step)
        rig.step()
        totals.append(rig.energy("cpu", "package-0"))
    assert totals == sorted(totals), "a counter went backwards"
    assert totals[-1] == pytest.approx(tree.true_uj["intel-rapl:0"] / 1e6, rel=1e-12)
    assert not rig.ledger.series(REJECTED_METRIC)


def test_ceiling_is_the_zones_max_power_with_a_margin_or_the_override(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True, max_power_uw=205_000_000)
    (tree.path("intel-rapl:0:1") / "constraint_0_max_power_uw").write_text("0\n")  # published as 0: unknown
    (tree.path("intel-rapl:0") / "constraint_1_max_power_uw").write_text("250000000\n")  # short term, higher
    rig = Rig(tmp_path, tree)
    ceilings = {r.device: r.max_watts for r in rig.meter.read()}
    assert ceilings == {"package-0": 250.0 * RAPL_MARGIN, "dram-0": 200.0}  # dram: the component default
    rig = Rig(tmp_path, tree, "--counter.max-watts=cpu=300,dram=40")
    assert {r.device: r.max_watts for r in rig.meter.read()} == {"package-0": 300.0, "dram-0": 40.0}
    assert "ceiling 300 W" in rig.meter.doctor_lines()[0]


def test_sampling_too_slowly_for_a_range_is_refused_at_start(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, max_range_uj=65_712_999_613, max_power_uw=20_000_000)
    settings = [f"--path.sysfs={tree.root}", "--sample.interval=45m"]
    with pytest.raises(ConfigError, match=r"^sample\.interval: too slow for RAPL zone package-0: .*wraps every "
                                          r"2\.19e\+03s at up to 30 W"):
        rapl_meter(config.load(settings, env={}))
    rapl_meter(config.load([*settings[:1], "--sample.interval=30s"], env={}))  # 30 s is fine


def test_unreadable_zone_marks_device_down_and_keeps_others(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=False)
    rig = Rig(tmp_path, tree)
    rig.step()
    (tree.path("intel-rapl:1") / "energy_uj").unlink()
    tree.advance("intel-rapl:0", 1_000_000)
    rig.step()
    assert rig.sampler.state.meter_up["rapl"] is True
    assert rig.sampler.state.device_down == {("cpu", "package-1"): "FileNotFoundError"}
    assert rig.energy("cpu", "package-0") == pytest.approx(1.0)


def test_no_powercap_is_no_data_not_an_error(tmp_path: Path) -> None:
    settings = config.load([f"--path.sysfs={tmp_path}"], env={})
    with pytest.raises(MeterUnavailable, match=r"no RAPL zones"):
        rapl_meter(settings)


def test_a_denied_zone_is_left_to_the_estimate_and_doctor_says_how_to_grant_access(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the package files opened up: the dram zone is denied (PermissionError, as for a non-root
    reader on a PLATYPUS-fixed kernel), so RAPL reads the package and the estimate reads dram-0."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    denied = str(tree.path("intel-rapl:0:1") / "energy_uj")
    real_open = os.open

    def deny(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path) == denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    # Tests run as root, where chmod 000 does not stop a read: deny at the os.open() the meter uses.
    monkeypatch.setattr("footprint.meters.rapl.os.open", deny)
    settings = config.load([f"--path.sysfs={tree.root}", "--no-meter.nvml", "--no-meter.amdsmi"], env={})
    found = detect(settings)
    rapl, estimate = found.meters
    assert isinstance(rapl, RaplMeter) and isinstance(estimate, EstimateMeter)
    assert [r.device for r in rapl.read()] == ["package-0"]
    assert [(r.component, r.device, r.source) for r in estimate.read()] == [("dram", "dram-0", "estimate")]
    lines = rapl.doctor_lines()
    assert lines[1].startswith("rapl: dram-0: NOT READ (PermissionError): estimated instead")
    assert "root only" in lines[1] and "chmod a+r" in lines[1]
    assert "estimate: cpu package-0: measured by RAPL, not estimated" in estimate.doctor_lines()


def test_zones_found_later_or_lost_switch_between_rapl_and_the_estimate(tmp_path: Path) -> None:
    """package-1 appears after start (a late driver): measured from its first read, and the estimate,
    which filled in for it under the same device label, stops; a zone that stops being readable goes
    back to the estimate. Every switch starts a new baseline: nothing is counted twice."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, cpu_packages=2)
    t = [0.0]
    settings = config.load([f"--path.sysfs={tree.root}", "--sample.interval=1s"], env={})
    rapl = rapl_meter(settings, clock=lambda: t[0])
    estimate = estimate_meter(settings, {"cpu"}, clock=lambda: t[0], covered=rapl.covered)
    ledger = Ledger()
    sampler = Sampler([rapl, estimate], ledger, Accountant(settings), FixedGrid(100.0), 1.0,
                      clock=lambda: t[0], wall=lambda: 1.7e9)

    def sources() -> dict[str, str]:
        return {r.device: r.source for r in sampler.state.readings}

    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "estimate"}
    tree.add_package(1, dram=False)
    t[0] = 5.0
    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "estimate"}  # not looked for again yet
    t[0] = rapl.rediscover_seconds
    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "rapl"}  # the baseline read
    estimated = ledger.get(ENERGY, ("cpu", "package-1", "estimate"))
    assert estimated > 0
    tree.advance("intel-rapl:1", 55_000_000)
    tree.advance("intel-rapl:0", 10_000_000)
    t[0] += 1.0
    sampler.sample()
    assert ledger.get(ENERGY, ("cpu", "package-1", "rapl")) == 55.0
    assert ledger.get(ENERGY, ("cpu", "package-1", "estimate")) == estimated
    assert ledger.get(NODE_ENERGY) == pytest.approx(sum(ledger.series(ENERGY).values()), rel=1e-12)

    tree.make_unreadable("intel-rapl:1")
    t[0] += rapl.rediscover_seconds
    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "estimate"}
    assert rapl.unreadable == {"package-1": "IsADirectoryError"}

    tree.make_readable("intel-rapl:1", 1_000_000)  # access granted later (an init container, a chmod)
    t[0] += 1.0
    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "estimate"}  # not looked at again yet
    t[0] += rapl.rediscover_seconds
    sampler.sample()
    assert sources() == {"package-0": "rapl", "package-1": "rapl"}
    assert rapl.unreadable == {}


def test_a_vanished_proc_stat_is_a_meter_error_not_a_traceback(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    for name in ("stat", "meminfo", "cpuinfo"):
        (proc / name).write_bytes(Path("/proc", name).read_bytes())
    settings = config.load([f"--path.procfs={proc}", f"--path.sysfs={tmp_path}"], env={})
    meter = estimate_meter(settings, {"cpu", "dram"})
    assert [r.device for r in meter.read()] == ["package-0", "dram-0"]
    (proc / "stat").unlink()
    try:
        with pytest.raises(MeterError, match=r"cannot read CPU utilisation from .*/proc/stat"):
            meter.read()
    finally:
        psutil.PROCFS_PATH = "/proc"


def test_rapl_readings_carry_the_boot_epoch(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    boot = tmp_path / "proc" / "sys" / "kernel" / "random"
    boot.mkdir(parents=True)
    (boot / "boot_id").write_text("5c0ffee0-0000-4000-8000-000000000001\n")
    (r,) = Rig(tmp_path, tree).meter.read()
    assert isinstance(r, Reading) and r.counter_epoch == "5c0ffee0-0000-4000-8000-000000000001"


def test_a_sample_the_ledger_refuses_leaves_totals_and_the_window_as_they_were(tmp_path: Path) -> None:
    """A NaN reaching the ledger (here an intensity, which the grid layer never lets through) drops the
    whole sample: no total moves, device and node stay equal, pending attribution is untouched, and the
    counter baselines stay where they were, so the next sample charges the energy of both."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    rig = Rig(tmp_path, tree)
    grid = FixedGrid(100.0)
    rig.sampler.grid = grid
    rig.sampler.window = window = AttributionWindow()
    rig.step()
    tree.advance("intel-rapl:0", 3_000_000)
    rig.step()
    before = {m: dict(s) for m, s in rig.ledger.totals.items()}
    pending = {k: (p.joules, p.grams) for k, p in window.devices.items()}
    grid.value = float("nan")
    tree.advance("intel-rapl:0", 5_000_000)
    rig.step()  # no exception
    assert rig.ledger.totals == before
    assert {k: (p.joules, p.grams) for k, p in window.devices.items()} == pending
    grid.value = 100.0
    tree.advance("intel-rapl:0", 1_000_000)
    rig.step()
    assert rig.energy("cpu", "package-0") == pytest.approx(9.0, rel=1e-12)  # the dropped 5 J come with it
    assert rig.ledger.get(NODE_ENERGY) == pytest.approx(9.0, rel=1e-12)


def _open_counters(tree: RaplTree) -> set[str]:
    """The energy_uj files this process holds open (from /proc/self/fd)."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(tree.root)) and target.endswith("/energy_uj"):
            found.add(target)
    return found


def test_counters_stay_open_and_read_in_place_writes_and_replacements(tmp_path: Path) -> None:
    """Each zone is opened once and read with pread (sysfs regenerates the value on every read from
    offset 0); a value written in place is read, and so is a file replaced under its name (nlink 0)."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    rig = Rig(tmp_path, tree)
    rig.step()
    held = _open_counters(tree)
    assert len(held) == 2  # package and dram, not core
    energy = tree.path("intel-rapl:0") / "energy_uj"
    with open(energy, "r+b", buffering=0) as fh:  # in place, as the kernel's attribute changes
        fh.write(f"{tree.counter('intel-rapl:0') + 2_000_000:<20}\n".encode())
    rig.step()
    assert rig.energy("cpu", "package-0") == pytest.approx(2.0)
    tree.advance("intel-rapl:0", 3_000_000)  # an atomic replace: the old inode has no links left
    rig.step()
    assert rig.energy("cpu", "package-0") == pytest.approx(5.0)
    assert len(_open_counters(tree)) == 2  # the replaced file's descriptor was closed, the new one kept
    rig.meter.close()
    assert _open_counters(tree) == set()


def test_node_power_is_the_devices_in_the_node_total_psys_left_out(tmp_path: Path) -> None:
    """The sampler sums the node's power once (Sample.node_watts, what /metrics and the live page show):
    packages and dram, never psys, which contains them."""
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True, psys=True)
    rig = Rig(tmp_path, tree)
    assert rig.sampler.state.node_watts is None
    rig.step()
    assert rig.sampler.state.node_watts is None  # the first sample is a baseline: no interval, no power
    for zone, uj in (("intel-rapl:0", 40_000_000), ("intel-rapl:0:1", 5_000_000), ("intel-rapl:1", 30_000_000),
                     ("intel-rapl:1:1", 4_000_000), ("intel-rapl:2", 500_000_000)):
        tree.advance(zone, uj)
    rig.step(2.0)
    power = rig.sampler.state.power
    assert power[("psys", "psys", "rapl")] == pytest.approx(250.0)
    assert rig.sampler.state.node_watts == pytest.approx((40 + 5 + 30 + 4) / 2.0)


def test_a_steady_sample_reads_what_the_full_path_reads(tmp_path: Path, read_path: str) -> None:
    """While every zone was read through its kept descriptor, a sample is one C call and a tuple a zone;
    a meter made to take the zone-by-zone path every time reads the same, through values written in place,
    a value that did not move, a file replaced under its name, a wrap, and a zone that stops being readable
    and comes back (found again at a discovery)."""
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True)
    t = [0.0]
    settings = config.load([f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path / 'proc'}"], env={})
    steady, full = (rapl_meter(settings, clock=lambda: t[0]) for _ in range(2))
    took_steady = 0

    def in_place(zone: str, uj: int) -> None:
        with open(tree.path(zone) / "energy_uj", "r+b", buffering=0) as fh:
            fh.write(f"{uj:<20}\n".encode())

    moving = {"intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1", "intel-rapl:1:1"}  # packages and dram
    assert all((tree.path(zone) / "energy_uj").is_file() for zone in moving)
    events = {3: lambda: moving.discard("intel-rapl:0"), 5: lambda: moving.add("intel-rapl:0"),
              8: lambda: tree.advance("intel-rapl:1", 7_000_000), 11: lambda: tree.set_counter("intel-rapl:0", 10),
              14: lambda: tree.make_unreadable("intel-rapl:1:1"), 16: lambda: tree.make_readable("intel-rapl:1:1", 99),
              20: lambda: tree.advance("intel-rapl:0:1", 1_000)}
    for k in range(40):
        for zone in moving:  # counters move in place, as the kernel's attributes do
            if (tree.path(zone) / "energy_uj").is_file():
                in_place(zone, tree.counter(zone) + 1000 * (k + 1))
        events.get(k, lambda: None)()
        t[0] += 1.0
        before = None if steady.steady is None else list(steady.steady.last or ())
        got = steady.read()
        full.steady = None
        assert got == full.read(), k
        assert steady.down_devices() == full.down_devices(), k
        took_steady += before is not None and steady.steady is not None and steady.steady.last != before
    steady.close()
    full.close()
    assert took_steady >= (20 if read_path == "c_reader" else 0)
    if read_path != "c_reader":
        assert steady.steady is None
