"""NvmlMeter on the real pynvml against the fake libnvidia-ml.so.1 (tests/fakes/nvml).

The fake is loaded into this process once (pynvml then finds it by soname); each test points it at its
own scenario file and drives the fake's clock, and the meter reads that same clock, so sampling times
are exact and nothing sleeps.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from footprint import config
from footprint.accounting.ledger import CounterTracker
from footprint.config import Settings
from footprint.meters.base import MeterError, MeterUnavailable, Reading
from footprint.meters.nvml import (
    GPU_MARGIN,
    NvmlInitError,
    NvmlLibraryError,
    NvmlMeter,
    NvmlNotInstalled,
)
from footprint.meters.registry import nvml_meter

from tests.fakes.nvml import (
    DRIVER_NOT_LOADED,
    NOT_SUPPORTED,
    SCENARIO_ENV,
    UNKNOWN,
    FakeError,
    FakeGpu,
    FakeProcess,
    Scenario,
    preload,
)
from tests.support.exporter import REPO
from tests.support.meter_rig import MeterRig

pytestmark = pytest.mark.usefixtures("read_path")  # the C reader and the pure-Python reads alike

RETRY = 2.0


class Rig(MeterRig[Scenario, NvmlMeter]):
    def make(self) -> NvmlMeter:
        return nvml_meter(Settings(), clock=self.clock, retry_interval=RETRY)


@pytest.fixture(scope="module", autouse=True)
def _fake_library() -> None:
    preload()


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv(SCENARIO_ENV, str(tmp_path / "scenario"))
    r = Rig(tmp_path / "scenario", Scenario())
    yield r
    r.close()


def by_device(readings: list[Reading]) -> dict[str, Reading]:
    return {r.device: r for r in readings}


def test_eight_gpus_report_the_hardware_counter_exactly(rig: Rig) -> None:
    gpus = [
        FakeGpu(
            name=f"NVIDIA A100-SXM4-{40 * (1 + i % 2)}GB",
            power_limit_watts=400 + 10 * i,
            power=[(0.0, 60.0 + 37.5 * i), (2.25, 250.0 + 11.1 * i), (5.5, 90.0 + i)],
            energy_offset_mj=123_456_789 * (i + 1),
            utilization=(10 * i, 5),
        )
        for i in range(8)
    ]
    sc = rig.set(gpus=gpus, time=0.0)
    meter = rig.meter()
    tracker = CounterTracker()
    previous = None
    for t in (0.0, 1.0, 2.5, 4.0, 7.25):
        rig.at(t)
        readings = by_device(meter.read())
        assert sorted(readings) == [str(i) for i in range(8)]
        assert meter.down_devices() == {}
        for i in range(8):
            r = readings[str(i)]
            assert r.energy_joules == sc.energy_mj(i, t) / 1000  # the counter itself, mJ -> J
            delta = tracker.observe(r, t).joules
            if previous is not None:
                assert delta == pytest.approx((sc.energy_mj(i, t) - sc.energy_mj(i, previous)) / 1000, abs=1e-9)
                assert r.power_watts is None  # the sampler's judged delta over its time gives the power
        previous = t
    r = readings["3"]
    assert (r.component, r.source, r.hardware_counter, r.counter_epoch) == ("gpu", "nvml", True, "550.54.15")
    assert dict(r.info) == {
        "index": "3",
        "uuid": "GPU-fa4e0000-0000-4000-8000-000000000003",
        "model": "NVIDIA A100-SXM4-80GB",
        "driver_version": "550.54.15",
    }  # the limit can change at runtime: a gauge, never an info label
    assert dict(r.gauges) == {"utilization_ratio": 0.3, "power_limit_watts": 430.0}
    assert r.max_watts == 430.0 * GPU_MARGIN  # the counter's ceiling: the limit with a margin


def test_the_ceiling_is_the_highest_settable_limit_or_the_override(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu(power_limit_watts=500.0, power_limit_max_watts=700.0), FakeGpu(power_limit_watts=400.0)])
    assert [r.max_watts for r in rig.meter().read()] == [700.0 * GPU_MARGIN, 400.0 * GPU_MARGIN]
    meter = nvml_meter(config.load(["--counter.max-watts=gpu=2000"], env={}), clock=rig.clock, retry_interval=RETRY)
    rig.meters.append(meter)
    assert [r.max_watts for r in meter.read()] == [2000.0, 2000.0]


# The stated trace for the no-counter case, a training job: idle 80 W, load 350 W from 12.25 s, 280 W from
# 30.6 s, 90 W from 47.4 s, sampled at every whole second 0..60 (the steps fall between samples).
# True integral 13 240.5 J; trapezoid 13 185.0 J (-0.42 %).
STEP_TRACE = [(0.0, 80.0), (12.25, 350.0), (30.6, 280.0), (47.4, 90.0)]


@pytest.mark.parametrize("instant_field", [True, False], ids=["field-186", "power-usage"])
def test_without_a_counter_integrated_energy_is_within_1_percent(rig: Rig, instant_field: bool) -> None:
    sc = rig.set(gpus=[FakeGpu(power=STEP_TRACE, energy_counter=False, instant_power_field=instant_field)])
    meter = rig.meter()
    readings = []
    for second in range(61):  # 1 s sampling over 60 s
        rig.at(float(second))
        (r,) = meter.read()
        readings.append(r)
    true_joules = (sc.energy_mj(0, 60.0) - sc.energy_mj(0, 0.0)) / 1000
    integrated = readings[-1].energy_joules - readings[0].energy_joules
    assert true_joules == 13240.5
    assert abs(integrated - true_joules) / true_joules < 0.01
    watts = [sc.gpus[0].watts_at(k) for k in range(61)]
    assert integrated == pytest.approx(sum((a + b) / 2 for a, b in itertools.pairwise(watts)))  # the trapezoid
    assert integrated == pytest.approx(13185.0)
    last = readings[-1]
    assert (last.source, last.hardware_counter, last.power_watts) == ("nvml_power", False, 90.0)
    how = "field 186" if instant_field else "nvmlDeviceGetPowerUsage"
    assert how in meter.doctor_lines()[1] and "no hardware energy counter" in meter.doctor_lines()[1]


def test_driver_reload_counter_restarts_and_the_ledger_never_goes_back(rig: Rig) -> None:
    sc = rig.set(gpus=[FakeGpu(power=[(0.0, 200.0)], energy_offset_mj=5_000_000)], reloads=[3.5])
    meter = rig.meter()
    tracker = CounterTracker()
    total = 0.0
    seen = []
    for t in (0.0, 1.0, 3.0, 4.0, 6.0):
        rig.at(t)
        (r,) = meter.read()
        seen.append(r.energy_joules)
        total += tracker.observe(r, t).joules
    assert seen == [5000.0, 5200.0, 5600.0, 100.0, 500.0]  # the raw counter restarts from 0 at 3.5 s
    # 0-3 s before the reload, then everything since the reload (charged once the 6 s reading confirms
    # the reset); 3.0-3.5 s is lost, never doubled.
    assert total == pytest.approx(600.0 + 500.0)
    assert sc.energy_mj(0, 6.0) == 500_000

    # A reload that brings a new driver version changes the epoch: a restart the ledger can tell.
    rig.set(driver_version="560.35.03", reloads=[3.5, 6.75], errors=[FakeError("*", DRIVER_NOT_LOADED, 6.5, 7.0)])
    rig.at(6.5)
    with pytest.raises(NvmlLibraryError):
        meter.read()
    assert meter.down_devices() == {"0": "nvmlDeviceGetTotalEnergyConsumption: Driver Not Loaded"}
    rig.at(7.0)
    (r,) = meter.read()
    assert (r.counter_epoch, r.info["driver_version"], r.energy_joules) == ("560.35.03", "560.35.03", 50.0)
    assert tracker.observe(r, 7.0).joules == 50.0  # the energy since the new driver loaded


def test_lost_gpu_goes_down_alone_and_comes_back(rig: Rig) -> None:
    sc = rig.set(
        gpus=[
            FakeGpu(power=[(0.0, 100.0)]),
            FakeGpu(power=[(0.0, 300.0)], lost=[(3.0, 5.5)]),
            FakeGpu(power=[(0.0, 150.0)], energy_counter=False, lost=[(3.0, 5.5)]),
        ]
    )
    meter = rig.meter()
    for t in (0.0, 1.0, 2.0):
        rig.at(t)
        assert len(meter.read()) == 3
    rig.at(3.0)
    assert sorted(by_device(meter.read())) == ["0"]
    assert meter.down_devices() == {
        "1": "nvmlDeviceGetTotalEnergyConsumption: GPU is lost",
        "2": "nvmlDeviceGetFieldValues: GPU is lost",
    }
    assert "nvml: gpu 1: DOWN: nvmlDeviceGetTotalEnergyConsumption: GPU is lost" in meter.doctor_lines()
    rig.at(5.0)  # retried at 3 + RETRY: still lost
    assert sorted(by_device(meter.read())) == ["0"]
    rig.at(6.0)  # back since 5.5, but the next try is 5 + RETRY
    assert sorted(by_device(meter.read())) == ["0"]
    rig.at(7.0)  # found again without a restart
    readings = by_device(meter.read())
    assert sorted(readings) == ["0", "1", "2"] and meter.down_devices() == {}
    # The hardware counter ran on while the GPU was away: nothing is lost.
    assert readings["1"].energy_joules == sc.energy_mj(1, 7.0) / 1000 == 2100.0
    # The integrated one does not bridge the gap: it goes on from the first sample back.
    assert readings["2"].energy_joules == 150.0 * 2
    rig.at(8.0)
    assert by_device(meter.read())["2"].energy_joules == 150.0 * 3


def test_every_gpu_lost_raises_and_names_them(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu(lost=[(1.0, 99.0)]), FakeGpu(lost=[(1.0, 99.0)])])
    meter = rig.meter()
    rig.at(1.0)
    with pytest.raises(MeterError):
        meter.read()
    assert set(meter.down_devices()) == {"0", "1"}


def test_a_failing_call_takes_its_gpu_down_for_one_read_only(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu(errors=[FakeError("nvmlDeviceGetTotalEnergyConsumption", UNKNOWN, 2.0, 3.0)]), FakeGpu()])
    meter = rig.meter()
    rig.at(2.0)
    assert sorted(by_device(meter.read())) == ["1"]
    assert meter.down_devices() == {"0": "nvmlDeviceGetTotalEnergyConsumption: Unknown Error"}
    rig.at(3.0)  # not a lost GPU: no back-off
    assert sorted(by_device(meter.read())) == ["0", "1"]


def test_a_gpu_without_any_power_reading_is_down_and_says_why(rig: Rig) -> None:
    mute = FakeGpu(energy_counter=False, instant_power_field=False,
                   errors=[FakeError("nvmlDeviceGetPowerUsage", NOT_SUPPORTED)])
    rig.set(gpus=[FakeGpu(), mute])
    meter = rig.meter()
    assert sorted(by_device(meter.read())) == ["0"]
    assert meter.down_devices() == {"1": "nvmlDeviceGetPowerUsage: Not Supported"}


def test_init_failure_is_a_fault_retried_at_most_every_retry_interval(rig: Rig) -> None:
    rig.set(init_error=DRIVER_NOT_LOADED, time=0.0)
    meter = rig.meter()  # constructs: the library is there, the driver is not (yet)
    with pytest.raises(NvmlInitError) as err:
        meter.read()
    assert not isinstance(err.value, MeterUnavailable)
    assert meter.doctor_lines() == ["nvml: not working: nvmlInit: Driver Not Loaded (initialisation retried every 2s)"]
    rig.set(init_error=0, time=1.0)
    with pytest.raises(NvmlInitError):
        meter.read()  # rate-limited: not tried again before 2 s
    rig.at(2.0)
    (r,) = meter.read()
    assert r.source == "nvml"
    assert meter.doctor_lines()[0] == "nvml: driver 550.54.15, 1 GPU(s)"


def test_library_without_a_scenario_counts_as_absent(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loaded fake without a scenario answers like a host without NVML (so it leaks into no other test)."""
    monkeypatch.delenv(SCENARIO_ENV)
    with pytest.raises(NvmlNotInstalled, match=r"libnvidia-ml\.so\.1 not found"):
        nvml_meter(Settings())


