"""Counter tracking and the accountant: joules -> grams per interval, embodied, water, cost, attribution."""

from __future__ import annotations

from typing import Any

import pytest
from footprint import config
from footprint.accounting.accountant import (
    COST,
    EMBODIED,
    EMISSIONS,
    ENERGY,
    FACILITY_OVERHEAD,
    NODE_EMISSIONS,
    NODE_ENERGY,
    UNATTRIBUTED_ENERGY,
    WATER,
    WORKLOAD_EMISSIONS,
    WORKLOAD_ENERGY,
    Accountant,
)
from footprint.accounting.embodied import EmbodiedModel, load_table
from footprint.accounting.ledger import CounterTracker, Ledger
from footprint.attribution.base import Consumer, WorkloadShare
from footprint.config import ConfigError
from footprint.grid.base import IntensityReading
from footprint.meters.base import Reading

pytestmark = pytest.mark.usefixtures("ledger_path")  # the C twins and the Python ledger alike

YEAR = 365.25 * 86400


def reading(joules: float, **kw: Any) -> Reading:
    base: dict[str, Any] = {"component": "gpu", "device": "0", "source": "nvml", "energy_joules": joules}
    base.update(kw)
    return Reading(**base)


def intensity(value: float) -> IntensityReading:
    return IntensityReading(value, "average", "test", "XX")


class TestCounterTracker:
    """Deltas at one reading per second (time is the second argument), well under the 1500 W GPU default."""

    def test_baseline_then_deltas(self) -> None:
        t = CounterTracker()
        assert t.observe(reading(100.0), 0.0).joules == 0.0
        assert t.observe(reading(150.5), 1.0).joules == 50.5

    def test_wrap_uses_range(self) -> None:
        t = CounterTracker()
        t.observe(reading(90.0, wrap_joules=100.0, max_watts=20.0), 0.0)
        assert t.observe(reading(5.0, wrap_joules=100.0, max_watts=20.0), 1.0).joules == pytest.approx(15.0)

    def test_reset_without_wrap_counts_energy_since_reset_once_confirmed(self) -> None:
        t = CounterTracker()
        t.observe(reading(1000.0), 0.0)
        assert t.observe(reading(7.0), 1.0).joules == 0.0  # a reset, or a glitch: the next reading tells
        assert t.observe(reading(10.0), 2.0).joules == 10.0  # it continues from 7: a reset, 7 + 3 J
        assert t.observe(reading(12.0), 3.0).joules == 2.0

    def test_new_epoch_counts_from_zero(self) -> None:
        t = CounterTracker()
        t.observe(reading(10.0, counter_epoch="boot-a"), 0.0)
        assert t.observe(reading(50.0, counter_epoch="boot-b"), 1.0).joules == 50.0

    def test_switching_counter_kind_starts_a_new_baseline(self) -> None:
        t = CounterTracker()
        t.observe(reading(10.0), 0.0)
        assert t.observe(reading(3.0, hardware_counter=False), 1.0).joules == 0.0


def test_ledger_refuses_to_go_backwards() -> None:
    ledger = Ledger()
    ledger.add("m", (), 1.0, 0.0)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            ledger.add("m", (), bad, 0.0)
    assert ledger.get("m") == 1.0


def test_emissions_use_the_intensity_of_each_interval() -> None:
    settings = config.load(["--pue=1.25"], env={})
    acc, ledger = Accountant(settings), Ledger()
    steps = [(100.0, 3600.0), (100.0, 7200.0), (500.0, 1800.0), (500.0, 0.0), (250.0, 360.0)]
    expected = 0.0
    for value, joules in steps:
        acc.account(ledger, [(reading(0), joules)], 1.0, intensity(value), 0.0)
        expected += joules * 1.25 * value / 3.6e6
    assert ledger.get(EMISSIONS, ("gpu", "0")) == pytest.approx(expected, rel=1e-12)
    assert ledger.get(NODE_EMISSIONS) == pytest.approx(expected, rel=1e-12)
    total = sum(j for _, j in steps)
    assert ledger.get(FACILITY_OVERHEAD) == pytest.approx(total * 0.25, rel=1e-12)
    # Not total energy x the last intensity:
    assert expected != pytest.approx(total * 1.25 * 250.0 / 3.6e6)


def test_contained_readings_are_exported_but_not_totalled() -> None:
    acc, ledger = Accountant(config.load([], env={})), Ledger()
    psys = reading(0, component="psys", device="psys", source="rapl", in_node_total=False)
    acc.account(ledger, [(reading(0), 10.0), (psys, 30.0)], 1.0, intensity(100.0), 0.0)
    assert ledger.get(ENERGY, ("psys", "psys", "rapl")) == 30.0
    assert ledger.get(NODE_ENERGY) == 10.0
    assert ("psys", "psys") not in ledger.series(EMISSIONS)


