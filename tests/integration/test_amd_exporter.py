"""The real exporter process with the real `amdsmi` bindings loading the fake libamd_smi.so
(--path.rocm), the amdgpu hwmon fallback on a fixture tree, and a pod holding `amd.com/gpu`.

The fake's clock is frozen and moved by the test in small steps (each well under what a 750 W GPU
draws between two 100 ms samples, so the ledger's plausibility bounds accept every step), so the
energy the exporter must show is known exactly whatever its own sampling times are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakes.amdsmi import FakeGpu, FakeProcess, Scenario, build_fake_amdsmi, fake_env, mi300x_node
from tests.fakes.amdsmi.hwmon import AmdgpuTree
from tests.fakes.cgroupfs import CgroupTree, FakeProcfs, container_id
from tests.fakes.kube_apiserver import FakeApiServer, make_pod
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer
from tests.support.exporter import REPO, ExporterProcess, start_exporter
from tests.support.promtext import Series, parse, pick, value

ARGS = ["--sample.interval=100ms", "--no-meter.rapl", "--no-meter.nvml"]
STEP = 0.05  # fake seconds per step: at most 27.5 J at 550 W, far under the ~95 J a 100 ms sample allows


def gpu_joules(s: Series) -> dict[str, float]:
    return {dict(lbl)["device"]: v for lbl, v in pick(s, "footprint_energy_joules_total", component="gpu").items()}


def wait_for_joules(exp: ExporterProcess, expected: dict[str, float]) -> Series:
    """Scrape until the GPUs in `expected` show exactly those joules (to well under one 15.3 µJ tick)."""

    def done(text: str) -> Series | None:
        s = parse(text)
        got = gpu_joules(s)
        ok = all(d in got and abs(got[d] - j) < 1e-6 for d, j in expected.items())
        return s if ok else None

    result: Series = exp.wait_until(done, timeout=15)
    return result


def when(condition: Callable[[Series], bool]) -> Callable[[str], Series | None]:
    """A wait_until predicate: the parsed scrape once `condition` holds for it."""

    def check(text: str) -> Series | None:
        s = parse(text)
        return s if condition(s) else None

    return check


def walk(exp: ExporterProcess, sc: Scenario, path: Path, until: float,
         expected: Callable[[float], dict[str, float]]) -> Series:
    """Move the fake's clock to `until` in STEPs, waiting at each for the exporter to show `expected`."""
    assert sc.time is not None
    s: Series = {}
    while sc.time < until - 1e-9:
        sc.time = round(min(sc.time + STEP, until), 6)
        sc.write(path)
        s = wait_for_joules(exp, expected(sc.time))
    return s