def test_no_nvml_library_at_all_is_no_data_here() -> None:
    code = (
        "import ctypes\n"
        "try:\n    ctypes.CDLL('libnvidia-ml.so.1'); print('PRESENT')\nexcept OSError: pass\n"
        "from footprint.config import Settings\n"
        "from footprint.meters.base import MeterUnavailable\n"
        "from footprint.meters.registry import nvml_meter\n"
        "try:\n    nvml_meter(Settings())\nexcept MeterUnavailable as exc:\n    print('UNAVAILABLE', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD", SCENARIO_ENV)}
    env["PYTHONPATH"] = str(REPO / "exporter")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    if "PRESENT" in out.stdout:
        pytest.skip("this host has a real libnvidia-ml.so.1")
    assert out.stdout.strip() == "UNAVAILABLE libnvidia-ml.so.1 not found: no NVIDIA driver on this host", out.stderr


def test_process_shares_from_process_utilisation(rig: Rig) -> None:
    procs = [FakeProcess(101, sm_util=30), FakeProcess(102, sm_util=50)]
    rig.set(gpus=[FakeGpu(processes=procs), FakeGpu(processes=[FakeProcess(7, 70), FakeProcess(8, 60)]), FakeGpu()])
    meter = rig.meter()
    rig.at(1.0)
    shares = meter.process_shares()
    assert shares["0"] == {101: 0.3, 102: 0.5}  # the idle 20 % stays unattributed
    assert shares["1"] == pytest.approx({7: 70 / 130, 8: 60 / 130})  # never more than the whole GPU
    assert shares["2"] == {}
    assert meter.process_shares() == {"0": {}, "1": {}, "2": {}}  # no samples since the last call
    rig.at(2.0)
    assert meter.process_shares()["0"] == {101: 0.3, 102: 0.5}


