"""Bare-metal process attribution: the real sampler and accountant on a fake clock, a fake /proc, the real
RAPL meter on a powercap tree and the real NVML meter on the fake libnvidia-ml."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from footprint.accounting.accountant import ENERGY, UNATTRIBUTED_ENERGY, WORKLOAD_ENERGY, Accountant
from footprint.accounting.ledger import Ledger
from footprint.attribution import factory
from footprint.attribution.processes import ProcessAttributor
from footprint.config import Settings
from footprint.exposition.attribution import attribution_families
from footprint.meters.base import Meter
from footprint.meters.registry import nvml_meter, rapl_meter
from footprint.sampler import Sampler

from tests.fakes.cgroupfs import FakeProcfs
from tests.fakes.nvml import SCENARIO_ENV, FakeGpu, FakeProcess, Scenario, preload
from tests.fakes.sysfs import RaplTree
from tests.support.fixed_grid import FixedGrid

CPUS = 4
GROUP_ENERGY = "footprint_process_group_energy_joules_total"
GROUP_EMISSIONS = "footprint_process_group_emissions_grams_total"
HZ = 100  # what the fake /proc's ticks mean, the kernel's USER_HZ everywhere


class Host:
    def __init__(self, tmp: Path, group_by: str, **settings: Any) -> None:
        self.t = 0.0
        self.proc = FakeProcfs(tmp / "proc", cpus=CPUS)
        self.rapl = RaplTree(tmp / "sys", packages=1, dram=False)
        self.scenario_path = tmp / "scenario"
        self.scenario = Scenario(gpus=[FakeGpu(power=[(0.0, 250.0)])], time=0.0)
        self.scenario.write(self.scenario_path)
        self.settings = Settings(path_procfs=str(tmp / "proc"), path_sysfs=str(tmp / "sys"),
                                 attribution_processes=True, attribution_group_by=group_by,
                                 **settings)
        self.nvml = nvml_meter(self.settings, clock=lambda: self.t)
        meters: list[Meter] = [rapl_meter(self.settings), self.nvml]
        attributor = factory.build(self.settings, meters)
        assert isinstance(attributor, ProcessAttributor)
        assert attributor.ticks_per_second == HZ
        self.attributor = attributor
        self.ledger = Ledger()
        self.sampler = Sampler(meters, self.ledger, Accountant(self.settings), FixedGrid(100.0), 1.0,
                               attributor=attributor, clock=lambda: self.t, wall=lambda: 1e9 + self.t)
        self.sampler.sample()

    def step(self, ticks: dict[int, int], gpu: list[tuple[int, int]] | None = None) -> None:
        self.t += 1.0
        if gpu is not None:
            self.scenario.gpus[0].processes = [FakeProcess(pid, sm) for pid, sm in gpu]
        self.scenario.time = self.t
        self.scenario.write(self.scenario_path)
        self.rapl.advance("intel-rapl:0", 40_000_000)
        for pid, n in ticks.items():
            self.proc.advance_process(pid, n)
        self.sampler.sample()

    def groups(self, component: str) -> dict[str, float]:
        out: dict[str, float] = {}
        assert not self.ledger.series(WORKLOAD_ENERGY)  # no pods here: never `pod` with an empty namespace
        for (group, part), joules in self.ledger.series(GROUP_ENERGY).items():
            if part == component:
                out[group] = out.get(group, 0.0) + joules
        return out


MakeHost = Callable[..., Host]


@pytest.fixture(scope="module", autouse=True)
def _fake_nvml() -> None:
    preload()


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeHost]:
    monkeypatch.setenv(SCENARIO_ENV, str(tmp_path / "scenario"))
    made: list[Host] = []

    def make(group_by: str = "comm", **settings: object) -> Host:
        h = Host(tmp_path, group_by, **settings)
        made.append(h)
        return h

    yield make
    for h in made:
        h.nvml.close()


def test_grouped_by_process_name(host: MakeHost) -> None:
    h = host()
    h.proc.add_process(10, comm="python", ticks=5000)
    h.proc.add_process(11, comm="python", ticks=10)
    h.proc.add_process(12, comm="my app (v2)")  # parentheses and spaces in comm
    h.proc.add_process(2, comm="kworker/0:1", kernel_thread=True)
    h.sampler.sample()  # the baseline sees them
    h.step({10: 100, 11: 50, 12: 40, 2: 400}, gpu=[(10, 70), (12, 10)])
    # 4 CPUs x 1 s = 400 ticks of capacity; the package drew 40 J.
    assert h.groups("cpu") == pytest.approx({"python": 40.0 * 150 / 400, "my app (v2)": 40.0 * 40 / 400})
    assert h.groups("gpu") == pytest.approx({"python": 250.0 * 0.7, "my app (v2)": 250.0 * 0.1})
    assert h.ledger.get(UNATTRIBUTED_ENERGY, ("cpu", "package-0")) == pytest.approx(40.0 * 210 / 400)
    for component, device in (("cpu", "package-0"), ("gpu", "0")):
        device_j = sum(v for k, v in h.ledger.series(ENERGY).items() if k[:2] == (component, device))
        assert sum(h.groups(component).values()) + h.ledger.get(UNATTRIBUTED_ENERGY, (component, device)) == (
            pytest.approx(device_j, rel=1e-12))


def test_new_process_counts_from_its_start_and_an_exited_group_leaves(host: MakeHost) -> None:
    h = host(attribution_grace_period=1.0)
    h.proc.add_process(10, comm="train")
    h.step({10: 100})
    h.proc.add_process(20, comm="eval", ticks=80)  # started during this second: all 80 ticks count
    h.step({10: 100})
    assert h.groups("cpu")["eval"] == pytest.approx(40.0 * 80 / 400)
    h.proc.remove_process(20)
    h.step({10: 100})
    assert "eval" in {k[0] for k in h.ledger.series(GROUP_EMISSIONS)}  # within grace
    h.step({10: 100})
    assert {k[0] for k in h.ledger.series(GROUP_EMISSIONS)} == {"train"}


def test_grouped_by_slurm_job(host: MakeHost) -> None:
    h = host("slurm-job")
    h.proc.add_process(10, "/system.slice/slurmstepd.scope/job_4711/step_0/user/task_0", "python")
    h.proc.add_process(11, "/system.slice/slurmstepd.scope/job_4711/step_batch/user/task_0", "bash")
    h.proc.add_process(12, "/system.slice/slurmstepd.scope/job_4712/step_0/user/task_0", "python")
    h.proc.add_process(13, "/system.slice/sshd.service", "sshd")  # not a job: unattributed
    h.sampler.sample()
    h.step({10: 100, 11: 20, 12: 60, 13: 100}, gpu=[(12, 90)])
    assert h.groups("cpu") == pytest.approx({"4711": 40.0 * 120 / 400, "4712": 40.0 * 60 / 400})
    assert h.groups("gpu") == pytest.approx({"4712": 250.0 * 0.9})


def test_no_pid_label_and_no_crash_when_proc_is_unreadable(host: MakeHost, tmp_path: Path) -> None:
    h = host()
    h.proc.add_process(10, comm="python")
    h.sampler.sample()
    h.step({10: 40})
    assert all("10" not in labels for labels in h.ledger.series(GROUP_ENERGY))
    (tmp_path / "proc").rename(tmp_path / "proc-gone")
    h.step({})
    up = attribution_families(h.attributor.health())[0]
    assert up.samples[0].labels == {"source": "procfs"} and up.samples[0].value == 0.0


def test_processes_an_unreadable_stat_carries_over(host: MakeHost, tmp_path: Path) -> None:
    h = host()
    h.proc.add_process(10, comm="train")
    h.sampler.sample()
    h.step({10: 100})
    (tmp_path / "proc" / "10" / "stat").write_text("10 (train")  # a torn read
    h.step({})
    h.proc.advance_process(10, 200)  # rewrites stat: 200 ticks since the last good read
    h.step({})
    assert h.groups("cpu") == pytest.approx({"train": 40.0 * 100 / 400 + 40.0 * 200 / 400})
    assert h.attributor.cpu_time.rejected["unreadable"] == 1