def test_eight_mi300x_export_exactly_the_accumulator_deltas(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    gpus = mi300x_node()
    for i, gpu in enumerate(gpus):
        gpu.offset_ticks = 987_654_321 + 1_000_003 * i
        gpu.power = [(0.0, 150.0 + 40.0 * i), (0.3, 520.0 - 30.0 * i)]
    gpus[1].partitions, gpus[1].compute, gpus[1].memory, gpus[1].secondary_same = 8, "CPX", "NPS4", True
    sc = Scenario(gpus=gpus, time=0.0)
    sc.write(path)
    with start_exporter([*ARGS, f"--path.rocm={build_fake_amdsmi()}", f"--path.sysfs={tmp_path}"],
                        env=fake_env(path)) as exp:
        wait_for_joules(exp, {str(i): 0.0 for i in range(8)})  # the first sample is only a baseline

        def delta(t: float) -> dict[str, float]:
            return {str(i): sc.joules(i, t) - sc.joules(i, 0.0) for i in range(8)}

        s = walk(exp, sc, path, 0.6, delta)
    assert sorted(gpu_joules(s)) == [str(i) for i in range(8)]  # 15 logical GPUs, 8 packages
    # By hand, for the CPX package: 0.3 s at 190 W + 0.3 s at 490 W, once (not once per partition).
    assert gpu_joules(s)["1"] == pytest.approx(0.3 * 190 + 0.3 * 490, rel=1e-4)
    assert {dict(lbl)["source"] for lbl in pick(s, "footprint_energy_joules_total", component="gpu")} == {"amdsmi"}
    info = dict(next(iter(pick(s, "footprint_device_info", component="gpu", device="1"))))
    assert info["vendor"] == "amd" and info["compute_partition"] == "CPX" and info["partitions"] == "8"
    assert info["model"] == "AMD Instinct MI300X" and info["pci_bus_id"] == "0000:2c:00.0"
    assert value(s, "footprint_meter_up", meter="amdsmi") == 1.0


def test_reset_lost_gpu_and_integration_through_the_exporter(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    gpus = [FakeGpu(power=[(0.0, 300.0)]), FakeGpu(power=[(0.0, 400.0)], lost=[(0.2, 0.4)]),
            FakeGpu(counter=False, power=[(0.0, 250.0)])]
    sc = Scenario(gpus=gpus, time=0.0)
    sc.write(path)
    with start_exporter([*ARGS, f"--path.rocm={build_fake_amdsmi()}", f"--path.sysfs={tmp_path}"],
                        env=fake_env(path)) as exp:
        exp.wait_until(lambda text: set(gpu_joules(parse(text))) == {"0", "1", "2"}, timeout=15)

        def counters(t: float) -> dict[str, float]:
            return {str(i): sc.joules(i, t) - sc.joules(i, 0.0) for i in (0, 1)}

        walk(exp, sc, path, 0.15, counters)
        sc.time = 0.25  # GPU 1 is lost now
        sc.write(path)
        lost: Series = exp.wait_until(when(
            lambda s: value(s, "footprint_device_up", component="gpu", device="1") == 0.0), timeout=15)
        assert value(lost, "footprint_device_up", component="gpu", device="0") == 1.0
        walk(exp, sc, path, 0.4, lambda t: {"0": counters(t)["0"]})  # GPU 1 lost until 0.4
        walk(exp, sc, path, 0.5, counters)  # back: the accumulator kept counting, the gap is counted once
        # The driver is loaded again (a new version: a new epoch) at 0.52: counters restart from 0.
        before = counters(0.5)
        sc.reloads, sc.driver_version = [0.52], "6.12.12"
        walk(exp, sc, path, 0.6, lambda t: {d: sc.joules(int(d), t) + before[d] for d in ("0", "1")})
        s = parse(exp.scrape())
    assert gpu_joules(s)["0"] == pytest.approx(300 * 0.5 + 300 * 0.08, rel=1e-3)  # 0.02 s before the reload lost
    assert value(s, "footprint_energy_joules_total", component="gpu", device="2", source="amdsmi_power") > 0
    assert value(s, "footprint_device_info", component="gpu", device="0", driver_version="6.12.12") == 1.0


def test_hwmon_fallback_without_the_library(tmp_path: Path) -> None:
    tree = AmdgpuTree(tmp_path / "sys")
    tree.add_gpu("0000:0c:00.0", microwatts=300_000_000)
    tree.add_gpu("0000:2c:00.0", microwatts=200_000_000, partitions=4, compute="QPX")
    empty_rocm = tmp_path / "no-rocm"  # the bindings find no libamd_smi.so here (nor anywhere else)
    with start_exporter([*ARGS, f"--path.rocm={empty_rocm}", f"--path.sysfs={tmp_path / 'sys'}"]) as exp:
        s: Series = exp.wait_until(when(
            lambda s: len(gpu_joules(s)) == 2 and all(j > 0 for j in gpu_joules(s).values())), timeout=15)
    assert value(s, "footprint_meter_up", meter="amdgpu_hwmon") == 1.0
    assert not pick(s, "footprint_meter_up", meter="amdsmi")
    assert {dict(lbl)["source"] for lbl in pick(s, "footprint_energy_joules_total", component="gpu")} == {"hwmon_power"}
    assert value(s, "footprint_power_watts", component="gpu", device="1", source="hwmon_power") == 200.0


NODE = "node-amd"
TRAIN, INFER = ("ml", "llama-train-0", "pytorch"), ("serving", "llama-serve-0", "vllm")
TRAIN_PID, INFER_PID = 5151, 5252


def test_a_pod_holding_amd_gpu_gets_its_gpu_energy(tmp_path: Path) -> None:
    """GPU 0 held by the training pod through amd.com/gpu (its PCI address); GPU 1 time-sliced, by
    processes; GPU 2 in CPX, its primary partition's id held by the inference pod: not the package."""
    tree, proc = CgroupTree(tmp_path / "cgroup"), FakeProcfs(tmp_path / "proc", cpus=8)
    train_id, infer_id = container_id(0xA3D), container_id(0x5E7)
    tree.add_container("6a3d0000-0000-4000-8000-00000000a001", train_id)
    tree.add_container("6a3d0000-0000-4000-8000-00000000b002", infer_id)
    proc.add_process(TRAIN_PID, tree.cgroup_path(train_id), "python")
    proc.add_process(INFER_PID, tree.cgroup_path(infer_id), "python3")
    token = tmp_path / "token"
    token.write_text("amd-token\n")
    api = FakeApiServer("amd-token", [
        make_pod(TRAIN[1], TRAIN[0], "6a3d0000-0000-4000-8000-00000000a001", NODE,
                 [(TRAIN[2], "rocm/pytorch:latest", train_id)], labels={"app": "train"}),
        make_pod(INFER[1], INFER[0], "6a3d0000-0000-4000-8000-00000000b002", NODE,
                 [(INFER[2], "rocm/vllm:latest", infer_id)], labels={"app": "serve"}),
    ]).start()
    sock_dir = Path(tempfile.mkdtemp(prefix="fp-"))
    podres = FakePodResourcesServer(sock_dir / "kubelet.sock", [
        FakePodResources(TRAIN[1], TRAIN[0], [FakeContainer(TRAIN[2], [("amd.com/gpu", ["0000:0c:00.0"])])]),
        FakePodResources(INFER[1], INFER[0], [FakeContainer(INFER[2], [("amd.com/gpu", ["0000:4c:00.0"])])]),
    ]).start()
    scenario = tmp_path / "scenario"
    Scenario(gpus=[FakeGpu(power=[(0.0, 400.0)]),
                   FakeGpu(power=[(0.0, 300.0)], activity=50,
                           processes=[FakeProcess(INFER_PID, gfx_pct=30), FakeProcess(999_999, gfx_pct=10)]),
                   FakeGpu(power=[(0.0, 200.0)], partitions=8, compute="CPX")], time=None).write(scenario)
    args = [*ARGS, "--attribution.interval=300ms", f"--path.rocm={build_fake_amdsmi()}",
            f"--path.sysfs={tmp_path / 'sys'}", "--kubernetes.enabled", f"--kubernetes.node-name={NODE}",
            f"--kubernetes.api-url={api.url}", f"--kubernetes.token-file={token}",
            f"--kubernetes.pod-resources-socket={sock_dir / 'kubelet.sock'}", "--kubernetes.refresh-interval=1s",
            f"--path.cgroup={tmp_path / 'cgroup'}", f"--path.procfs={tmp_path / 'proc'}"]

    def attributed(s: Series, pod: tuple[str, str, str]) -> float:
        return sum(pick(s, "footprint_workload_energy_joules_total", namespace=pod[0], pod=pod[1], container=pod[2],
                        component="gpu").values())

    def unattributed(s: Series, device: str) -> float:
        return value(s, "footprint_unattributed_energy_joules_total", component="gpu", device=device)

    try:
        with start_exporter(args, env=fake_env(scenario)) as exp:
            first: Series = exp.wait_until(when(
                lambda s: attributed(s, INFER) > 0 and attributed(s, TRAIN) > 0), timeout=20)
            second: Series = exp.wait_until(when(
                lambda s: attributed(s, TRAIN) > attributed(first, TRAIN) + 100), timeout=20)
    finally:
        api.stop()
        podres.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)

    def grew(f: Callable[[Series], float]) -> float:
        return f(second) - f(first)

    assert grew(lambda s: unattributed(s, "0")) == 0.0  # the whole GPU is the training pod's, idle included
    train, gpu1 = grew(lambda s: attributed(s, TRAIN)), grew(lambda s: attributed(s, INFER) + unattributed(s, "1")
                                                           + unattributed(s, "2"))
    assert train > 0 and gpu1 > 0
    # GPU 1: 50 % busy, 3:1 by engine time with a process of no container: the inference pod gets 37.5 %.
    # GPU 2 (CPX) has no process: its energy stays unattributed although 0000:4c:00.0 is allocated.
    infer = grew(lambda s: attributed(s, INFER))
    gpu1_total = grew(lambda s: attributed(s, INFER) + unattributed(s, "1"))
    assert infer == pytest.approx(0.375 * gpu1_total, rel=0.05)
    assert grew(lambda s: unattributed(s, "2")) > 0


def test_doctor_says_which_partition_mode_it_saw(tmp_path: Path) -> None:
    path = tmp_path / "scenario"
    gpus = mi300x_node()
    gpus[0].partitions, gpus[0].compute, gpus[0].memory = 8, "CPX", "NPS4"
    Scenario(gpus=gpus, time=1.0).write(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")} | fake_env(path)
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "footprint-exporter"), "doctor", "--no-meter.nvml",
                           "--no-meter.rapl", f"--path.rocm={build_fake_amdsmi()}", f"--path.sysfs={tmp_path}"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "amdsmi: 8 AMD GPU(s), 15 logical" in proc.stdout
    assert "partition mode CPX/NPS4, 8 partitions: energy for the whole GPU only" in proc.stdout
    assert "gpu 1 (0000:2c:00.0): AMD Instinct MI300X" in proc.stdout and "partition mode SPX/NPS1" in proc.stdout