def test_process_shares_fall_back_to_equal_split_of_utilisation(rig: Rig) -> None:
    unsupported = [FakeError("nvmlDeviceGetProcessUtilization", NOT_SUPPORTED)]
    rig.set(gpus=[FakeGpu(utilization=(80, 0), errors=unsupported, processes=[FakeProcess(5), FakeProcess(6)])])
    meter = rig.meter()
    rig.at(1.0)
    assert meter.process_shares() == {"0": {5: 0.4, 6: 0.4}}


def test_mig_gpu_is_metered_whole_and_its_processes_share_it(rig: Rig) -> None:
    procs = [
        FakeProcess(41, used_memory=10 << 30, gpu_instance=1, compute_instance=0),
        FakeProcess(42, used_memory=20 << 30, gpu_instance=2, compute_instance=0),
    ]
    sc = rig.set(gpus=[FakeGpu(mig=True, processes=procs, power=[(0.0, 350.0)])])
    meter = rig.meter()
    rig.at(2.0)
    (r,) = meter.read()  # one reading for the physical GPU, none per instance
    assert (r.device, r.energy_joules) == ("0", sc.energy_mj(0, 2.0) / 1000)
    assert "utilization_ratio" not in r.gauges  # MIG has no whole-GPU utilisation
    assert "MIG on: energy for the whole GPU only" in meter.doctor_lines()[1]
    assert meter.process_shares() == {"0": {41: 0.5, 42: 0.5}}


