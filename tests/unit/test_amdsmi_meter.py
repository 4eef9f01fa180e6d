"""AmdSmiMeter on the real `amdsmi` bindings against the fake libamd_smi.so (tests/fakes/amdsmi), and
the amdgpu hwmon fallback on a real sysfs layout in a temp dir.

The bindings load the library once per process, from ROCM_HOME (what --path.rocm sets); each test
points the fake at its own scenario file and drives the fake's clock, which the meter reads too, so
sampling times are exact and nothing sleeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from footprint.accounting.ledger import CounterTracker
from footprint.attribution.podresources import allocation_keys
from footprint.config import Settings
from footprint.meters.amdsmi import (
    APU_SKIPPED,
    AmdHwmonMeter,
    AmdSmiMeter,
    AmdSmiNotInstalled,
    discover_hwmon,
    partition_shares,
)
from footprint.meters.base import MeterError, MeterUnavailable, Reading
from footprint.meters.registry import amdsmi_meter, detect
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.amdsmi import SCENARIO_ENV, FakeGpu, FakeProcess, Scenario, build_fake_amdsmi, mi300x_node
from tests.fakes.amdsmi.hwmon import AmdgpuTree
from tests.support.meter_rig import MeterRig

RETRY = 2.0


class Rig(MeterRig[Scenario, AmdSmiMeter]):
    def __init__(self, path: Path, settings: Settings) -> None:
        super().__init__(path, Scenario())
        self.settings = settings

    def make(self) -> AmdSmiMeter:
        return amdsmi_meter(self.settings, clock=self.clock, retry_interval=RETRY)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv(SCENARIO_ENV, str(tmp_path / "scenario"))
    monkeypatch.setenv("ROCM_HOME", "")  # restored after the test: --path.rocm sets it for this process
    settings = dataclasses.replace(Settings(), path_rocm=str(build_fake_amdsmi()), path_sysfs=str(tmp_path / "sys"))
    r = Rig(tmp_path / "scenario", settings)
    yield r
    r.close()


def by_device(readings: list[Reading]) -> dict[str, Reading]:
    return {r.device: r for r in readings}


def test_eight_mi300x_report_the_accumulator_exactly(rig: Rig) -> None:
    gpus = [FakeGpu(power=[(0.0, 90.0 + 41.5 * i), (2.25, 610.0 - 13.3 * i)], offset_ticks=7_654_321 * (i + 1),
                    activity=10 * i, cap_watts=750.0 - 25 * i) for i in range(8)]
    sc = rig.set(gpus=gpus, time=0.0)
    meter = rig.meter()
    tracker = CounterTracker()
    previous = None
    for t in (0.0, 0.5, 1.0, 2.5, 3.0):
        rig.at(t)
        readings = by_device(meter.read())
        assert sorted(readings) == [str(i) for i in range(8)] and meter.down_devices() == {}
        for i in range(8):
            r = readings[str(i)]
            assert r.energy_joules == sc.joules(i, t)  # ticks x 15.3 µJ, exactly
            delta = tracker.observe(r, t).joules
            if previous is not None:
                assert delta == pytest.approx(sc.joules(i, t) - sc.joules(i, previous), abs=1e-9)
                assert r.power_watts == pytest.approx(delta / (t - previous))  # from the fake's timestamps
        previous = t
    r = readings["3"]
    assert (r.source, r.hardware_counter, r.counter_epoch, r.wrap_joules) == ("amdsmi", True, "6.10.5", None)
    assert r.max_watts == pytest.approx(675 * 1.5)  # the cap x GPU_MARGIN, as the NVML meter
    assert dict(r.info) == {  # static facts only: the cap can change at runtime, so it is a gauge
        "index": "3", "vendor": "amd", "model": "AMD Instinct MI300X",
        "uuid": "5fff74a1-0000-1000-8003-000000000000", "serial": "0x6D8F1A2B00000003",
        "pci_bus_id": "0000:6c:00.0", "driver_version": "6.10.5",
        "compute_partition": "SPX", "memory_partition": "NPS1", "partitions": "1",
    }
    assert dict(r.gauges) == {"utilization_ratio": 0.3, "power_limit_watts": 675.0}
    assert allocation_keys(r.info) == ("5fff74a1-0000-1000-8003-000000000000", "0000:6c:00.0")


@pytest.mark.parametrize("secondary_same", [False, True], ids=["secondaries-na", "secondaries-repeat-package"])
def test_cpx_partitions_count_the_package_once(rig: Rig, secondary_same: bool) -> None:
    gpus = mi300x_node(partitions=8, compute="CPX", memory="NPS4", secondary_same=secondary_same)
    sc = rig.set(gpus=gpus, time=1.0)
    meter = rig.meter()
    first = by_device(meter.read())
    rig.at(3.0)
    second = by_device(meter.read())
    assert sorted(second) == [str(i) for i in range(8)]  # 64 logical GPUs, 8 packages
    for i in range(8):
        assert second[str(i)].energy_joules - first[str(i)].energy_joules == pytest.approx(
            sc.joules(i, 3.0) - sc.joules(i, 1.0), abs=1e-9)
        assert second[str(i)].energy_joules - first[str(i)].energy_joules == pytest.approx(2 * (200 + 50 * i), rel=1e-4)
    info = second["2"].info
    assert (info["compute_partition"], info["memory_partition"], info["partitions"]) == ("CPX", "NPS4", "8")
    assert allocation_keys(info) == (info["uuid"],)  # 0000:4c:00.0 names one partition, not the package
    lines = meter.doctor_lines()
    assert lines[0] == "amdsmi: 8 AMD GPU(s), 64 logical"
    assert "partition mode CPX/NPS4, 8 partitions: energy for the whole GPU only" in lines[3]


# Idle 80 W, load 350 W from 12.25 s, 280 W from 30.6 s, 90 W from 47.4 s; whole watts, as amdsmi answers.
STEP_TRACE = [(0.0, 80.0), (12.25, 350.0), (30.6, 280.0), (47.4, 90.0)]


def test_without_the_accumulator_socket_power_is_integrated(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu(counter=False, power=STEP_TRACE), FakeGpu()], time=0.0)
    meter = rig.meter()
    readings = []
    for second in range(61):
        rig.at(float(second))
        readings.append(by_device(meter.read())["0"])
    last = readings[-1]
    assert (last.source, last.hardware_counter, last.counter_epoch) == ("amdsmi_power", False, "")
    watts = [FakeGpu(power=STEP_TRACE).watts_at(s) for s in range(61)]
    trapezoid = sum((watts[s] + watts[s + 1]) / 2 for s in range(60))
    assert last.energy_joules == pytest.approx(trapezoid, abs=1e-9)
    assert trapezoid == pytest.approx(13_240.5, rel=0.01)  # within 1 % of the true integral
    assert "no energy accumulator" in meter.doctor_lines()[1]


def test_a_lost_gpu_is_down_while_the_others_are_read_and_comes_back(rig: Rig) -> None:
    sc = rig.set(gpus=[FakeGpu(), FakeGpu(lost=[(1.0, 4.0)], power=[(0.0, 400.0)])], time=0.0)
    meter = rig.meter()
    tracker = CounterTracker()
    for r in meter.read():
        tracker.observe(r, 0.0)
    rig.at(1.5)
    readings = by_device(meter.read())
    assert sorted(readings) == ["0"] and meter.down_devices()["1"].startswith("amdsmi_get_energy_count")
    rig.at(3.0)  # still lost, and before the retry: not even tried
    assert sorted(by_device(meter.read())) == ["0"]
    rig.at(5.0)
    back = by_device(meter.read())
    assert sorted(back) == ["0", "1"] and meter.down_devices() == {}
    # The accumulator kept counting while the GPU was unreachable: the gap's energy is counted once.
    assert tracker.observe(back["1"], 5.0).joules == pytest.approx(sc.joules(1, 5.0) - sc.joules(1, 0.0), abs=1e-9)


def test_a_driver_reload_restarts_the_counter_as_a_new_epoch(rig: Rig) -> None:
    sc = rig.set(gpus=[FakeGpu(offset_ticks=10**9)], time=1.0)
    meter = rig.meter()
    tracker = CounterTracker()
    tracker.observe(meter.read()[0], 1.0)
    rig.set(reloads=[1.5], driver_version="6.12.12", time=2.0)
    r = meter.read()[0]
    assert r.counter_epoch == "6.12.12" and r.energy_joules == sc.joules(0, 2.0) < 200
    assert tracker.observe(r, 2.0).joules == pytest.approx(0.5 * 300, rel=1e-4)  # energy since the reload only


def test_a_driver_unload_is_retried_and_the_gpus_enumerated_again(rig: Rig) -> None:
    sc = rig.set(gpus=[FakeGpu(), FakeGpu(partitions=2, compute="DPX")], unloaded=[(1.0, 6.0)], reloads=[6.0],
                 time=0.0)
    meter = rig.meter()
    tracker = CounterTracker()
    for r in meter.read():
        tracker.observe(r, 0.0)
    rig.at(1.5)  # every GPU fails: the handles are stale, amdsmi is shut down
    with pytest.raises(MeterError, match="no AMD GPU could be read"):
        meter.read()
    assert sorted(meter.down_devices()) == ["0", "1"]
    rig.at(4.0)  # past the retry: amdsmi_init answers DRIVER_NOT_LOADED, still a runtime fault
    with pytest.raises(MeterError, match="amdsmi_init"):
        meter.read()
    assert meter.doctor_lines()[0].startswith("amdsmi: not working: amdsmi_init")
    rig.at(7.0)  # loaded again at 6.0: initialised, enumerated, counters since the load
    readings = by_device(meter.read())
    assert sorted(readings) == ["0", "1"] and meter.down_devices() == {}
    assert readings["1"].info["partitions"] == "2"
    for device, r in readings.items():
        assert r.energy_joules == sc.joules(int(device), 7.0)
        assert tracker.observe(r, 7.0).joules == pytest.approx(sc.joules(int(device), 7.0))  # a reset: since the load


def test_process_shares_split_busy_time_by_engine_time(rig: Rig) -> None:
    shared = FakeGpu(activity=80, processes=[FakeProcess(100, gfx_pct=30), FakeProcess(200, gfx_pct=10)])
    cpx = FakeGpu(partitions=8, compute="CPX", activity=50,
                  processes=[FakeProcess(300, partition=0, gfx_pct=20), FakeProcess(400, partition=5, gfx_pct=40)])
    rig.set(gpus=[FakeGpu(), shared, cpx], time=1.0)
    meter = rig.meter()
    first = meter.process_shares()
    assert first["0"] == {} and first["1"] == pytest.approx({100: 0.4, 200: 0.4})  # no baseline: equal split
    rig.at(2.0)
    shares = meter.process_shares()
    assert shares["1"] == pytest.approx({100: 0.6, 200: 0.2})  # 80 % busy, 3:1 by GFX engine time
    # Each CPX partition is 1/8 of the package; alone on its partition, a process gets all of its busy time.
    assert shares["2"] == pytest.approx({300: 0.5 / 8, 400: 0.5 / 8})
    rig.at(3.0)
    assert meter.process_shares()["1"] == pytest.approx({100: 0.6, 200: 0.2})


def test_no_driver_is_no_data_here(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCENARIO_ENV)  # the fake answers DRIVER_NOT_LOADED, as amdsmi without amdgpu
    with pytest.raises(AmdSmiNotInstalled):
        rig.meter()


def test_registry_uses_amdsmi_or_hwmon_never_both(rig: Rig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    AmdgpuTree(tmp_path / "sys").add_gpu("0000:0c:00.0")
    rig.set(gpus=[FakeGpu()], time=0.0)
    found = detect(dataclasses.replace(rig.settings, meter_rapl=False, meter_nvml=False, meter_estimate=False))
    try:
        assert [m.name for m in found.meters] == ["amdsmi"]
    finally:
        for m in found.meters:
            m.close()
    monkeypatch.delenv(SCENARIO_ENV)
    found = detect(dataclasses.replace(rig.settings, meter_rapl=False, meter_nvml=False, meter_estimate=False))
    assert [m.name for m in found.meters] == ["amdgpu_hwmon"]
    assert any(n.startswith("amdsmi: not used") for n in found.notes)
    off = detect(dataclasses.replace(rig.settings, meter_rapl=False, meter_nvml=False, meter_estimate=False,
                                     meter_amdsmi=False))
    assert off.meters == [] and "amdsmi: disabled (--no-meter.amdsmi)" in off.notes


def test_counter_max_watts_overrides_the_cap(rig: Rig) -> None:
    rig.set(gpus=[FakeGpu()], time=0.0)
    rig.settings = dataclasses.replace(rig.settings, counter_max_watts=("gpu=2000",))
    meter = rig.meter()
    assert meter.read()[0].max_watts == 2000.0
    assert "counter ceiling 2000 W" in meter.doctor_lines()[1]


def test_next_to_nvidia_gpus_amd_devices_are_named_apart(rig: Rig, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fakes import nvml

    nvml.preload()
    monkeypatch.setenv(nvml.SCENARIO_ENV, str(tmp_path / "nvml-scenario"))
    nvml.Scenario(gpus=[nvml.FakeGpu(), nvml.FakeGpu()]).write(tmp_path / "nvml-scenario")
    rig.set(gpus=[FakeGpu(), FakeGpu()], time=0.0)
    found = detect(dataclasses.replace(rig.settings, meter_rapl=False, meter_estimate=False))
    try:
        devices = {m.name: sorted(r.device for r in m.read()) for m in found.meters}
    finally:
        for m in found.meters:
            m.close()
    assert devices == {"nvml": ["0", "1"], "amdsmi": ["amd0", "amd1"]}  # one ledger key each


# --- hwmon fallback ----------------------------------------------------------------------------------

def hwmon_meter(root: Path, clock: list[float]) -> AmdHwmonMeter:
    return AmdHwmonMeter(sysfs=str(root), max_watts=None, clock=lambda: clock[0])


def test_hwmon_integrates_socket_power_per_pci_gpu(tmp_path: Path) -> None:
    tree = AmdgpuTree(tmp_path)
    tree.add_gpu("0000:2c:00.0", microwatts=250_000_000, partitions=8, compute="CPX", memory="NPS4")
    tree.add_gpu("0000:0c:00.0", microwatts=400_500_000, power_file="power1_input")
    tree.add_gpu("0000:4c:00.0", vendor="0x10de")  # not AMD: never read
    tree.add_gpu("0000:0e:00.0", cap_uw=None, product="AMD Radeon Graphics")  # an APU: socket power, CPU included
    clock = [0.0]
    meter = hwmon_meter(tmp_path, clock)
    assert [g.info["pci_bus_id"] for g in meter.gpus] == ["0000:0c:00.0", "0000:2c:00.0"]  # once each, by address
    assert "amdgpu_hwmon: 0000:0e:00.0: no power1_cap: an APU" in meter.doctor_lines()[-1]
    meter.read()
    clock[0] = 2.0
    tree.set_power("0000:2c:00.0", "350000000\n")
    readings = by_device(meter.read())
    assert readings["0"].energy_joules == pytest.approx(2 * 400.5)
    assert readings["1"].energy_joules == pytest.approx((250 + 350) / 2 * 2)  # trapezoid
    r = readings["1"]
    assert (r.source, r.hardware_counter, r.power_watts) == ("hwmon_power", False, 350.0)
    assert r.max_watts == pytest.approx(750 * 1.5)
    assert (r.info["compute_partition"], r.info["model"], r.info["vendor"]) == ("CPX", "AMD Instinct MI300X", "amd")
    assert allocation_keys(r.info) == () and allocation_keys(readings["0"].info) == ("0000:0c:00.0",)
    assert "partition mode CPX/NPS4" in meter.doctor_lines()[2]
    assert readings["0"].info["partitions"] == "1" and readings["1"].info["partitions"] == ""  # CPX: per XCC


@given(st.one_of(st.text(max_size=20), st.integers(-10**13, 10**13).map(str)))
def test_hwmon_never_trusts_a_power_file(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as root:
        tree = AmdgpuTree(Path(root))
        tree.add_gpu("0000:0c:00.0", microwatts=300_000_000)
        tree.add_gpu("0000:2c:00.0", microwatts=300_000_000)
        clock = [0.0]
        meter = hwmon_meter(Path(root), clock)
        meter.read()
        clock[0] = 1.0
        tree.set_power("0000:0c:00.0", text)
        readings = by_device(meter.read())
        try:
            watts = int(text) / 1e6
        except ValueError:
            watts = None
        if watts is not None and 0 <= watts <= 1500:  # twice the 750 W cap
            assert readings["0"].power_watts == watts and "0" not in meter.down_devices()
        else:
            assert "0" not in readings and "0" in meter.down_devices()
        assert readings["1"].energy_joules == pytest.approx(300.0)  # the other GPU is unaffected


def test_hwmon_without_any_amd_gpu_is_no_data_here(tmp_path: Path) -> None:
    tree = AmdgpuTree(tmp_path)
    tree.add_gpu("0000:0c:00.0", vendor="0x10de")
    tree.add_gpu("0000:0e:00.0", cap_uw=None)  # only an APU: RAPL already counts its socket
    assert discover_hwmon(str(tmp_path)) == ([], {"0000:0e:00.0": APU_SKIPPED})
    with pytest.raises(MeterUnavailable, match=r"0000:0e:00\.0: no power1_cap"):
        hwmon_meter(tmp_path, [0.0])


@given(st.floats(allow_nan=True, allow_infinity=True),
       st.dictionaries(st.integers(1, 2**22), st.one_of(st.none(), st.floats(0, 2.0**64), st.just(float("nan"))),
                       max_size=8),
       st.integers(1, 8))
def test_partition_shares_never_hand_out_more_than_the_partition(busy: float, added: dict[int, float | None],
                                                                 partitions: int) -> None:
    shares = partition_shares(busy, added, partitions)
    assert set(shares) <= set(added)
    assert all(s >= 0 for s in shares.values())
    bound = (min(max(busy, 0.0), 1.0) if busy == busy and abs(busy) != float("inf") else 0.0) / partitions
    assert sum(shares.values()) <= bound + 1e-12
    grew = {pid: w for pid, w in added.items() if w is not None and w == w and w > 0}
    if grew:  # split by engine time added: proportional among the processes that added any
        assert set(shares) == set(grew)
        ref = max(grew, key=lambda pid: grew[pid])
        for pid, w in grew.items():
            assert shares[pid] == pytest.approx(shares[ref] * w / grew[ref], rel=1e-9, abs=1e-300)
        assert sum(shares.values()) == pytest.approx(bound, rel=1e-9)  # the whole busy part is handed out
    elif added:  # nobody added engine time: equal split
        assert len(set(shares.values())) <= 1 and set(shares) == set(added)


@given(st.dictionaries(st.sampled_from(["uuid", "vendor", "partitions", "pci_bus_id", "model"]),
                       st.one_of(st.just(""), st.just("amd"), st.just("1"), st.just("8"), st.text(max_size=12))))
def test_allocation_keys_name_a_whole_gpu_only(info: dict[str, str]) -> None:
    keys = allocation_keys(info)
    assert all(keys)  # never an empty id: it would match pods that hold nothing
    if info.get("uuid"):
        assert keys[0] == info["uuid"]
    pci = info.get("pci_bus_id", "").lower()
    if info.get("vendor") == "amd" and info.get("partitions", "1") == "1" and pci:
        assert pci in keys
    elif pci and pci != info.get("uuid"):  # a partition's PCI address, or not AMD: never the whole GPU
        assert pci not in keys
