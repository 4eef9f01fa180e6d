"""The real exporter process with the real pynvml loading the fake libnvidia-ml.so.1 (LD_LIBRARY_PATH).

The fake's clock is frozen and moved by the test (rewriting the scenario), so the energy the exporter
must show is known to the millijoule whatever the exporter's own sampling times are.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.nvml import DRIVER_NOT_LOADED, SCENARIO_ENV, FakeGpu, Scenario, fake_env
from tests.support.exporter import REPO, ExporterProcess, start_exporter
from tests.support.promtext import Series, parse, pick, value
from tests.support.tools import tool

# The fake's clock moves seconds in one real sample: no GPU draws that, so the ceiling the exporter
# judges every counter delta by is raised out of the way (test_counter_faults.py tests it).
ARGS = ["--sample.interval=100ms", "--no-meter.rapl", "--counter.max-watts=gpu=1000000"]


def gpu_joules(s: Series) -> dict[str, float]:
    return {dict(lbl)["device"]: v for lbl, v in pick(s, "footprint_energy_joules_total", component="gpu").items()}


def device_up(s: Series, component: str, device: str) -> float:
    return value(s, "footprint_device_up", component=component, device=device)


def when(s: Series, condition: Callable[[Series], object]) -> Series | None:
    return s if condition(s) else None


def wait_for_joules(exp: ExporterProcess, expected: dict[str, float]) -> Series:
    """Scrape until every GPU's exported joules equal `expected` (to well under the counter's 1 mJ)."""

    def done(text: str) -> Series | None:
        s = parse(text)
        got = gpu_joules(s)
        ok = got.keys() == expected.keys() and all(abs(got[d] - j) < 1e-6 for d, j in expected.items())
        return s if ok else None

    result: Series = exp.wait_until(done, timeout=10)
    return result


def test_eight_gpus_export_exactly_the_counter_deltas(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    sc = Scenario(
        gpus=[
            FakeGpu(
                power=[(0.0, 75.0 + 40.0 * i), (4.2, 310.0 + 13.0 * i), (13.7, 120.5)],
                energy_offset_mj=987_654_321 + 1_000_003 * i,
                utilization=(12 * i, 4),
                power_limit_watts=700.0 - 25 * i,
            )
            for i in range(8)
        ],
        time=0.0,
    )
    sc.write(path)
    with start_exporter([*ARGS, f"--path.sysfs={tmp_path}"], env=fake_env(path)) as exp:
        wait_for_joules(exp, {str(i): 0.0 for i in range(8)})  # the first sample is only a baseline

        def delta(t: float) -> dict[str, float]:
            return {str(i): (sc.energy_mj(i, t) - sc.energy_mj(i, 0.0)) / 1000 for i in range(8)}

        for t in (3.0, 10.0, 20.0):
            sc.time = t
            sc.write(path)
            s = wait_for_joules(exp, delta(t))
        assert delta(20.0)["7"] == pytest.approx(4.2 * 355 + 9.5 * 401 + 6.3 * 120.5)  # the trace, by hand
        info = pick(s, "footprint_device_info", component="gpu", device="5")
        assert next(iter(info)) >= {
            ("model", "NVIDIA H100 80GB HBM3"), ("uuid", "GPU-fa4e0000-0000-4000-8000-000000000005"),
            ("index", "5"), ("driver_version", "550.54.15"),
        }
        assert "power_limit_watts" not in dict(next(iter(info)))  # it can change: a gauge, not a label
        assert value(s, "footprint_gpu_utilization_ratio", device="5") == 0.6
        assert value(s, "footprint_gpu_power_limit_watts", device="5") == 575.0
        assert all(dict(lbl)["source"] == "nvml" for lbl in pick(s, "footprint_energy_joules_total", component="gpu"))

        # Driver reload at 21 s: the counters restart from 0; the exported ones go on, nothing doubled.
        before = delta(20.0)
        sc.reloads, sc.time = [21.0], 24.0
        sc.write(path)
        # A smaller value: a reset, or a dip the counter comes back from; a read that moved on tells.
        seen = value(parse(exp.scrape()), "footprint_sample_duration_seconds_count")
        exp.wait_until(lambda text: value(parse(text), "footprint_sample_duration_seconds_count") >= seen + 2)
        assert gpu_joules(parse(exp.scrape())) == pytest.approx(before, abs=1e-6)
        sc.time = 24.5
        sc.write(path)
        wait_for_joules(exp, {d: before[d] + sc.energy_mj(int(d), 24.5) / 1000 for d in before})
        text = exp.get("/metrics")
    check = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_a_lost_gpu_is_down_alone_and_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 200.0 + i)]) for i in range(4)], time=0.0)
    sc.write(path)
    with start_exporter([*ARGS, f"--path.sysfs={tmp_path}"], env=fake_env(path)) as exp:
        wait_for_joules(exp, {str(i): 0.0 for i in range(4)})
        sc.gpus[2].lost, sc.time = [(5.0, 1e6)], 5.0
        sc.write(path)
        s = exp.wait_until(lambda text: when(parse(text), lambda s: device_up(s, "gpu", "2") == 0))
        assert [device_up(s, "gpu", d) for d in "013"] == [1.0, 1.0, 1.0]
        assert value(s, "footprint_meter_up", meter="nvml") == 1.0
        cpu = value(s, "footprint_energy_joules_total", component="cpu", device="package-0")
        exp.wait_until(lambda text: value(parse(text), "footprint_energy_joules_total", component="cpu") > cpu)
        assert device_up(parse(exp.scrape()), "gpu", "2") == 0.0

        # Back at 8 s: found again by itself (retried every max(1 s, 5 samples)); its counter ran on.
        sc.gpus[2].lost, sc.time = [(5.0, 8.0)], 9.0
        sc.write(path)
        s = wait_for_joules(exp, {str(i): sc.energy_mj(i, 9.0) / 1000 for i in range(4)})
        assert device_up(s, "gpu", "2") == 1.0


def test_nvml_init_failure_is_down_and_recovers_by_itself(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(), FakeGpu()], init_error=DRIVER_NOT_LOADED)
    sc.write(path)
    with start_exporter([*ARGS, f"--path.sysfs={tmp_path}"], env=fake_env(path)) as exp:
        s = exp.wait_until(lambda text: when(parse(text), lambda s: pick(s, "footprint_meter_up", meter="nvml")))
        assert value(s, "footprint_meter_up", meter="nvml") == 0.0
        assert value(s, "footprint_meter_up", meter="estimate") == 1.0
        assert gpu_joules(s) == {}
        sc.init_error = 0
        sc.write(path)
        s = wait_for_joules(exp, {"0": 0.0, "1": 0.0})
        assert value(s, "footprint_meter_up", meter="nvml") == 1.0
        assert "NVML initialisation failed" in exp.log()


def doctor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_") and k != SCENARIO_ENV}
    full.pop("LD_LIBRARY_PATH", None)
    full.update(env)
    full["PYTHONPATH"] = str(REPO / "exporter")
    return subprocess.run(
        [sys.executable, "-m", "footprint", "doctor", "--no-meter.rapl"],
        env=full, capture_output=True, text=True, timeout=60,
    )


def test_doctor_lists_each_gpu_and_where_its_energy_comes_from(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    Scenario(
        gpus=[
            FakeGpu(name="NVIDIA H100 80GB HBM3"),
            FakeGpu(name="Tesla P100-PCIE-16GB", energy_counter=False, power_limit_watts=250),
            FakeGpu(name="NVIDIA A100-SXM4-40GB", mig=True, power_limit_watts=400),
            FakeGpu(lost=[(0.0, 1e6)]),
        ]
    ).write(path)
    out = doctor(fake_env(path))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line.strip() for line in out.stdout.splitlines()]
    assert "nvml: driver 550.54.15, 4 GPU(s)" in lines
    gpu = {line.split(":")[1].strip(): line for line in lines if line.startswith("nvml: gpu ")}
    assert gpu["gpu 0"].endswith(
        "700 W, counter ceiling 1050 W; energy from the hardware counter (nvmlDeviceGetTotalEnergyConsumption)")
    assert "Tesla P100-PCIE-16GB" in gpu["gpu 1"]
    assert gpu["gpu 1"].endswith("energy integrated from instant power (NVML field 186): no hardware energy counter")
    assert "MIG on: energy for the whole GPU only; energy from the hardware counter" in gpu["gpu 2"]
    assert gpu["gpu 3"] == "nvml: gpu 3: DOWN: nvmlDeviceGetHandleByIndex: GPU is lost"
    assert "gpu 1: source=nvml_power (integrated power), Tesla P100-PCIE-16GB" in out.stdout


def test_doctor_without_nvml_says_not_used() -> None:
    out = doctor({})
    if "nvml: driver" in out.stdout:
        pytest.skip("this host has a real libnvidia-ml.so.1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "nvml: not used: libnvidia-ml.so.1 not found: no NVIDIA driver on this host" in out.stdout