def test_describe_says_counter_or_integration_per_gpu(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu(), FakeGpu(energy_counter=False), FakeGpu(lost=[(0.0, 9.0)])])
    lines = rig.meter().doctor_lines()
    assert lines == [
        "nvml: driver 550.54.15, 3 GPU(s)",
        "nvml: gpu 0: NVIDIA H100 80GB HBM3 GPU-fa4e0000-0000-4000-8000-000000000000, power limit 700 W, "
        "counter ceiling 1050 W; energy from the hardware counter (nvmlDeviceGetTotalEnergyConsumption)",
        "nvml: gpu 1: NVIDIA H100 80GB HBM3 GPU-fa4e0000-0000-4000-8000-000000000001, power limit 700 W; "
        "energy integrated from instant power (NVML field 186): no hardware energy counter",
        "nvml: gpu 2: DOWN: nvmlDeviceGetHandleByIndex: GPU is lost",
    ]


def test_each_sample_reads_the_counter_and_utilisation_only_at_the_attribution_cadence(rig: Rig) -> None:
    """Accounting needs the energy counter every sample; utilisation is a scrape-time gauge, read every
    --attribution.interval (and with a GPU's first reading), so a sample makes one NVML call per GPU."""
    sc = rig.set(gpus=[FakeGpu(utilization=(30, 0), power=[(0.0, 200.0)])], time=0.0)
    meter = nvml_meter(config.load(["--attribution.interval=5s"], env={}), clock=rig.clock, retry_interval=RETRY)
    rig.meters.append(meter)
    assert meter.read()[0].gauges["utilization_ratio"] == 0.3
    sc = rig.set(gpus=[FakeGpu(utilization=(90, 0), power=[(0.0, 200.0)])], time=2.0)
    r = meter.read()[0]
    assert r.energy_joules == sc.energy_mj(0, 2.0) / 1000  # the counter: every sample
    assert r.gauges["utilization_ratio"] == 0.3  # the last slow read, until the cadence comes round
    rig.at(5.0)
    assert meter.read()[0].gauges["utilization_ratio"] == 0.9


