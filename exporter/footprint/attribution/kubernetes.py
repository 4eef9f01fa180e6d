"""Energy of each device split among the pods' containers on this node.

The rules (energy is conserved: what no container gets is exported as unattributed):
- CPU and DRAM (every `cpu` and `dram` device, RAPL package or estimate): a container gets
  delta x (its CPU time in the window, from `usage_usec` in its cgroup's cpu.stat) / (online CPUs x
  window seconds). The window is --attribution.interval (see base.py), so the tree is scanned and
  the cpu.stat files read once per window, not once per sample; a pod's directory is listed again
  only when it may have changed (cgroups.ContainerScan). Idle capacity, the kernel, system
  daemons and pause containers stay unattributed.
  DRAM follows CPU time because per-container memory energy is not measurable.
- GPU held exclusively (its plain UUID, or an unpartitioned AMD GPU's PCI address, is in exactly one
  container's pod-resources `device_ids`):
  the whole delta goes to that container, idle power included: the pod reserved the whole GPU.
- GPU shared (its UUID in several containers, or handed out as time-slicing/MPS replicas
  `<uuid>::<n>`, even to one container: a replica is a slice, not the GPU) or not in pod-resources
  at all (no device plugin, MIG, socket down): each process on it gets delta x its
  utilisation share from the NVML meter (`process_shares()`), mapped PID -> /proc/<pid>/cgroup ->
  container. The part no process explains (idle) stays unattributed.
- Containers are known only once the API server has listed their pod (workload kind and names come
  from there); until then their energy stays unattributed rather than appearing under labels that
  would change. Pods are listed in a background thread every --kubernetes.refresh-interval, and
  early (at most once a second) when a cgroup appears for a container not yet listed, so split()
  never waits on the network.

Faults degrade, never crash: API server down keeps the last pod list (new pods stay unattributed);
pod-resources down makes every GPU "not in pod-resources" (process split); a malformed pod or
pod-resources entry is skipped and counted, the rest of the list used; a cgroup vanishing mid-read
loses that container's last window to unattributed; an unreadable or implausible cpu.stat follows
cputime.py's rules (carried over, or refused and counted). Node totals never depend on any of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from footprint.attribution import cgroups
from footprint.attribution.apiserver import SKIP_REASONS, ApiServerClient, PodInfo, parse_pods
from footprint.attribution.base import AnyConsumer, AttributionHealth, Consumer, EnergyDelta, WorkloadShare
from footprint.attribution.consumers import ConsumerBook, health, split_deltas
from footprint.attribution.cputime import CpuTimeBook
from footprint.attribution.podresources import PodResources, PodResourcesClient, allocation_keys, gpu_uuid
from footprint.config import Settings
from footprint.worker import Worker, collector_paused

log = logging.getLogger("footprint.attribution.kubernetes")

MIN_REFRESH_GAP = 1.0  # seconds between early refreshes asked for by new containers
SOURCES = ("apiserver", "podresources", "cgroup")

ContainerRef = tuple[str, str, str]  # namespace, pod, container


@dataclass(frozen=True)
class PodIndex:
    """What the background refresh knows, replaced whole (never mutated) so split() reads it lock-free."""

    by_container_id: Mapping[str, Consumer] = field(default_factory=dict)
    by_ref: Mapping[ContainerRef, Consumer] = field(default_factory=dict)
    live: frozenset[Consumer] = frozenset()
    exclusive_gpus: Mapping[str, ContainerRef] = field(default_factory=dict)  # GPU UUID -> its only holder


def build_snapshot(pods: Iterable[PodInfo], allocations: Iterable[PodResources]) -> PodIndex:
    by_id: dict[str, Consumer] = {}
    by_ref: dict[ContainerRef, Consumer] = {}
    live: set[Consumer] = set()
    for pod in pods:
        consumers = {name: Consumer(pod.namespace, pod.name, name, pod.workload) for name in pod.containers}
        for cid, name in pod.container_ids:
            consumers.setdefault(name, Consumer(pod.namespace, pod.name, name, pod.workload))
            by_id[cid] = consumers[name]
        for name, consumer in consumers.items():
            by_ref[(pod.namespace, pod.name, name)] = consumer
        if pod.active:
            live.update(consumers.values())
    holders: dict[str, set[ContainerRef]] = defaultdict(set)
    replicated: set[str] = set()
    for pod_resources in allocations:
        for container in pod_resources.containers:
            for devices in container.devices:
                for device_id in devices.device_ids:
                    uuid = gpu_uuid(device_id)
                    holders[uuid].add((pod_resources.namespace, pod_resources.name, container.name))
                    if uuid != device_id:
                        replicated.add(uuid)
    exclusive = {u: next(iter(c)) for u, c in holders.items() if len(c) == 1 and u not in replicated}
    return PodIndex(by_id, by_ref, frozenset(live), exclusive)


class KubernetesAttributor:
    def __init__(
        self,
        settings: Settings,
        meters: list[object],
        api: ApiServerClient,
        pod_resources: PodResourcesClient,
    ) -> None:
        self.cgroup_root = settings.path_cgroup
        self.procfs = settings.path_procfs
        self.label_key = settings.kubernetes_workload_label
        self.refresh_interval = settings.kubernetes_refresh_interval
        self.api = api
        self.pod_resources = pod_resources
        self.meters = meters
        self.book = ConsumerBook(settings.attribution_max_series, settings.attribution_grace_period)
        self.snapshot = PodIndex()
        self.up: dict[str, bool | None] = dict.fromkeys(SOURCES)  # None: not tried yet
        self.cpus = cgroups.online_cpus(self.procfs)
        self._pods: list[PodInfo] = []
        self._listed = False  # the API server answered at least once
        self.cpu_time: CpuTimeBook[str] = CpuTimeBook(1e6)  # container id -> usage_usec
        self.containers = cgroups.ContainerScan(self.cgroup_root)
        self._missing: set[str] = set()  # container ids the API server lists and the last scan did not find
        self.cpu_stats = cgroups.CpuStatFiles()  # each container's cpu.stat, kept open
        self.skipped: Counter[tuple[str, str]] = Counter(
            {(source, reason): 0 for source, reasons in (("apiserver", SKIP_REASONS), ("podresources", ("malformed",)))
             for reason in reasons})
        self._warned: set[str] = set()  # sources whose skipped items were logged
        self._asked: set[str] = set()  # unknown container ids that already asked for a refresh
        self._worker = Worker("kubernetes-pods", self._step)
        self._refreshed_at: float | None = None

    # --- background: pod list and GPU allocations -------------------------------------------------

    def refresh(self) -> None:
        """List pods and pod resources once and publish a new snapshot, the collector paused (the
        PodList's JSON is tens of thousands of objects for 200 pods). Never raises."""
        with collector_paused():
            self._refresh()

    def _refresh(self) -> None:
        """The new snapshot is published before the sources are marked up, so a scrape that reads
        `source_up` 1 can count on the listed pods being in use."""
        api_error: Exception | None = None
        try:
            pods, skipped = parse_pods(self.api.list_pods(), self.label_key)
            self._pods = pods
            self._count_skipped("apiserver", skipped)
            self._listed = True
        except Exception as exc:  # down, refused, 401/403, garbage: keep the last pod list
            api_error = exc
        allocations: list[PodResources] = []
        podres_error: Exception | None = None
        try:
            answer = self.pod_resources.list()
            allocations = answer.pods
            self._count_skipped("podresources", answer.skipped)
        except Exception as exc:  # no socket, kubelet restarting: GPUs fall back to the process split
            podres_error = exc
        self.cpus = cgroups.online_cpus(self.procfs)
        self.snapshot = build_snapshot(self._pods, allocations)
        self._set_up("apiserver", api_error is None, api_error)
        self._set_up("podresources", podres_error is None, podres_error)

    def _count_skipped(self, source: str, skipped: Mapping[str, int]) -> None:
        for reason, count in skipped.items():
            self.skipped[(source, reason)] += count
        if skipped and source not in self._warned:  # once per source; the counter tells the rest
            self._warned.add(source)
            log.warning("%s: %d malformed item(s) skipped, the rest used (footprint_attribution_items_skipped_total)",
                        source, sum(skipped.values()), extra={"source": source})

    def _set_up(self, source: str, ok: bool, exc: BaseException | None = None) -> None:
        """Log transitions only (and the first failure), not every failed refresh."""
        if ok and self.up[source] is not True:
            log.info("attribution source up", extra={"source": source})
        elif not ok and self.up[source] is not False:
            log.warning("attribution source down: %s", exc, extra={"source": source})
        self.up[source] = ok

    def _step(self) -> float:
        """Refresh every refresh_interval, sooner when woken by an unknown container, but never twice
        within MIN_REFRESH_GAP."""
        if self._refreshed_at is not None and self._worker.sleep(
                MIN_REFRESH_GAP - (time.monotonic() - self._refreshed_at)):
            return 0.0
        self._refreshed_at = time.monotonic()
        self.refresh()
        return self.refresh_interval

    def start(self) -> None:
        self._worker.start()

    def close(self) -> None:
        self._worker.stop(timeout=15)
        self.pod_resources.close()
        self.cpu_stats.close()

    # --- per sample -------------------------------------------------------------------------------

    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        snap = self.snapshot
        cpu = self._cpu_fractions(snap, seconds)
        if seconds <= 0:
            return []

        def exclusive(delta: EnergyDelta) -> dict[Consumer, float] | None:
            keys = allocation_keys(dict(delta.info))
            holder = next((snap.exclusive_gpus[k] for k in keys if k in snap.exclusive_gpus), None)
            if holder is None:
                return None  # shared or time-sliced: by its processes
            consumer = snap.by_ref.get(holder)
            return {consumer: 1.0} if consumer is not None else {}  # a holder not listed yet: nobody's

        def consumer_of_pid(pid: int) -> Consumer | None:
            return self._consumer_of_pid(snap, pid)

        return self.book.admit(split_deltas(deltas, cpu, self.meters, consumer_of_pid, exclusive))

    def _consumer_of_pid(self, snap: PodIndex, pid: int) -> Consumer | None:
        path = cgroups.process_cgroup(self.procfs, pid)
        cid = cgroups.container_id_of(path) if path else None
        return snap.by_container_id.get(cid) if cid else None

    def _cpu_fractions(self, snap: PodIndex, seconds: float) -> dict[Consumer, float]:
        """Each known container's CPU time since the last split over the machine's CPU capacity
        (the counter rules, bad reads included, are in cputime.py)."""
        found = self.containers.scan()
        if found is not None:
            missing = snap.by_container_id.keys() - found.keys()
            if not missing <= self._missing:  # listed by the API server, not found: look everywhere
                found = self.containers.scan(full=True)
                missing = snap.by_container_id.keys() - (found or {}).keys()
            self._missing = missing
        if found is None:
            self._set_up("cgroup", False, FileNotFoundError(f"no kubepods cgroups under {self.cgroup_root}"))
            self.cpu_time.clear()
            self.cpu_stats.close()
            return {}
        self._set_up("cgroup", True)
        reads: dict[str, int | None] = {}
        paths = list(found.values())
        for cid, path, value in zip(found, paths, self.cpu_stats.read(paths), strict=True):
            if value is not None or os.path.isdir(path):  # a vanished cgroup is gone, not unreadable
                reads[cid] = value
            else:
                self.containers.forget(path)  # its pod may hold a new one (a restart): listed next pass
        used = self.cpu_time.deltas(reads, max(seconds, 0.0), self.cpus)
        self._asked &= reads.keys()
        fractions: dict[Consumer, float] = defaultdict(float)
        if seconds <= 0:
            return fractions
        capacity = self.cpus * seconds * 1e6
        unknown = False
        for cid in reads:
            consumer = snap.by_container_id.get(cid)
            if consumer is None:
                if cid not in self._asked:
                    self._asked.add(cid)
                    unknown = True
                continue
            if cid in used:
                fractions[consumer] += used[cid] / capacity
        if unknown:
            self._worker.wake()
        return fractions

    def gone(self, now_wall: float) -> list[AnyConsumer]:
        """Until the API server has answered once, nobody is known to be gone (restored series stay)."""
        if not self._listed:
            return []
        live = self.snapshot.live
        return self.book.gone(now_wall, live.__contains__)

    def adopt(self, series: Iterable[tuple[str, ...]]) -> None:
        self.book.adopt(series)

    # --- exposition -------------------------------------------------------------------------------

    def health(self) -> AttributionHealth:
        return health(self.book, self.up, self.cpu_time.rejected, self.skipped)

    def doctor_lines(self) -> list[str]:
        return [
            f"kubernetes: pods of node {self.api.node!r} from {self.api.url} every {self.refresh_interval:g}s",
            f"kubernetes: CPU time from cgroups under {self.cgroup_root}; {self.cpus} CPUs",
            f"kubernetes: GPU allocations from {self.pod_resources.socket_path}",
        ]

