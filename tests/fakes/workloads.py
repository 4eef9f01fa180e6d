"""A small fake Kubernetes node for end-to-end tests: one training pod and one inference pod, busy.

`start_fake_cluster(tmp_path)` starts the fake API server and pod-resources socket, lays out the
cgroup tree and /proc, and keeps the pods' CPU counters advancing in a background thread (training
uses TRAINING_CORES, inference INFERENCE_CORES of CPUS). It returns the exporter flags, the extra
environment and a cleanup function:

    args, env, cleanup = start_fake_cluster(tmp_path)
    try:
        with start_exporter([*args, "--sample.interval=200ms"], env=env) as exp: ...
    finally:
        cleanup()

The real behaviour of each part, and where it is learned, is in the docstrings of
kube_apiserver.py (API server), podresources_server.py (kubelet socket) and cgroupfs.py (kernel,
kubelet and runtime cgroup layout); this module only wires them into one node.

`fake_cluster(tmp_path)` is the same node with every counter still, for tests that move them by hand.

GPUs: the training pod holds TRAINING_GPU exclusively (the fake NVML's default UUID of GPU 0), and
the pods' main processes are TRAINING_PID and INFERENCE_PID, so a fake NVML scenario can put
`FakeProcess(INFERENCE_PID, sm_util)` on a shared GPU 1. Without the fake NVML, everything is CPU.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from tests.fakes.cgroupfs import CgroupTree, FakeProcfs, container_id
from tests.fakes.kube_apiserver import FakeApiServer, make_pod
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer
from tests.support.promtext import Series, parse

T = TypeVar("T")

NODE = "node-1"
CPUS = 8
TRAINING_CORES, INFERENCE_CORES = 2.0, 0.5
TRAINING_GPU = "GPU-fa4e0000-0000-4000-8000-000000000000"
TRAINING_PID, INFERENCE_PID = 4242, 4343
TRAINING = ("ml", "bert-worker-0", "pytorch")  # namespace, pod, container (workload="training")
INFERENCE = ("serving", "llama-vllm-0", "vllm")  # workload="inference"
TICK = 0.1  # seconds between counter advances


class ExporterLike(Protocol):
    def wait_until(self, predicate: Callable[[str], T | None], timeout: float = ..., interval: float = ...) -> T: ...


SAMPLES = re.compile(r"^footprint_sample_duration_seconds_count (\S+)$", re.MULTILINE)


def samples_of(text: str) -> int:
    m = SAMPLES.search(text)
    return int(float(m.group(1))) if m else -1


def next_pass(exp: ExporterLike, timeout: float = 20.0) -> Series:
    """Wait for the next sample (with --attribution.interval=0, the next attribution pass) and return
    its scrape, seen within one poll of it: a test that moves counters right then has the whole sample
    interval before the exporter reads them again."""
    before = samples_of(exp.wait_until(lambda text: text if samples_of(text) >= 0 else None, timeout))
    text = exp.wait_until(lambda text: text if samples_of(text) > before else None, timeout, 0.01)
    return parse(text)


@dataclass
class FakeCluster:
    """The parts of the fake node, for tests that move the counters by hand (`start_fake_cluster` ticks)."""

    tree: CgroupTree
    proc: FakeProcfs
    api: FakeApiServer
    podres: FakePodResourcesServer
    train_id: str
    infer_id: str
    args: list[str]
    sock_dir: Path

    def stop(self) -> None:
        self.api.stop()
        self.podres.stop()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def fake_cluster(tmp_path: Path) -> FakeCluster:
    """The node's cgroups, /proc, API server and pod-resources socket, with every counter still."""
    cgroup, procfs = tmp_path / "cgroup", tmp_path / "proc"
    tree = CgroupTree(cgroup)
    proc = FakeProcfs(procfs, cpus=CPUS)
    train_id, infer_id = container_id(0x7A1), container_id(0x1F0)
    tree.add_container("5e1a0b6c-0000-4000-8000-00000000a001", train_id)
    tree.add_container("5e1a0b6c-0000-4000-8000-00000000b002", infer_id)
    proc.add_process(TRAINING_PID, tree.cgroup_path(train_id), "python")
    proc.add_process(INFERENCE_PID, tree.cgroup_path(infer_id), "python3")
    pods = [
        make_pod(TRAINING[1], TRAINING[0], "5e1a0b6c-0000-4000-8000-00000000a001", NODE,
                 [(TRAINING[2], "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", train_id)],
                 labels={"training.kubeflow.org/job-name": "bert", "training.kubeflow.org/replica-type": "worker"},
                 owners=[{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "name": "bert",
                          "uid": "0b6c0000-0000-4000-8000-000000000001", "controller": True}]),
        make_pod(INFERENCE[1], INFERENCE[0], "5e1a0b6c-0000-4000-8000-00000000b002", NODE,
                 [(INFERENCE[2], "vllm/vllm-openai:v0.6.3", infer_id)], labels={"app": "llama"}),
    ]
    token = tmp_path / "token"
    token.write_text("fake-cluster-token\n")
    api = FakeApiServer("fake-cluster-token", pods).start()
    sock_dir = Path(tempfile.mkdtemp(prefix="fp-"))  # unix socket paths must stay under 108 bytes
    podres = FakePodResourcesServer(sock_dir / "kubelet.sock", [
        FakePodResources(TRAINING[1], TRAINING[0], [FakeContainer(TRAINING[2], [("nvidia.com/gpu", [TRAINING_GPU])])]),
        FakePodResources(INFERENCE[1], INFERENCE[0], [FakeContainer(INFERENCE[2])]),
    ]).start()
    args = [
        "--kubernetes.enabled",
        f"--kubernetes.node-name={NODE}",
        f"--kubernetes.api-url={api.url}",
        f"--kubernetes.token-file={token}",
        f"--kubernetes.pod-resources-socket={sock_dir / 'kubelet.sock'}",
        "--kubernetes.refresh-interval=1s",
        f"--path.cgroup={cgroup}",
        f"--path.procfs={procfs}",
    ]
    return FakeCluster(tree, proc, api, podres, train_id, infer_id, args, sock_dir)


def start_fake_cluster(tmp_path: Path) -> tuple[list[str], dict[str, str], Callable[[], None]]:
    cluster = fake_cluster(tmp_path)
    tree, proc = cluster.tree, cluster.proc
    stop = threading.Event()

    def tick() -> None:
        busy = TRAINING_CORES + INFERENCE_CORES
        while not stop.wait(TICK):
            tree.advance(cluster.train_id, round(TRAINING_CORES * TICK * 1e6))
            tree.advance(cluster.infer_id, round(INFERENCE_CORES * TICK * 1e6))
            proc.advance_process(TRAINING_PID, round(TRAINING_CORES * TICK * 100))
            proc.advance_process(INFERENCE_PID, round(INFERENCE_CORES * TICK * 100))
            proc.advance_cpu(round(busy * TICK * 100), round((CPUS - busy) * TICK * 100))

    thread = threading.Thread(target=tick, name="fake-cluster", daemon=True)
    thread.start()

    def cleanup() -> None:
        stop.set()
        thread.join(timeout=5)
        cluster.stop()

    return cluster.args, {}, cleanup
