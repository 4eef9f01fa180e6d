"""A node's pods for the benchmarks, from the attribution engineer's fakes (tests/fakes).

A fake API server listing the pods, a kubelet pod-resources gRPC server on a unix socket giving the
first 8 containers one GPU each (exclusive, as the NVIDIA device plugin does), and a cgroup v2 tree
with every container's `cpu.stat`, advanced once a second by a thread here so each container keeps
drawing CPU time. The exporter then attributes through its real Kubernetes code path.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common import GPUS

from tests.fakes.cgroupfs import CgroupTree, container_id
from tests.fakes.kube_apiserver import FakeApiServer, make_pod
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer

NODE = "bench-node"
TOKEN = "bench-token"
CONTAINERS_PER_POD = 3


@dataclass
class Pods:
    containers: int
    flags: list[str]
    cgroups: CgroupTree
    ids: list[str]
    _stop: threading.Event
    _thread: threading.Thread | None = None

    def advance(self, usec: int = 2000) -> None:
        """Every container used `usec` of CPU since the last call."""
        for cid in self.ids:
            self.cgroups.advance(cid, usec)

    def _run(self, period: float) -> None:
        while not self._stop.wait(period):
            self.advance()

    def start_advancing(self, period: float = 1.0) -> None:
        self._thread = threading.Thread(target=self._run, args=(period,), name="cgroup-advancer", daemon=True)
        self._thread.start()

    def stop_advancing(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@contextlib.contextmanager
def pods(containers: int, gpus: int = GPUS) -> Iterator[Pods]:
    """`containers` containers in pods of three (the last pod may have fewer), on one node.

    Yields the exporter flags that point it at these fakes.
    """
    with tempfile.TemporaryDirectory(prefix="footprint-bench-pods-") as tmp:
        root = Path(tmp)
        token = root / "token"
        token.write_text(TOKEN + "\n")
        cgroups = CgroupTree(root / "cgroup")
        listed, allocations, ids = [], [], []
        n = 0
        pod_index = 0
        while n < containers:
            count = min(CONTAINERS_PER_POD, containers - n)
            names = [f"c{j}" for j in range(count)]
            cids = [container_id(n + j + 1) for j in range(count)]
            workload = "training" if pod_index % 2 == 0 else "inference"
            specs = [(name, "registry.local/app:1", cid) for name, cid in zip(names, cids, strict=True)]
            pod = make_pod(f"pod-{pod_index:04d}", namespace=f"team-{pod_index % 10}", node=NODE,
                           containers=specs, labels={"footprint.dev/workload": workload})
            uid = pod["metadata"]["uid"]
            for cid in cids:
                cgroups.add_container(uid, cid, usage_usec=1_000_000)
            fake_containers = []
            for j, name in enumerate(names):
                gpu = n + j
                devices = [("nvidia.com/gpu", [f"GPU-bench-{gpu:04d}"])] if gpu < gpus else []
                fake_containers.append(FakeContainer(name, devices=devices))
            allocations.append(FakePodResources(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                                fake_containers))
            listed.append(pod)
            ids += cids
            n += count
            pod_index += 1
        api = FakeApiServer(token=TOKEN, pods=listed).start()
        kubelet = FakePodResourcesServer(root / "kubelet.sock", allocations).start()
        flags = [
            "--kubernetes.enabled",
            f"--kubernetes.node-name={NODE}",
            f"--kubernetes.api-url={api.url}",
            f"--kubernetes.token-file={token}",
            f"--kubernetes.pod-resources-socket={root / 'kubelet.sock'}",
            f"--path.cgroup={root / 'cgroup'}",
            f"--attribution.max-series={max(5000, 4 * containers)}",
        ]
        state = Pods(containers, flags, cgroups, ids, threading.Event())
        try:
            yield state
        finally:
            state.stop_advancing()
            kubelet.stop()
            api.stop()
