"""RAPL on a real powercap layout: packages + dram, never core; wraparound; exact joules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import pytest
from footprint import config
from footprint.accountant import ENERGY, NODE_ENERGY, Accountant
from footprint.ledger import Ledger
from footprint.meters.base import MeterUnavailable
from footprint.meters.rapl import RaplMeter
from footprint.sampler import Sampler

from tests.fakes.sysfs import RaplTree
from tests.unit.fixed_grid import FixedGrid


def _sampler(tmp_path: Path, tree: RaplTree) -> tuple[Sampler, Ledger]:
    settings = config.load([f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path / 'proc'}"], env={})
    ledger = Ledger()
    clock = iter(range(1000))
    sampler = Sampler([RaplMeter(settings)], ledger, Accountant(settings), FixedGrid(100.0), 1.0,
                      clock=lambda: float(next(clock)), wall=lambda: 1.7e9)
    return sampler, ledger


def test_packages_and_dram_counted_core_never(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True, psys=True)
    sampler, ledger = _sampler(tmp_path, tree)
    sampler.sample()  # baseline
    steps = [(123_456, 7_000, 55_555, 1_000, 999_999), (1, 2, 3, 4, 5), (10_000_001, 0, 20_000_002, 17, 3)]
    for p0, d0, p1, d1, psys in steps:
        tree.advance("intel-rapl:0", p0)
        tree.advance("intel-rapl:0:1", d0)
        tree.advance("intel-rapl:1", p1)
        tree.advance("intel-rapl:1:1", d1)
        tree.advance("intel-rapl:0:0", 5_000_000)  # core moves too: must never be counted
        tree.advance("intel-rapl:2", psys)
        sampler.sample()
    got = ledger.series(ENERGY)
    assert got[("cpu", "package-0", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:0"] / 1e6, rel=1e-12)
    assert got[("cpu", "package-1", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:1"] / 1e6, rel=1e-12)
    assert got[("dram", "dram-0", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:0:1"] / 1e6, rel=1e-12)
    assert got[("dram", "dram-1", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:1:1"] / 1e6, rel=1e-12)
    assert got[("psys", "psys", "rapl")] == pytest.approx(tree.true_uj["intel-rapl:2"] / 1e6, rel=1e-12)
    assert not any(device == "core" or "core" in device for _, device, _ in got)
    zones = ("intel-rapl:0", "intel-rapl:1", "intel-rapl:0:1", "intel-rapl:1:1")
    packages_and_dram = sum(tree.true_uj[z] for z in zones)
    assert ledger.get(NODE_ENERGY) == pytest.approx(packages_and_dram / 1e6, rel=1e-12)


def test_wraparound_mid_run_is_absorbed(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, max_range_uj=10_000_000)
    tree.set_counter("intel-rapl:0", 9_000_000)
    sampler, ledger = _sampler(tmp_path, tree)
    sampler.sample()
    totals = []
    for step in (600_000, 700_000, 4_000_000, 5_000_000, 9_999_999):  # wraps twice
        tree.advance("intel-rapl:0", step)
        sampler.sample()
        totals.append(ledger.get(ENERGY, ("cpu", "package-0", "rapl")))
    assert totals == sorted(totals), "a counter went backwards"
    assert totals[-1] == pytest.approx(tree.true_uj["intel-rapl:0"] / 1e6, rel=1e-12)


def test_unreadable_zone_marks_device_down_and_keeps_others(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=False)
    sampler, ledger = _sampler(tmp_path, tree)
    sampler.sample()
    (tree.path("intel-rapl:1") / "energy_uj").unlink()
    tree.advance("intel-rapl:0", 1_000_000)
    sampler.sample()
    assert sampler.state.meter_up["rapl"] is True
    assert sampler.state.device_down == {("cpu", "package-1"): "FileNotFoundError"}
    assert ledger.get(ENERGY, ("cpu", "package-0", "rapl")) == pytest.approx(1.0)


def test_no_powercap_is_no_data_not_an_error(tmp_path: Path) -> None:
    settings = config.load([f"--path.sysfs={tmp_path}"], env={})
    with pytest.raises(MeterUnavailable, match=r"no RAPL zones"):
        RaplMeter(settings)


def test_permission_denied_says_how_to_grant_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    energy = tree.path("intel-rapl:0") / "energy_uj"
    real_open = open

    def deny(path: str | os.PathLike[str], *args: Any, **kwargs: Any) -> IO[Any]:
        if str(path) == str(energy):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    # Tests run as root, where chmod 000 does not stop a read: deny at the open() the meter uses.
    monkeypatch.setattr("builtins.open", deny)
    settings = config.load([f"--path.sysfs={tree.root}"], env={})
    with pytest.raises(MeterUnavailable, match=r"root only.*chmod a\+r"):
        RaplMeter(settings)
