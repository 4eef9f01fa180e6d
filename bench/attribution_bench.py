"""One attribution pass for 200 pods x 3 containers: what Kubernetes attribution costs per sample.

The real KubernetesAttributor on the fakes from tests/fakes: a cgroup v2 tree of 600 containers
(cri-containerd scopes, three QoS classes), the fake API server listing the 200 pods, the kubelet
pod-resources gRPC server giving 6 GPUs exclusively to 6 pods, and the real NVML meter on the fake
libnvidia-ml.so.1 with 2 time-sliced GPUs running 16 processes each (PID -> /proc/<pid>/cgroup).

Timed: `split()` (what the sampler pays every interval: scan the cgroup tree, read 600 cpu.stat
files, NVML process utilisation, PID -> container, shares), the scan and reads alone as the attributor
makes them (pod directories listed again only when changed, descriptors kept) and as a walk of every
directory with each file opened, and `refresh()` (the background thread's
API list + pod-resources List + snapshot). Between passes every container's CPU counter moves
(not timed). Prints a table and writes bench/results/attribution.json.

    .venv/bin/python bench/attribution_bench.py [--passes 200] [--out bench/results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The exporter package under test; BENCH_EXPORTER_DIR points at another tree, as for the other benchmarks.
for _p in (str(REPO), os.environ.get("BENCH_EXPORTER_DIR") or str(REPO / "exporter")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from footprint.attribution import cgroups  # noqa: E402
from footprint.attribution.apiserver import ApiServerClient  # noqa: E402
from footprint.attribution.base import EnergyDelta  # noqa: E402
from footprint.attribution.kubernetes import KubernetesAttributor  # noqa: E402
from footprint.attribution.podresources import PodResourcesClient  # noqa: E402
from footprint.config import Settings  # noqa: E402
from footprint.meters.registry import nvml_meter  # noqa: E402

from tests.fakes import nvml as fake_nvml  # noqa: E402
from tests.fakes.cgroupfs import CgroupTree, FakeProcfs, container_id  # noqa: E402
from tests.fakes.kube_apiserver import FakeApiServer, make_pod  # noqa: E402
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer  # noqa: E402

PODS, CONTAINERS, CPUS = 200, 3, 64
EXCLUSIVE, SHARED, PROCS_PER_SHARED = 6, 2, 16
QOS = ("burstable", "besteffort", "guaranteed")


def uuid(i: int) -> str:
    return f"GPU-be4c0000-0000-4000-8000-{i:012d}"


def percentiles(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max_ms": round(ordered[-1], 3),
    }


def timed(
    fn: Callable[[], object], passes: int, between: Callable[[], None] = lambda: None
) -> tuple[list[float], float]:
    """Wall milliseconds of each call, and the mean CPU milliseconds per call (this process)."""
    wall, cpu = [], 0.0
    for _ in range(passes):
        between()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu += time.process_time() - c0
    return wall, cpu / passes * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    fake_nvml.preload()
    with tempfile.TemporaryDirectory(prefix="fp-attr-") as tmp:
        root = Path(tmp)
        tree, proc = CgroupTree(root / "cgroup"), FakeProcfs(root / "proc", cpus=CPUS)
        pods, allocations, ids = [], [], []
        gpu_processes: list[list[fake_nvml.FakeProcess]] = [[] for _ in range(EXCLUSIVE + SHARED)]
        for p in range(PODS):
            names = [f"c{j}" for j in range(CONTAINERS)]
            cids = [container_id(p * CONTAINERS + j + 1) for j in range(CONTAINERS)]
            pod = make_pod(f"pod-{p:04d}", f"team-{p % 10}", f"{p:08d}-0000-4000-8000-000000000000", "bench-node",
                           [(n, "registry.local/app:1", c) for n, c in zip(names, cids, strict=True)],
                           labels={"footprint.dev/workload": ("training", "inference")[p % 2]})
            pods.append(pod)
            for j, cid in enumerate(cids):
                tree.add_container(pod["metadata"]["uid"], cid, qos=QOS[p % 3], usage_usec=1_000_000)
                if j == 0 and p >= EXCLUSIVE and p < EXCLUSIVE + SHARED * PROCS_PER_SHARED:
                    pid = 10_000 + p
                    proc.add_process(pid, tree.cgroup_path(cid), "python")
                    gpu_processes[EXCLUSIVE + (p - EXCLUSIVE) // PROCS_PER_SHARED].append(
                        fake_nvml.FakeProcess(pid, sm_util=5))
            ids += cids
            devices = [("nvidia.com/gpu", [uuid(p)])] if p < EXCLUSIVE else []
            allocations.append(FakePodResources(pod["metadata"]["name"], pod["metadata"]["namespace"],
                                                [FakeContainer(names[0], devices)]))
        scenario = root / "scenario"
        fake_nvml.Scenario(gpus=[fake_nvml.FakeGpu(uuid=uuid(i), processes=gpu_processes[i])
                                 for i in range(EXCLUSIVE + SHARED)], time=None).write(scenario)
        os.environ[fake_nvml.SCENARIO_ENV] = str(scenario)
        (root / "token").write_text("t\n")
        api = FakeApiServer("t", pods).start()
        kubelet = FakePodResourcesServer(root / "kubelet.sock", allocations).start()
        settings = Settings(path_cgroup=str(root / "cgroup"), path_procfs=str(root / "proc"), kubernetes_enabled=True)
        nvml = nvml_meter(settings)
        attributor = KubernetesAttributor(
            settings, [nvml], ApiServerClient(api.url, "bench-node", str(root / "token"), ""),
            PodResourcesClient(str(root / "kubelet.sock")),
        )
        try:
            attributor.refresh()
            assert len(attributor.snapshot.by_container_id) == PODS * CONTAINERS
            deltas = [EnergyDelta("cpu", f"package-{i}", 150.0) for i in range(2)]
            deltas += [EnergyDelta("dram", f"dram-{i}", 20.0) for i in range(2)]
            deltas += [EnergyDelta("gpu", str(i), 400.0, (("uuid", uuid(i)),)) for i in range(EXCLUSIVE + SHARED)]
            attributor.split(deltas, 1.0)  # baseline

            def advance() -> None:
                for n, cid in enumerate(ids):
                    tree.advance(cid, 1000 + n)

            shares: list[object] = []
            split_ms, split_cpu = timed(lambda: shares.append(len(attributor.split(deltas, 1.0))), args.passes,
                                        advance)
            scan, files = cgroups.ContainerScan(str(root / "cgroup")), cgroups.CpuStatFiles()

            def scan_and_read() -> None:  # as the attributor does: pods listed again only when changed
                files.read(list((scan.scan() or {}).values()))

            scan_ms, _ = timed(scan_and_read, args.passes)
            full_ms, _ = timed(lambda: [cgroups.cpu_usage_usec(p) for p in
                                        (cgroups.scan_containers(str(root / "cgroup")) or {}).values()], args.passes)
            files.close()
            refresh_ms, refresh_cpu = timed(attributor.refresh, max(args.passes // 10, 5))
        finally:
            attributor.close()
            nvml.close()
            kubelet.stop()
            api.stop()

    expected = PODS * CONTAINERS * 4 + EXCLUSIVE + SHARED * PROCS_PER_SHARED  # 2 packages + 2 dram, GPUs
    assert all(n == expected for n in shares), (shares[:3], expected)
    figures = {
        "pods": PODS, "containers": PODS * CONTAINERS, "gpus_exclusive": EXCLUSIVE, "gpus_shared": SHARED,
        "gpu_processes": SHARED * PROCS_PER_SHARED, "shares_per_pass": expected, "passes": args.passes,
        "split": {**percentiles(split_ms), "cpu_ms_mean": round(split_cpu, 3)},
        "cgroup_scan_and_read": percentiles(scan_ms),
        "cgroup_full_walk_and_open_read": percentiles(full_ms),
        "refresh": {**percentiles(refresh_ms), "cpu_ms_mean": round(refresh_cpu, 3)},
    }
    print(f"attribution: {PODS} pods x {CONTAINERS} containers, {EXCLUSIVE} exclusive GPUs, {SHARED} time-sliced "
          f"GPUs x {PROCS_PER_SHARED} processes; {args.passes} passes")
    print(f"{'':<42}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'cpu ms':>9}")
    rows = [("split() per sample (all of it)", figures["split"]),
            ("  cgroup scan + 600 cpu.stat reads", figures["cgroup_scan_and_read"]),
            ("  (every directory listed, files opened)", figures["cgroup_full_walk_and_open_read"]),
            ("refresh() in the background (API+kubelet)", figures["refresh"])]
    for name, f in rows:
        cpu = f.get("cpu_ms_mean", "")
        print(f"{name:<42}{f['p50_ms']:>9.2f}{f['p95_ms']:>9.2f}{f['max_ms']:>9.2f}{cpu:>9}")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "attribution",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
        "figures": figures,
    }
    path = args.out / "attribution.json"
    tmp_path = path.with_suffix(".json.tmp")
    tmp_path.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp_path, path)
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
