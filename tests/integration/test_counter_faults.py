"""Hardware counter faults through the real exporter process (issue 14's counter rows, issue 16's stall row).

Real pynvml loads the fake libnvidia-ml.so.1 (its clock frozen and moved by the test, at a plausible
power); RAPL reads a real powercap layout whose counters the test writes by hand. Each fault's truth
is asserted exactly: a glitch costs nothing, the energy around it is charged to the millijoule,
the rejection is counted by reason and logged once, and node totals equal the sum of their devices.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.fakes.nvml import FakeGpu, Scenario, fake_env
from tests.fakes.sysfs import RaplTree
from tests.support.exporter import REPO, ExporterProcess, start_exporter
from tests.support.promtext import Series, parse, pick, value

INTERVAL = "--sample.interval=50ms"
REJECTED = "footprint_counter_rejected_total"
ENERGY = "footprint_energy_joules_total"
NODE = "footprint_node_energy_joules_total"
REJECTED_LOG = 'msg="counter reading rejected: charged nothing, baseline kept"'


def samples(s: Series) -> float:
    return value(s, "footprint_sample_duration_seconds_count")


def wait_for(exp: ExporterProcess, condition: Callable[[Series], bool], timeout: float = 10.0) -> Series:
    def check(text: str) -> Series | None:
        s = parse(text)
        return s if condition(s) else None

    result: Series = exp.wait_until(check, timeout=timeout)
    return result


def wait_samples(exp: ExporterProcess, n: int = 2) -> Series:
    """Until `n` more samples ran: the last of them started after anything the test changed before."""
    start = samples(parse(exp.scrape()))
    return wait_for(exp, lambda s: samples(s) >= start + n)


def rejected(s: Series, component: str, device: str) -> dict[str, float]:
    return {dict(lbl)["reason"]: v for lbl, v in pick(s, REJECTED, component=component, device=device).items()}


def node_is_the_sum_of_its_devices(s: Series) -> None:
    devices = sum(v for lbl, v in pick(s, ENERGY).items() if dict(lbl)["component"] != "psys")
    assert value(s, NODE) == pytest.approx(devices, rel=1e-9)


@contextmanager
def consistency_watch(exp: ExporterProcess) -> Iterator[list[float]]:
    """Scrape all along (another thread), check node == sum of devices in every scrape; yields
    [scrapes seen, highest device power seen]."""
    stop, seen, errors = threading.Event(), [0.0, 0.0], []

    def watch() -> None:
        while not stop.is_set():
            try:
                s = parse(exp.scrape())
                node_is_the_sum_of_its_devices(s)
                seen[0] += 1
                seen[1] = max([seen[1], *pick(s, "footprint_power_watts").values()])
            except AssertionError as exc:
                errors.append(exc)
            except OSError:
                pass
            stop.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)
    assert not errors, errors[0]


def test_nvml_glitches_cost_nothing_and_are_counted(tmp_path: Path) -> None:
    """GPU 0 reads 5 mJ below its previous value once, GPU 1 reads 0 once, GPU 2 reads 1.8e19 mJ once.
    At 100 W for 0.3 s of fake time, each GPU drew exactly 30 J, glitch included."""
    path = tmp_path / "scenario"
    offsets = [5_000_000, 1_300_000_000_000, 77_000]  # mJ since driver load (a month for GPU 1)
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 100.0)], energy_offset_mj=o) for o in offsets], time=0.0)
    glitch = [(0.15, 0.2, offsets[0] + 10_000 - 5), (0.15, 0.2, 0), (0.15, 0.2, 18_000_000_000_000_000_000)]
    for gpu, window in zip(sc.gpus, glitch, strict=True):
        gpu.glitches = [window]
    sc.write(path)
    args = [INTERVAL, "--no-meter.rapl", "--no-meter.estimate", f"--path.sysfs={tmp_path}"]
    with start_exporter(args, env=fake_env(path)) as exp, consistency_watch(exp) as scrapes:
        for t in (0.0, 0.1, 0.15):  # the baseline, then 10 J, then the glitch
            sc.time = t
            sc.write(path)
            wait_samples(exp)
        sc.time = 0.3
        sc.write(path)
        s = wait_for(exp, lambda s: all(value(s, ENERGY, component="gpu", device=d) == 30.0 for d in "012"))
        assert rejected(s, "gpu", "0") == {"backwards": 1.0}
        assert rejected(s, "gpu", "1") == {"backwards": 1.0}  # it looked like a reset until 0.3 s came
        assert rejected(s, "gpu", "2") == {"jump": 1.0}
        assert value(s, NODE) == 90.0
        sc.time = 0.4
        sc.write(path)
        wait_for(exp, lambda s: value(s, NODE) == 120.0)
        log = exp.log()
    assert scrapes[0] > 0
    assert scrapes[1] < 1e5  # no power figure from a glitch (0, then 1.3e9 J, read as 10^10 W)
    assert log.count(REJECTED_LOG) == 3  # once per device and reason
    assert "reason=jump" in log and "reading_joules=1.8e+16" in log


def test_rapl_going_back_a_millijoule_low_and_above_its_range(tmp_path: Path) -> None:
    """package-0 steps back without a wrap (suspend/resume, VM migration), package-1 reads 1 mJ low once,
    dram-0 reads above max_energy_range_uj, then drops (it wrapped): 7 J, 7 J and 12 J, exactly."""
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True, max_power_uw=1_000_000_000)
    rng = tree.max_range_uj
    tree.set_counter("intel-rapl:0", 20_000_000_000)
    tree.set_counter("intel-rapl:1", 30_000_000_000)
    tree.set_counter("intel-rapl:0:1", rng - 5_000_000)
    args = [INTERVAL, "--no-meter.nvml", "--no-meter.estimate", f"--path.sysfs={tree.root}"]
    with start_exporter(args) as exp, consistency_watch(exp) as scrapes:
        wait_samples(exp)
        tree.set_counter("intel-rapl:0", 5_000_000_000)  # 15 kJ back: neither a wrap nor a reset
        tree.set_counter("intel-rapl:1", 30_000_000_000 - 1_000)
        tree.set_counter("intel-rapl:0:1", rng + 100_000_000)
        wait_for(exp, lambda s: sum(v for lbl, v in pick(s, REJECTED).items()) == 3)
        tree.set_counter("intel-rapl:0", 5_007_000_000)
        tree.set_counter("intel-rapl:1", 30_007_000_000)
        tree.set_counter("intel-rapl:0:1", 7_000_000)
        s = wait_for(exp, lambda s: value(s, NODE) == 26.0)
        assert value(s, ENERGY, component="cpu", device="package-0") == 7.0
        assert value(s, ENERGY, component="cpu", device="package-1") == 7.0
        assert value(s, ENERGY, component="dram", device="dram-0") == pytest.approx(12.0, rel=1e-9)
        assert rejected(s, "cpu", "package-0") == {"implausible_wrap": 1.0}
        assert rejected(s, "cpu", "package-1") == {"implausible_wrap": 1.0}
        assert rejected(s, "dram", "dram-0") == {"out_of_range": 1.0}
        s = wait_samples(exp)
        assert value(s, NODE) == 26.0  # nothing more, nothing twice
    assert scrapes[0] > 0


def test_a_stall_longer_than_a_wrap_is_refused_not_counted_modulo(tmp_path: Path) -> None:
    """Issue 16: a hung NVML call stalls the sampler longer than the package counter takes to wrap
    (20 J range at a 150 W ceiling: 0.13 s). 50 J drawn meanwhile would read as 10 J modulo the range;
    the reading is refused (ambiguous_wrap), logged, and sampling goes on exactly from there."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, max_range_uj=20_000_000, max_power_uw=100_000_000)
    hang = tmp_path / "hang"
    scenario = tmp_path / "scenario"
    Scenario(gpus=[FakeGpu(power=[(0.0, 300.0)])], time=1.0,
             hangs=[("nvmlDeviceGetTotalEnergyConsumption", hang)]).write(scenario)
    args = [INTERVAL, "--no-meter.estimate", f"--path.sysfs={tree.root}"]
    with start_exporter(args, env=fake_env(scenario)) as exp:
        wait_samples(exp)
        tree.advance("intel-rapl:0", 4_000_000)
        wait_for(exp, lambda s: value(s, ENERGY, component="cpu", device="package-0") == 4.0)
        hang.touch()
        deadline = time.monotonic() + 10
        while not hang.with_name("hang.entered").exists():  # the sampler is inside the hung call now
            assert time.monotonic() < deadline, exp.log()
            time.sleep(0.01)
        tree.advance("intel-rapl:0", 50_000_000)  # 2.5 ranges
        time.sleep(0.5)  # the stall itself (not a measurement): longer than the 0.13 s wrap
        hang.unlink()
        wait_samples(exp)
        tree.advance("intel-rapl:0", 3_000_000)
        s = wait_for(exp, lambda s: value(s, ENERGY, component="cpu", device="package-0") == 7.0)
        assert rejected(s, "cpu", "package-0").get("ambiguous_wrap", 0) >= 1
        assert value(s, ENERGY, component="gpu", device="0") == 0.0  # its clock never moved
        log = exp.log()
    assert "reason=ambiguous_wrap" in log


