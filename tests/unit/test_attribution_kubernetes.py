"""Kubernetes attribution in-process: the real sampler, accountant and ledger on a fake clock, the real
RAPL meter on a powercap tree, the real NVML meter on the fake libnvidia-ml, and real servers for the API
server (HTTP) and the kubelet pod-resources API (gRPC on a unix socket)."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from footprint import config
from footprint.accounting.accountant import (
    EMISSIONS,
    ENERGY,
    NODE_ENERGY,
    PENDING_EMISSIONS,
    PENDING_ENERGY,
    UNATTRIBUTED_EMISSIONS,
    UNATTRIBUTED_ENERGY,
    WORKLOAD_EMISSIONS,
    WORKLOAD_ENERGY,
    Accountant,
    AttributionWindow,
)
from footprint.accounting.ledger import Ledger
from footprint.attribution import factory, kubernetes
from footprint.attribution.apiserver import ApiServerClient
from footprint.attribution.base import AnyConsumer, AttributionHealth, EnergyDelta, WorkloadShare
from footprint.attribution.kubernetes import KubernetesAttributor
from footprint.attribution.podresources import PodResourcesClient
from footprint.config import ConfigError, Settings
from footprint.exposition.attribution import attribution_families
from footprint.exposition.metrics import Exposition, FootprintCollector
from footprint.meters.base import Meter
from footprint.meters.registry import nvml_meter, rapl_meter
from footprint.sampler import Sampler

from tests.fakes.cgroupfs import CgroupTree, FakeProcfs, container_id
from tests.fakes.kube_apiserver import FakeApiServer, make_pod
from tests.fakes.nvml import SCENARIO_ENV, FakeGpu, FakeProcess, Scenario, preload
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer
from tests.fakes.sysfs import RaplTree
from tests.support.fixed_grid import FixedGrid
from tests.support.promtext import Series, parse, pick

CPUS = 8
WALL0 = 1_790_000_000.0
GPU0, GPU1 = "GPU-00000000-aaaa-4000-8000-000000000000", "GPU-11111111-bbbb-4000-8000-000000000000"
PYTORCHJOB = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "bert", "uid": "u", "controller": True}


class Recording:
    """Passes everything to the real attributor and keeps the shares it handed out, pass by pass, with
    the grams the window held for each device when it was split."""

    def __init__(self, inner: KubernetesAttributor) -> None:
        self.inner = inner
        self.window = AttributionWindow()  # the sampler's, set once it exists
        self.intervals: list[list[WorkloadShare]] = []
        self.deltas: list[list[EnergyDelta]] = []
        self.grams: list[dict[tuple[str, str], float]] = []
        self.seconds: list[float] = []

    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        shares = self.inner.split(deltas, seconds)
        self.deltas.append(list(deltas))
        self.intervals.append(list(shares))
        self.grams.append({k: p.grams for k, p in self.window.devices.items()})
        self.seconds.append(seconds)
        return shares

    def gone(self, now_wall: float) -> list[AnyConsumer]:
        return self.inner.gone(now_wall)

    def adopt(self, series: list[tuple[str, ...]]) -> None:
        self.inner.adopt(series)

    def health(self) -> AttributionHealth:
        return self.inner.health()

    def doctor_lines(self) -> list[str]:
        return self.inner.doctor_lines()

    def close(self) -> None:
        self.inner.close()


@dataclass
class Pod:
    name: str
    namespace: str
    uid: str
    containers: list[tuple[str, str, str]]  # name, image, container id
    labels: dict[str, str] = field(default_factory=dict)
    owners: list[dict[str, object]] = field(default_factory=list)
    gpus: dict[str, list[str]] = field(default_factory=dict)  # container -> device ids
    phase: str = "Running"


class Node:
    """One node: cgroups, /proc, RAPL, two GPUs, an API server, a kubelet socket, and the exporter core."""

    def __init__(self, tmp: Path, sock_dir: Path, **settings: Any) -> None:
        self.t = 0.0
        self.cg = CgroupTree(tmp / "cgroup")
        self.proc = FakeProcfs(tmp / "proc", cpus=CPUS)
        self.rapl = RaplTree(tmp / "sys", packages=1, dram=True)
        self.api = FakeApiServer("tok").start()
        (tmp / "token").write_text("tok\n")
        self.podres = FakePodResourcesServer(sock_dir / "kubelet.sock").start()
        self.scenario_path = tmp / "scenario"
        self.scenario = Scenario(gpus=[FakeGpu(uuid=GPU0, power=[(0.0, 300.0)]),
                                       FakeGpu(uuid=GPU1, power=[(0.0, 200.0)])], time=0.0)
        self.scenario.write(self.scenario_path)
        settings.setdefault("attribution_interval", 0.0)  # every sample, unless a test says otherwise
        self.settings = Settings(
            path_cgroup=str(tmp / "cgroup"), path_procfs=str(tmp / "proc"), path_sysfs=str(tmp / "sys"),
            kubernetes_enabled=True, kubernetes_node_name="node-1", kubernetes_api_url=self.api.url,
            kubernetes_token_file=str(tmp / "token"), kubernetes_pod_resources_socket=str(sock_dir / "kubelet.sock"),
            **settings,
        )
        self.nvml = nvml_meter(self.settings, clock=lambda: self.t)
        self.meters: list[Meter] = [rapl_meter(self.settings), self.nvml]
        s = self.settings
        self.attributor = KubernetesAttributor(
            s, list(self.meters),
            ApiServerClient(s.kubernetes_api_url, "node-1", s.kubernetes_token_file, ""),
            PodResourcesClient(s.kubernetes_pod_resources_socket),
        )
        self.recording = Recording(self.attributor)
        self.ledger = Ledger()
        self.grid = FixedGrid(300.0)
        self.intensities: list[float] = []
        self.samples = 0  # on_sample calls
        self.sampler = Sampler(self.meters, self.ledger, Accountant(s), self.grid, 1.0, attributor=self.recording,
                               clock=lambda: self.t, wall=lambda: WALL0 + self.t, on_sample=self._sampled,
                               attribution_interval=s.attribution_interval)
        assert self.sampler.window is not None
        self.recording.window = self.sampler.window
        self.pods: dict[str, Pod] = {}
        self.sampler.sample()  # baseline

    def _sampled(self) -> None:
        self.samples += 1

    def close(self) -> None:
        self.attributor.close()
        self.nvml.close()
        self.api.stop()
        self.podres.stop()

    # --- the cluster ---

    def publish(self) -> None:
        self.api.set_pods([make_pod(p.name, p.namespace, p.uid, "node-1", p.containers, p.labels, p.owners, p.phase)
                           for p in self.pods.values()])
        self.podres.set_pods([
            FakePodResources(p.name, p.namespace, [FakeContainer(c, [("nvidia.com/gpu", ids)]) for c, ids in
                                                   p.gpus.items()])
            for p in self.pods.values() if p.phase == "Running"
        ])

    def start_pod(self, pod: Pod, refresh: bool = True) -> None:
        self.pods[pod.name] = pod
        for _, _, cid in pod.containers:
            self.cg.add_container(pod.uid, cid)
        self.publish()
        if refresh:
            self.attributor.refresh()

    def end_pod(self, name: str, refresh: bool = True) -> None:
        pod = self.pods.pop(name)
        for _, _, cid in pod.containers:
            self.cg.remove_container(cid)
        self.publish()
        if refresh:
            self.attributor.refresh()

    def gpu_processes(self, index: int, procs: Sequence[tuple[int, int]]) -> None:
        """(pid, SM %) on GPU `index`."""
        self.scenario.gpus[index].processes = [FakeProcess(pid, sm) for pid, sm in procs]

    # --- time ---

    def step(self, usage: dict[str, float] | None = None, cpu_watts: float = 100.0, dram_watts: float = 20.0,
             intensity: float | None = None) -> None:
        """One second: containers use `usage` CPU-seconds, RAPL draws the given watts, GPUs their power."""
        self.t += 1.0
        self.scenario.time = self.t
        self.scenario.write(self.scenario_path)
        self.rapl.advance("intel-rapl:0", round(cpu_watts * 1e6))
        self.rapl.advance("intel-rapl:0:1", round(dram_watts * 1e6))
        for cid, seconds in (usage or {}).items():
            self.cg.advance(cid, round(seconds * 1e6))
        if intensity is not None:
            self.grid.value = intensity
        self.intensities.append(self.grid.value)
        self.sampler.sample()

    # --- what the ledger says ---

    def device_joules(self, component: str, device: str) -> float:
        return sum(v for k, v in self.ledger.series(ENERGY).items() if k[:2] == (component, device))

    def workload(self, pod: str, component: str, container: str | None = None) -> float:
        return sum(v for k, v in self.ledger.series(WORKLOAD_ENERGY).items()
                   if k[1] == pod and k[4] == component and (container is None or k[2] == container))

    def unattributed(self, component: str, device: str) -> float:
        return self.ledger.get(UNATTRIBUTED_ENERGY, (component, device))

    def pending(self, component: str, device: str) -> tuple[float, float]:
        """(joules, grams) drawn since the last attribution pass, as the gauges show them."""
        with self.ledger.lock:
            series = self.sampler.pending()
        return series[PENDING_ENERGY].get((component, device), 0.0), series[PENDING_EMISSIONS].get(
            (component, device), 0.0)

    def handed_out(self) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = defaultdict(float)
        for shares in self.recording.intervals:
            for s in shares:
                out[(s.component, s.device)] += s.joules
        return out


MakeNode = Callable[..., Node]


@pytest.fixture(scope="module", autouse=True)
def _fake_nvml() -> None:
    preload()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fp-") as d:  # unix socket paths must stay under 108 bytes
        yield Path(d)


@pytest.fixture
def make_node(tmp_path: Path, sock_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeNode]:
    monkeypatch.setenv(SCENARIO_ENV, str(tmp_path / "scenario"))
    nodes: list[Node] = []

    def make(**settings: object) -> Node:
        node = Node(tmp_path, sock_dir, **settings)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.close()


def uid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-000000000000"


def training_pod(gpu: str = GPU0) -> Pod:
    return Pod("bert-master-0", "ml", uid(1),
               [("pytorch", "pytorch/pytorch:2.4", container_id(11)), ("logger", "fluent-bit", container_id(12))],
               owners=[PYTORCHJOB], gpus={"pytorch": [gpu]})


def inference_pod(name: str = "llm-0", n: int = 2, gpu: str = GPU1) -> Pod:
    return Pod(name, "serve", uid(n), [("vllm", "vllm/vllm-openai:v0.6.3", container_id(20 + n))],
               gpus={"vllm": [f"{gpu}::{n}"]})  # time-slicing replica


def cpu_pod(name: str = "web-0", n: int = 3) -> Pod:
    return Pod(name, "shop", uid(n), [("app", "nginx:1.27", container_id(30 + n))])


def assert_conserved(node: Node) -> None:
    """Per device: shares + unattributed + pending == device joules; grams likewise (a share's grams are
    its part of the window's joules times the window's grams; with a pass every sample, exactly that
    sample's intensity); nothing handed out past a delta."""
    rec = node.recording
    for deltas, shares in zip(rec.deltas, rec.intervals, strict=True):
        given: dict[tuple[str, str], float] = defaultdict(float)
        for s in shares:
            given[(s.component, s.device)] += s.joules
        for d in deltas:
            assert given[(d.component, d.device)] <= d.joules
    handed = node.handed_out()
    readings = {(k[0], k[1]) for k in node.ledger.series(ENERGY)}
    assert readings
    if node.sampler.attribution_interval == 0:  # one pass per sample: the grams of each at its own intensity
        assert len(rec.intervals) == len(node.intensities) + 1
        for deltas, window, value in zip(rec.deltas[1:], rec.grams[1:], node.intensities, strict=True):
            for d in deltas:
                assert window[(d.component, d.device)] == pytest.approx(d.joules * value / 3.6e6, rel=1e-12)
    grams_handed: dict[tuple[str, str], float] = defaultdict(float)
    for deltas, shares, window in zip(rec.deltas, rec.intervals, rec.grams, strict=True):
        joules = {(d.component, d.device): d.joules for d in deltas}
        for s in shares:
            key = (s.component, s.device)
            grams_handed[key] += s.joules / joules[key] * window[key]
    for key in readings:
        device = node.device_joules(*key)
        pending_j, pending_g = node.pending(*key)
        assert handed[key] + node.unattributed(*key) + pending_j == pytest.approx(device, rel=1e-9, abs=1e-9), key
        grams = node.ledger.get(EMISSIONS, key)
        assert grams_handed[key] + node.ledger.get(UNATTRIBUTED_EMISSIONS, key) + pending_g == pytest.approx(
            grams, rel=1e-9, abs=1e-12), key


# --- the rules -------------------------------------------------------------------------------------


def test_exclusive_gpu_goes_wholly_to_its_pod_and_a_pod_without_gpu_gets_none(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(training_pod())
    node.start_pod(cpu_pod())
    node.gpu_processes(0, [(1001, 40)])  # utilisation does not matter for an exclusive GPU
    for _ in range(3):
        node.step({container_id(11): 2.0, container_id(12): 0.4, container_id(33): 1.0})
    assert node.device_joules("gpu", "0") == pytest.approx(900.0)
    assert node.workload("bert-master-0", "gpu", "pytorch") == node.device_joules("gpu", "0")
    assert node.unattributed("gpu", "0") == 0.0
    assert node.workload("bert-master-0", "gpu", "logger") == 0.0
    assert node.workload("web-0", "gpu") == 0.0
    assert not [k for k in node.ledger.series(WORKLOAD_ENERGY) if k[1] == "web-0" and k[4] == "gpu"]
    assert node.unattributed("gpu", "1") == node.device_joules("gpu", "1")  # nobody on GPU 1
    assert_conserved(node)


def test_cpu_and_dram_follow_cpu_time_over_capacity_and_idle_stays_unattributed(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(training_pod())
    node.start_pod(cpu_pod())
    for _ in range(4):
        node.step({container_id(11): 2.0, container_id(12): 0.4, container_id(33): 1.0}, cpu_watts=80.0)
    # 8 CPUs x 1 s: 2 CPU-seconds is a quarter of the package's energy, and of the DRAM's.
    assert node.workload("bert-master-0", "cpu", "pytorch") == pytest.approx(4 * 80.0 * 2.0 / CPUS, rel=1e-9)
    assert node.workload("bert-master-0", "dram", "pytorch") == pytest.approx(4 * 20.0 * 2.0 / CPUS, rel=1e-9)
    assert node.workload("bert-master-0", "cpu", "logger") == pytest.approx(4 * 80.0 * 0.4 / CPUS, rel=1e-9)
    assert node.workload("web-0", "cpu", "app") == pytest.approx(4 * 80.0 * 1.0 / CPUS, rel=1e-9)
    assert node.unattributed("cpu", "package-0") == pytest.approx(4 * 80.0 * (CPUS - 3.4) / CPUS, rel=1e-9)
    labels = {k[:4] for k in node.ledger.series(WORKLOAD_ENERGY)}
    assert ("ml", "bert-master-0", "pytorch", "training") in labels  # PyTorchJob owner
    assert ("shop", "web-0", "app", "unknown") in labels
    assert_conserved(node)


def test_time_sliced_gpu_is_split_by_process_utilisation(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(inference_pod("llm-0", 2))
    node.start_pod(inference_pod("llm-1", 3))
    node.proc.add_process(2001, node.cg.cgroup_path(container_id(22)), "python3")
    node.proc.add_process(3001, node.cg.cgroup_path(container_id(23)), "python3")
    node.proc.add_process(4001, "/system.slice/dcgm.service", "nv-hostengine")  # not a pod: unattributed
    node.gpu_processes(1, [(2001, 30), (3001, 50), (4001, 5)])
    for _ in range(3):
        node.step()
    gpu1 = node.device_joules("gpu", "1")
    assert gpu1 == pytest.approx(600.0)
    assert node.workload("llm-0", "gpu") == pytest.approx(0.30 * gpu1, rel=1e-9)
    assert node.workload("llm-1", "gpu") == pytest.approx(0.50 * gpu1, rel=1e-9)
    assert node.unattributed("gpu", "1") == pytest.approx(0.20 * gpu1, rel=1e-6)  # idle and the daemon's 5 %
    assert {k[3] for k in node.ledger.series(WORKLOAD_ENERGY) if k[1].startswith("llm")} == {"inference"}
    assert_conserved(node)


def test_conservation_over_a_run_in_which_pods_start_and_end(make_node: MakeNode) -> None:
    node = make_node(attribution_grace_period=3600.0)
    node.start_pod(training_pod())
    node.start_pod(inference_pod("llm-0", 2))
    node.proc.add_process(1001, node.cg.cgroup_path(container_id(11)), "python")
    node.proc.add_process(2001, node.cg.cgroup_path(container_id(22)), "python3")
    node.gpu_processes(0, [(1001, 90)])
    node.gpu_processes(1, [(2001, 35)])
    busy = {container_id(11): 3.0, container_id(12): 0.2, container_id(22): 1.5}
    for i in range(3):
        node.step(busy, cpu_watts=90.0 + i, intensity=250.0 + 10 * i)
    # A CPU pod and a second inference replica start; the second shares GPU 1.
    node.start_pod(cpu_pod())
    node.start_pod(inference_pod("llm-1", 4))
    node.proc.add_process(4001, node.cg.cgroup_path(container_id(24)), "python3")
    node.gpu_processes(1, [(2001, 35), (4001, 45)])
    busy |= {container_id(33): 0.7, container_id(24): 2.5}
    for i in range(3):
        node.step(busy, cpu_watts=120.0, intensity=410.0 - 30 * i)
    # Training ends: its GPU is free; llm-0 ends too.
    node.end_pod("bert-master-0")
    node.end_pod("llm-0")
    node.proc.remove_process(1001)
    node.proc.remove_process(2001)
    node.gpu_processes(0, [])
    node.gpu_processes(1, [(4001, 60)])
    busy = {container_id(33): 0.7, container_id(24): 2.5}
    for i in range(3):
        node.step(busy, cpu_watts=70.0, intensity=180.0 + i)
    assert_conserved(node)
    # Per component from the ledger alone (nothing has left yet: long grace period).
    for component in ("cpu", "dram", "gpu"):
        total = sum(v for k, v in node.ledger.series(ENERGY).items() if k[0] == component)
        workloads = sum(v for k, v in node.ledger.series(WORKLOAD_ENERGY).items() if k[4] == component)
        idle = sum(v for k, v in node.ledger.series(UNATTRIBUTED_ENERGY).items() if k[0] == component)
        assert workloads + idle == pytest.approx(total, rel=1e-9)
    grams = sum(node.ledger.series(EMISSIONS).values())
    assert sum(node.ledger.series(WORKLOAD_EMISSIONS).values()) + sum(
        node.ledger.series(UNATTRIBUTED_EMISSIONS).values()) == pytest.approx(grams, rel=1e-9)
    # Each pod got energy only while it ran: bert's GPU 0 for six seconds, then GPU 0 was idle.
    assert node.workload("bert-master-0", "gpu") == pytest.approx(1800.0)
    assert node.unattributed("gpu", "0") == pytest.approx(900.0)
    assert node.workload("llm-1", "gpu") == pytest.approx(200.0 * (3 * 0.45 + 3 * 0.60), rel=1e-9)
    assert node.ledger.get(NODE_ENERGY) == pytest.approx(sum(node.ledger.series(ENERGY).values()), rel=1e-12)


# --- attribution on its own cadence (--attribution.interval) --------------------------------------


def test_a_window_of_samples_at_changing_intensity_conserves_at_every_sample(make_node: MakeNode) -> None:
    node = make_node(attribution_interval=3.0)
    node.start_pod(training_pod())  # GPU 0 exclusively; its containers use no CPU
    node.start_pod(cpu_pod())
    assert node.recording.seconds == [0.0]  # the first sample opened the window (the attributor's baseline)
    cpu_watts, intensities = (60.0, 150.0, 90.0), (100.0, 500.0, 250.0)
    gpu_grams = cpu_grams = 0.0
    for i, (watts, value) in enumerate(zip(cpu_watts, intensities, strict=True)):
        node.step({container_id(33): 2.0}, cpu_watts=watts, intensity=value)
        gpu_grams += 300.0 * value / 3.6e6
        cpu_grams += watts * value / 3.6e6
        assert_conserved(node)  # with pending, at every sample
        if i < 2:  # the window is open: nothing attributed yet, all of it pending
            assert len(node.recording.intervals) == 1
            assert node.workload("bert-master-0", "gpu") == 0.0
            assert node.pending("gpu", "0") == pytest.approx((300.0 * (i + 1), gpu_grams), rel=1e-12)
            assert node.pending("cpu", "package-0")[1] == pytest.approx(cpu_grams, rel=1e-12)
            # The sum a scrape would check: workloads + unattributed + pending == device, in grams.
            with node.ledger.lock:
                pending = node.sampler.pending()
            assert sum(node.ledger.series(WORKLOAD_EMISSIONS).values()) + sum(
                node.ledger.series(UNATTRIBUTED_EMISSIONS).values()) + sum(
                pending[PENDING_EMISSIONS].values()) == pytest.approx(
                sum(node.ledger.series(EMISSIONS).values()), rel=1e-12)
    # Three samples: one pass over the window, CPU time and energy over the same three seconds.
    assert node.recording.seconds == [0.0, 3.0]
    assert node.pending("gpu", "0") == (0.0, 0.0) and node.pending("cpu", "package-0") == (0.0, 0.0)
    assert node.workload("bert-master-0", "gpu") == pytest.approx(900.0)
    # 2 CPU-seconds of 8 every second: a quarter of the package's joules, and a quarter of its grams,
    # each sample's grams at its own intensity (not the window's joules at the last or mean intensity).
    assert node.workload("web-0", "cpu") == pytest.approx(sum(cpu_watts) / 4, rel=1e-9)
    bert_grams = node.ledger.get(WORKLOAD_EMISSIONS, ("ml", "bert-master-0", "pytorch", "training"))
    assert bert_grams == pytest.approx(gpu_grams, rel=1e-12)
    web = node.ledger.get(WORKLOAD_EMISSIONS, ("shop", "web-0", "app", "unknown"))
    dram_grams = sum(20.0 * v / 3.6e6 for v in intensities)
    assert web == pytest.approx((cpu_grams + dram_grams) / 4, rel=1e-9)
    assert web != pytest.approx(sum(cpu_watts) / 4 * intensities[-1] / 3.6e6 + 60.0 / 4 * intensities[-1] / 3.6e6)
    assert node.unattributed("gpu", "0") == 0.0
    node.step({container_id(33): 2.0}, intensity=300.0)  # the next window opens with this sample
    assert node.pending("gpu", "0") == pytest.approx((300.0, 300.0 * 300.0 / 3.6e6), rel=1e-12)
    assert_conserved(node)


def test_interval_zero_attributes_every_sample(make_node: MakeNode) -> None:
    node = make_node(attribution_interval=0.0)
    node.start_pod(cpu_pod())
    for value in (100.0, 400.0, 200.0):
        node.step({container_id(33): 2.0}, intensity=value)
        assert node.pending("cpu", "package-0") == (0.0, 0.0)
        assert node.pending("gpu", "0") == (0.0, 0.0)
    assert node.recording.seconds == [0.0, 1.0, 1.0, 1.0]
    assert node.workload("web-0", "cpu") == pytest.approx(3 * 100.0 / 4, rel=1e-9)
    web = node.ledger.get(WORKLOAD_EMISSIONS, ("shop", "web-0", "app", "unknown"))
    assert web == pytest.approx((100.0 + 20.0) / 4 * (100.0 + 400.0 + 200.0) / 3.6e6, rel=1e-9)
    assert_conserved(node)


def test_the_default_interval_is_5s_and_a_negative_one_is_refused() -> None:
    assert config.load([], env={}).attribution_interval == 5.0
    assert config.load(["--attribution.interval=0"], env={}).attribution_interval == 0.0
    assert config.load([], env={"FOOTPRINT_ATTRIBUTION_INTERVAL": "15s"}).attribution_interval == 15.0
    with pytest.raises(ConfigError, match=r"^attribution\.interval: "):
        config.load(["--attribution.interval=-1"], env={})


def test_stop_attributes_the_open_window_before_the_final_checkpoint(make_node: MakeNode) -> None:
    node = make_node(attribution_interval=60.0)
    node.start_pod(training_pod())
    node.step()
    node.step()
    samples = node.samples
    assert node.pending("gpu", "0")[0] == pytest.approx(600.0)
    node.t += 0.5  # stopped half a sample later
    node.sampler.stop()
    assert node.pending("gpu", "0") == (0.0, 0.0)
    assert node.workload("bert-master-0", "gpu") == pytest.approx(600.0)
    assert node.recording.seconds[-1] == 2.5
    assert node.samples == samples + 1  # on_sample: the checkpoint takes its copy after the pass
    assert_conserved(node)
    node.sampler.stop()  # nothing pending: no second pass
    assert len(node.recording.intervals) == 2


def test_a_scrape_sees_pending_consistent_with_the_counters(make_node: MakeNode) -> None:
    node = make_node(attribution_interval=10.0)
    node.start_pod(training_pod())
    node.start_pod(cpu_pod())
    exposition = Exposition(FootprintCollector(node.sampler, 1.0))
    for step in range(12):  # one pass at 10 s; pending before and after it
        node.step({container_id(33): 1.5}, cpu_watts=50.0 + 10 * step, intensity=100.0 + 37.0 * step)
        exposition.invalidate()  # what the exporter's on_sample does
        for openmetrics in (False, True):
            body = exposition.render(openmetrics).decode()
            s = parse(body, openmetrics)
            for component, device in (("gpu", "0"), ("gpu", "1"), ("cpu", "package-0"), ("dram", "dram")):
                device_j = _sum(s, "footprint_energy_joules_total", component=component, device=device)
                pending_j = _sum(s, PENDING_ENERGY, component=component, device=device)
                idle_j = _sum(s, "footprint_unattributed_energy_joules_total", component=component, device=device)
                handed = node.handed_out()[(component, device)]
                assert handed + idle_j + pending_j == pytest.approx(device_j, rel=1e-9), (step, component)
            grams = _sum(s, "footprint_emissions_grams_total")
            assert _sum(s, "footprint_workload_emissions_grams_total") + _sum(
                s, "footprint_unattributed_emissions_grams_total") + _sum(s, PENDING_EMISSIONS) == pytest.approx(
                grams, rel=1e-9), step
            workload_j = _sum(s, "footprint_workload_energy_joules_total", component="gpu")
            assert workload_j == (0.0 if step < 9 else pytest.approx(node.device_joules("gpu", "0")
                                                                       - _sum(s, PENDING_ENERGY, device="0")))


def _sum(s: Series, name: str, **labels: str) -> float:
    return sum(pick(s, name, **labels).values())


def test_deleted_pods_leave_at_the_pass_after_their_grace_period(make_node: MakeNode) -> None:
    node = make_node(attribution_interval=2.0, attribution_grace_period=1.0)
    node.start_pod(cpu_pod())
    node.start_pod(cpu_pod("web-1", 4))
    for _ in range(2):
        node.step({container_id(33): 1.0, container_id(34): 1.0})
    node.end_pod("web-0")
    node.step({container_id(34): 1.0})
    node.step({container_id(34): 1.0})  # a pass: web-0 is seen gone (grace starts)
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-0", "web-1"}
    node.step({container_id(34): 1.0})
    node.step({container_id(34): 1.0})  # the next pass: its grace has ended
    assert {k[1] for k in node.ledger.series(WORKLOAD_ENERGY)} == {"web-1"}
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-1"}


# --- series lifecycle ------------------------------------------------------------------------------


def test_series_of_a_deleted_pod_leave_after_the_grace_period(make_node: MakeNode) -> None:
    node = make_node(attribution_grace_period=1.5)
    node.start_pod(cpu_pod())
    node.start_pod(cpu_pod("web-1", 4))
    node.step({container_id(33): 1.0, container_id(34): 1.0})
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-0", "web-1"}
    node.end_pod("web-0")
    node.step({container_id(34): 1.0})
    node.step({container_id(34): 1.0})
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-0", "web-1"}  # within grace
    node.step({container_id(34): 1.0})
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-1"}
    assert {k[1] for k in node.ledger.series(WORKLOAD_ENERGY)} == {"web-1"}


def test_finished_pods_leave_too_while_the_api_still_lists_them(make_node: MakeNode) -> None:
    node = make_node(attribution_grace_period=0.0)
    node.start_pod(cpu_pod())
    node.step({container_id(33): 1.0})
    node.pods["web-0"].phase = "Succeeded"
    node.publish()
    node.attributor.refresh()
    node.step()
    assert not node.ledger.series(WORKLOAD_ENERGY)


def test_cap_on_series_drops_and_counts_and_the_rest_stays_unattributed(make_node: MakeNode) -> None:
    node = make_node(attribution_max_series=3)
    node.start_pod(cpu_pod("web-0", 3))
    node.start_pod(cpu_pod("web-1", 4))
    node.step({container_id(33): 1.0, container_id(34): 1.0})
    node.step({container_id(33): 1.0, container_id(34): 1.0})
    series = node.ledger.series(WORKLOAD_ENERGY)
    assert len(series) == 3  # 2 pods x (cpu, dram) = 4 wanted
    dropped = {m.name: m for m in attribution_families(node.attributor.health())}["footprint_workload_series_dropped"]
    assert dropped.samples[0].value == 1.0  # counted once, not once per interval
    assert_conserved(node)


def test_health_metrics(make_node: MakeNode) -> None:
    node = make_node()
    node.attributor.refresh()
    node.step()
    families = {m.name: m for m in attribution_families(node.attributor.health())}
    up = {s.labels["source"]: s.value for s in families["footprint_attribution_source_up"].samples}
    assert up == {"apiserver": 1.0, "podresources": 1.0, "cgroup": 1.0}
    assert "footprint_attribution_consumers" in families


def test_a_source_reads_up_only_once_its_listing_is_in_use(make_node: MakeNode,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A scrape that sees both sources up can count on the listed pods being attributed (the SIGTERM test
    of tests/integration relies on it): the snapshot is published before the up flags."""
    node = make_node()
    node.start_pod(cpu_pod("web-0", 3), refresh=False)
    attributor = node.attributor
    seen: list[tuple[tuple[bool | None, bool | None], bool]] = []
    real_build = kubernetes.build_snapshot

    def build(*args: Any) -> kubernetes.PodIndex:
        seen.append(((attributor.up["apiserver"], attributor.up["podresources"]),
                     bool(attributor.snapshot.by_container_id)))
        return real_build(*args)

    monkeypatch.setattr(kubernetes, "build_snapshot", build)
    attributor.refresh()
    assert seen == [((None, None), False)]  # not up while the snapshot in use is the empty one
    assert attributor.up["apiserver"] and attributor.up["podresources"]
    assert container_id(33) in attributor.snapshot.by_container_id


# --- faults ----------------------------------------------------------------------------------------


def test_api_server_down_keeps_known_pods_and_leaves_new_ones_unattributed(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(cpu_pod("web-0", 3))
    node.step({container_id(33): 2.0})
    node.api.stop()
    node.start_pod(cpu_pod("web-1", 4))  # its refresh fails: the API server is down
    idle_before = node.unattributed("cpu", "package-0")
    node.step({container_id(33): 2.0, container_id(34): 4.0})
    assert node.unattributed("cpu", "package-0") - idle_before == pytest.approx(100.0 * (CPUS - 2.0) / CPUS)
    assert node.workload("web-1", "cpu") == 0.0
    assert node.workload("web-0", "cpu") == pytest.approx(2 * 100.0 * 2.0 / CPUS)
    up_family = attribution_families(node.attributor.health())[0]
    assert {s.labels["source"]: s.value for s in up_family.samples}["apiserver"] == 0.0
    node.api.start()  # back on the same port
    node.attributor.refresh()
    node.step({container_id(33): 2.0, container_id(34): 4.0})
    assert node.workload("web-1", "cpu") == pytest.approx(100.0 * 4.0 / CPUS)
    assert node.ledger.get(NODE_ENERGY) == pytest.approx(sum(node.ledger.series(ENERGY).values()), rel=1e-12)
    assert_conserved(node)


def test_pod_resources_socket_missing_falls_back_to_the_process_split(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(training_pod())
    node.proc.add_process(1001, node.cg.cgroup_path(container_id(11)), "python")
    node.gpu_processes(0, [(1001, 60)])
    node.step()
    assert node.unattributed("gpu", "0") == 0.0
    node.podres.stop()  # the socket file is gone
    node.attributor.refresh()
    node.step()
    assert node.workload("bert-master-0", "gpu") == pytest.approx(300.0 + 0.6 * 300.0)
    assert node.unattributed("gpu", "0") == pytest.approx(0.4 * 300.0)
    up = {s.labels["source"]: s.value for s in next(iter(attribution_families(node.attributor.health()))).samples}
    assert up["podresources"] == 0.0 and up["apiserver"] == 1.0
    assert node.device_joules("gpu", "0") == pytest.approx(600.0)
    assert_conserved(node)


def test_a_cgroup_vanishing_mid_read_loses_only_that_interval(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(cpu_pod("web-0", 3))
    node.start_pod(cpu_pod("web-1", 4))
    node.step({container_id(33): 1.0, container_id(34): 1.0})
    # The scan sees the directory, but cpu.stat is gone by the time it is read.
    (node.cg.paths[container_id(34)] / "cpu.stat").unlink()
    node.step({container_id(33): 1.0})
    assert node.workload("web-1", "cpu") == pytest.approx(100.0 / CPUS)
    assert node.workload("web-0", "cpu") == pytest.approx(2 * 100.0 / CPUS)
    # The whole directory goes (the container stopped) while its pod is still listed.
    node.cg.remove_container(container_id(34))
    node.step({container_id(33): 1.0})
    assert node.workload("web-1", "cpu") == pytest.approx(100.0 / CPUS)
    assert node.ledger.get(NODE_ENERGY) == pytest.approx(3 * (100.0 + 20.0 + 300.0 + 200.0))
    assert_conserved(node)


def test_a_container_restarted_in_its_pod_is_read_once_the_api_server_lists_it(make_node: MakeNode) -> None:
    """A restart between two passes removes one cgroup and makes another in the pod's directory, so its
    link count stands and the scan would keep the old container (cgroups.ContainerScan): the API server
    listing an id the scan did not find sends it through every directory, in that same pass."""
    node = make_node()
    pod = cpu_pod("web-0", 3)
    node.start_pod(pod)
    node.step({container_id(33): 1.0})
    node.cg.remove_container(container_id(33))
    node.cg.add_container(pod.uid, container_id(43))
    pod.containers = [("app", "nginx:1.27", container_id(43))]
    node.publish()
    node.attributor.refresh()
    node.step({container_id(43): 1.0})
    assert node.workload("web-0", "cpu") == pytest.approx(2 * 100.0 / CPUS)
    assert_conserved(node)


def test_kubernetes_a_pass_without_usage_usec_carries_the_container_over(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(cpu_pod("web-0", 3))
    node.start_pod(cpu_pod("web-1", 4))
    a, b = container_id(33), container_id(34)
    node.step({a: 1.0, b: 1.0})
    node.cg.write_stat(b, "user_usec 1\nsystem_usec 1\n")
    node.step({a: 1.0})  # web-1 used 1 s too, unseen (advance() rewrites the file: keep it broken)
    node.cg.usage[b] += 1_000_000
    assert node.workload("web-1", "cpu") == pytest.approx(100.0 / CPUS)
    node.step({a: 1.0, b: 1.0})  # readable again: two seconds since the last good value
    assert node.workload("web-1", "cpu") == pytest.approx(100.0 / CPUS + 2 * 100.0 / CPUS)
    assert node.workload("web-0", "cpu") == pytest.approx(3 * 100.0 / CPUS)
    assert node.attributor.cpu_time.rejected["unreadable"] == 1


@pytest.mark.parametrize("garbage", ["usage_usec 12x\n", "usage_usec -5\n", "usage_usec 9", ""])
def test_kubernetes_garbled_usage_is_unreadable_not_zero(make_node: MakeNode, garbage: str) -> None:
    node = make_node()
    node.start_pod(cpu_pod("web-0", 3))
    a = container_id(33)
    node.step({a: 1.0})
    node.cg.write_stat(a, garbage)
    node.step()
    node.cg.advance(a, 500_000)
    node.step()
    assert node.workload("web-0", "cpu") == pytest.approx(1.5 * 100.0 / CPUS)


def test_no_kubepods_cgroups_at_all_is_reported_and_survived(make_node: MakeNode) -> None:
    node = make_node()
    node.start_pod(cpu_pod())
    shutil.rmtree(node.cg.root / "kubepods.slice")
    node.step()
    node.step()
    up = {s.labels["source"]: s.value for s in next(iter(attribution_families(node.attributor.health()))).samples}
    assert up["cgroup"] == 0.0
    assert node.unattributed("cpu", "package-0") == pytest.approx(200.0)


# --- wiring ----------------------------------------------------------------------------------------


def test_factory_refreshes_in_the_background_and_early_for_new_containers(make_node: MakeNode) -> None:
    node = make_node(kubernetes_refresh_interval=3600.0)
    attributor = factory.build(node.settings, node.meters, env={})
    assert isinstance(attributor, KubernetesAttributor)
    try:
        _wait(lambda: attributor.up["apiserver"] is True)
        attributor.split([], 0.0)  # baseline scan
        node.start_pod(cpu_pod(), refresh=False)  # only the attributor's own thread may notice it
        node.cg.advance(container_id(33), 1_000_000)
        delta = [EnergyDelta("cpu", "package-0", 80.0)]
        attributor.split(delta, 1.0)  # an unknown container: asks for an early refresh

        def attributed() -> bool:
            node.cg.advance(container_id(33), 1_000_000)
            return bool(attributor.split(delta, 1.0))

        _wait(attributed)
        assert len(node.api.requests) <= 3  # initial list, the early one (and at most one more)
    finally:
        attributor.close()


def test_factory_needs_a_node_name_and_an_api_server(make_node: MakeNode) -> None:
    node = make_node()
    with pytest.raises(ConfigError, match=r"^kubernetes\.node-name:"):
        factory.build(replace(node.settings, kubernetes_node_name=""), node.meters, env={})
    with pytest.raises(ConfigError, match=r"^kubernetes\.api-url:"):
        factory.build(replace(node.settings, kubernetes_api_url=""), node.meters, env={})
    assert factory.api_url(replace(node.settings, kubernetes_api_url=""),
                           {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}) == (
        "https://[fd00::1]:6443")
    assert factory.build(replace(node.settings, kubernetes_enabled=False), node.meters) is None


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_series_restored_from_a_checkpoint_count_toward_the_cap_and_leave_when_gone(make_node: MakeNode) -> None:
    node = make_node(attribution_grace_period=1.0, attribution_max_series=3)
    restored = [("shop", "web-0", "app", "unknown", "cpu"), ("old", "deleted-0", "app", "unknown", "cpu"),
                ("old", "deleted-0", "app", "unknown", "dram")]
    for labels in restored:
        node.ledger.add(WORKLOAD_ENERGY, labels, 10.0, WALL0)
        node.ledger.add(WORKLOAD_EMISSIONS, labels[:4], 1.0, WALL0)
    node.attributor.adopt(restored)
    node.start_pod(cpu_pod("web-0", 3), refresh=False)
    node.api.stop()  # down at start: nothing is known to be gone, restored series stay
    node.attributor.refresh()
    for _ in range(3):
        node.step({container_id(33): 1.0})
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-0", "deleted-0"}
    assert node.workload("web-0", "dram") == 0.0  # the cap: 3 series, all restored
    node.api.start()
    node.attributor.refresh()
    node.step({container_id(33): 1.0})
    node.step({container_id(33): 1.0})
    assert {k[1] for k in node.ledger.series(WORKLOAD_EMISSIONS)} == {"web-0"}
    assert node.workload("web-0", "cpu") == pytest.approx(10.0 + 2 * 100.0 / CPUS)  # unknown while the API was down
    node.step({container_id(33): 1.0})
    assert node.workload("web-0", "dram") == pytest.approx(20.0 / CPUS)  # room again under the cap