class TestEmbodied:
    def test_150_kg_over_4_years_accrues_per_second_across_uneven_intervals(self) -> None:
        settings = config.load(["--embodied.gpu-kgco2e=150", "--embodied.lifetime=4y"], env={})
        acc, ledger = Accountant(settings), Ledger()
        intervals = [0.1, 1.0, 0.5, 5.0, 2.25, 0.0, 13.0]
        for seconds in intervals:
            acc.account(ledger, [(reading(0, info={"model": "Unknown GPU"}), 1.0)], seconds, intensity(1.0), 0.0)
        per_second = 150e3 / (4 * 365.25 * 86400)
        got = ledger.get(EMBODIED, ("gpu", "0"))
        assert got == pytest.approx(per_second * sum(intervals), rel=1e-9)

    def test_table_loads_every_row_has_a_source(self) -> None:
        rows = load_table()
        assert rows
        for row in rows:
            assert row.source and row.year > 2000 and row.kgco2e > 0

    def test_table_match_on_model_and_unknown_model_accrues_nothing(self) -> None:
        settings = config.load([], env={})
        model = EmbodiedModel(settings)
        a100 = model.figure("gpu", "NVIDIA A100-SXM4-80GB")
        assert a100 is not None and a100.kgco2e == 150 and "BLOOM" in a100.source
        assert model.figure("gpu", "NVIDIA GeForce GT 710") is None
        acc, ledger = Accountant(settings), Ledger()
        acc.account(ledger, [(reading(0, info={"model": "NVIDIA GeForce GT 710"}), 1.0)], 10.0, intensity(1), 0.0)
        assert ledger.series(EMBODIED) == {}

    def test_server_share_is_its_own_entry(self) -> None:
        settings = config.load(["--embodied.server-kgco2e=2500", "--embodied.lifetime=5y"], env={})
        acc, ledger = Accountant(settings), Ledger()
        acc.account(ledger, [(reading(0), 1.0)], 60.0, intensity(1), 0.0)
        assert ledger.get(EMBODIED, ("server", "node")) == pytest.approx(2500e3 * 60 / (5 * YEAR), rel=1e-12)


class TestWaterAndCost:
    def test_absent_configuration_exports_nothing(self) -> None:
        acc, ledger = Accountant(config.load([], env={})), Ledger()
        acc.account(ledger, [(reading(0), 3.6e6)], 1.0, intensity(1), 0.0)
        assert ledger.series(WATER) == {} and ledger.series(COST) == {}

    def test_exact_against_energy(self) -> None:
        settings = config.load(
            ["--pue=1.5", "--water.wue=1.8", "--water.grid-intensity=3.0", "--cost.price-per-kwh=0.2",
             "--cost.currency=EUR"], env={})
        acc, ledger = Accountant(settings), Ledger()
        for joules in (3.6e6, 1.8e6, 123.0):
            acc.account(ledger, [(reading(0), joules)], 1.0, intensity(1), 0.0)
        kwh = (3.6e6 + 1.8e6 + 123.0) / 3.6e6
        assert ledger.get(WATER, ("site",)) == pytest.approx(kwh * 1.8, rel=1e-12)
        assert ledger.get(WATER, ("grid",)) == pytest.approx(kwh * 1.5 * 3.0, rel=1e-12)
        assert ledger.get(COST, ("EUR",)) == pytest.approx(kwh * 1.5 * 0.2, rel=1e-12)

    def test_time_of_use_schedule(self) -> None:
        settings = config.load(["--cost.price-per-kwh=0.30", "--cost.schedule=22:00-06:00=0.10,06:00-07:00=0.2"],
                               env={})
        acc, ledger = Accountant(settings), Ledger()
        midnight = 1_700_000_000 - 1_700_000_000 % 86400  # 00:00 UTC
        for hour in (23, 3, 6, 12):
            acc.account(ledger, [(reading(0), 3.6e6)], 1.0, intensity(1), midnight + hour * 3600 + 60)
        assert ledger.get(COST, ("USD",)) == pytest.approx(0.10 + 0.10 + 0.2 + 0.30)

    def test_bad_schedule_names_the_key(self) -> None:
        with pytest.raises(ConfigError, match=r"^cost\.schedule"):
            Accountant(config.load(["--cost.schedule=9-17=0.3"], env={}))


def test_attribution_conserves_energy_and_grams() -> None:
    acc, ledger = Accountant(config.load(["--pue=1.1"], env={})), Ledger()
    train = Consumer("ml", "trainer-0", "main", "training")
    serve = Consumer("ml", "vllm-0", "server", "inference")
    shares = [WorkloadShare(train, "gpu", "0", 60.0), WorkloadShare(serve, "gpu", "0", 30.0)]
    acc.account(ledger, [(reading(0), 100.0)], 1.0, intensity(400.0), 0.0, shares)
    assert ledger.get(WORKLOAD_ENERGY, (*train.labels, "gpu")) == 60.0
    assert ledger.get(UNATTRIBUTED_ENERGY, ("gpu", "0")) == pytest.approx(10.0)
    grams = sum(ledger.series(WORKLOAD_EMISSIONS).values()) + ledger.get("footprint_unattributed_emissions_grams_total",
                                                                        ("gpu", "0"))
    assert grams == pytest.approx(ledger.get(EMISSIONS, ("gpu", "0")), rel=1e-12)


def test_attribution_that_hands_out_too_much_is_scaled_down() -> None:
    acc, ledger = Accountant(config.load([], env={})), Ledger()
    c = Consumer("a", "p", "c", "unknown")
    acc.account(ledger, [(reading(0), 10.0)], 1.0, intensity(1), 0.0, [WorkloadShare(c, "gpu", "0", 40.0)])
    assert ledger.get(WORKLOAD_ENERGY, (*c.labels, "gpu")) == pytest.approx(10.0)
    assert ledger.get(UNATTRIBUTED_ENERGY, ("gpu", "0")) == 0.0