def test_a_steady_sample_reads_what_the_full_path_reads(rig: Rig, read_path: str) -> None:
    """Once every GPU was read up on its counter, a sample takes the steady path (one C call, a tuple per
    GPU); a meter made to take the full path every time gives the same readings, through a gauge refresh,
    a GPU that fails once and one that is lost and found again."""
    fails_once = [FakeError("nvmlDeviceGetTotalEnergyConsumption", UNKNOWN, 3.0, 3.5)]
    rig.set(gpus=[FakeGpu(power=[(0.0, 100.0 + 50 * i), (4.0, 300.0)], utilization=(10 * i, 0),
                          errors=fails_once if i == 1 else [], lost=[(6.0, 6.5)] if i == 2 else [])
                  for i in range(4)], time=0.0)
    settings = config.load(["--attribution.interval=2s"], env={})
    steady = nvml_meter(settings, clock=rig.clock, retry_interval=RETRY)
    full = nvml_meter(settings, clock=rig.clock, retry_interval=RETRY)
    rig.meters += [steady, full]
    took_steady = 0
    for t in (0.0, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0):
        if t == 8.0:  # utilisation moves: the next gauge refresh must show it, on either path
            rig.set(gpus=[FakeGpu(power=[(0.0, 100.0 + 50 * i), (4.0, 300.0)], utilization=(90 - 10 * i, 0),
                                  errors=fails_once if i == 1 else [], lost=[(6.0, 6.5)] if i == 2 else [])
                          for i in range(4)], time=t)
        rig.at(t)
        was_steady = steady._steady is not None and t < steady._steady[2]
        got = steady.read()
        full._steady = None
        assert got == full.read(), t
        assert steady.down_devices() == full.down_devices()
        took_steady += was_steady
    assert took_steady >= (5 if read_path == "c_reader" else 0)
    assert [r.gauges["utilization_ratio"] for r in got] == [0.9, 0.8, 0.7, 0.6]  # refreshed after the move
    if read_path != "c_reader":
        assert steady._steady is None  # no C reader: always the full path