def test_sampling_too_slowly_for_a_counter_range_exits_2(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, max_range_uj=20_000_000, max_power_uw=100_000_000)
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "footprint-exporter"), "--sample.interval=1s", "--no-meter.nvml",
         f"--path.sysfs={tree.root}", "--web.listen-address=127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("footprint-exporter: sample.interval: too slow for RAPL zone package-0: its counter "
                           "wraps every 0.133s at up to 150 W")


def doctor(*args: str) -> str:
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "footprint-exporter"), "doctor", *args],
                          capture_output=True, text=True, timeout=30)
    return proc.stdout


def test_an_unreadable_dram_zone_is_estimated_and_keeps_its_device_when_it_opens_up(tmp_path: Path) -> None:
    """Only the package files opened up: dram-0 is estimated (not silently 0) and doctor says so; once
    it becomes readable RAPL measures it under the same `device` label and the estimate stops."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    tree.make_unreadable("intel-rapl:0:1")
    args = [INTERVAL, "--no-meter.nvml", f"--path.sysfs={tree.root}"]
    assert "rapl: dram-0: NOT READ (IsADirectoryError): estimated instead" in doctor(*args)
    with start_exporter(args) as exp:
        s = wait_for(exp, lambda s: value(s, ENERGY, component="dram", device="dram-0", source="estimate") > 0)
        assert not pick(s, ENERGY, component="dram", source="rapl")
        assert value(s, ENERGY, component="cpu", device="package-0", source="rapl") == 0.0
        assert not pick(s, ENERGY, component="cpu", source="estimate")  # RAPL reads the package
        tree.make_readable("intel-rapl:0:1", 200_000)
        s = wait_for(exp, lambda s: bool(pick(s, ENERGY, component="dram", device="dram-0", source="rapl")))
        estimated = value(s, ENERGY, component="dram", device="dram-0", source="estimate")
        tree.advance("intel-rapl:0:1", 2_500_000)
        s = wait_for(exp, lambda s: value(s, ENERGY, component="dram", device="dram-0", source="rapl") == 2.5)
        assert value(s, ENERGY, component="dram", device="dram-0", source="estimate") == estimated
        assert value(s, "footprint_device_up", component="dram", device="dram-0") == 1.0
        node_is_the_sum_of_its_devices(s)


def test_a_package_zone_that_appears_after_start_is_measured(tmp_path: Path) -> None:
    """package-1 shows up after start (hotplug, a late driver): 10 J on package-0, then 55 J on
    package-1 once found: 65 J for the node."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False, cpu_packages=2)
    args = [INTERVAL, "--no-meter.nvml", "--no-meter.estimate", f"--path.sysfs={tree.root}"]
    with start_exporter(args) as exp:
        wait_samples(exp)
        tree.advance("intel-rapl:0", 10_000_000)
        wait_for(exp, lambda s: value(s, NODE) == 10.0)
        tree.add_package(1, dram=False)
        wait_for(exp, lambda s: bool(pick(s, "footprint_device_up", component="cpu", device="package-1")))
        tree.advance("intel-rapl:1", 55_000_000)
        s = wait_for(exp, lambda s: value(s, NODE) == 65.0)
        assert value(s, ENERGY, component="cpu", device="package-1") == 55.0


def test_a_vanished_proc_stat_is_a_meter_down_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 16: the estimate's /proc/stat disappears (a dying container, a bad mount): the meter goes
    down with one line naming the file, no traceback, and the rest keeps serving."""
    proc = tmp_path / "proc"
    proc.mkdir()
    for name in ("stat", "meminfo", "cpuinfo"):
        (proc / name).write_bytes(Path("/proc", name).read_bytes())
    args = [INTERVAL, "--no-meter.nvml", "--no-meter.rapl", f"--path.procfs={proc}", f"--path.sysfs={tmp_path}"]
    with start_exporter(args) as exp:
        wait_for(exp, lambda s: value(s, "footprint_meter_up", meter="estimate") == 1.0)
        (proc / "stat").unlink()
        s = wait_for(exp, lambda s: value(s, "footprint_meter_up", meter="estimate") == 0.0)
        assert value(s, "footprint_device_up", component="cpu", device="package-0") == 0.0
        wait_samples(exp)
        log = exp.log()
    assert "Traceback" not in log
    assert log.count("meter down") == 1 and f"cannot read CPU utilisation from {proc}/stat" in log
