"""One run's process tree as the only consumer (measure, track): its share of each device, the rest apart.

The rules are the exporter's (consumers.split_deltas): CPU and DRAM by the tree's CPU time over online
CPUs x window, GPUs by the NVML utilisation of the tree's processes. The tree's CPU time is cumulative:
user + system of every live process under the root plus the CPU time of its children that were
already waited for (cutime/cstime in /proc/<pid>/stat, which psutil calls children_user/system). When
the root is a child that `measure` itself waits for, its own total arrives in this process's
RUSAGE_CHILDREN once it is reaped, so that is added too (`reaped_by_us`). A descendant orphaned
before it exits (re-parented to init) takes its CPU time after that with it: documented, not guessed.

The tree is read with psutil (which follows psutil.PROCFS_PATH, set from --path.procfs by the meters).
Every pid ever seen in the tree stays the run's, so a GPU process that exited before the last pass
still counts as the run's for the samples NVML kept.
"""

from __future__ import annotations

import logging
import resource
from collections import defaultdict
from typing import Any

import psutil

from footprint.attribution import cgroups
from footprint.attribution.base import Consumer, EnergyDelta, WorkloadShare
from footprint.attribution.consumers import gpu_process_shares, split_deltas

log = logging.getLogger("footprint.attribution.tree")

RUN = Consumer("", "run", "", "unknown")


def _children_rusage() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ProcessTree:
    """Cumulative CPU seconds of a process and its descendants; the pids seen in it."""

    def __init__(self, root: int | None = None, reaped_by_us: bool = False) -> None:
        self.reaped_by_us = reaped_by_us
        self.pids: set[int] = set()
        self._root: int | None = None
        self.root = root
        self._rusage_base = _children_rusage()

    @property
    def root(self) -> int | None:
        return self._root

    @root.setter
    def root(self, pid: int | None) -> None:
        """The run's process (set once it is started): its pid is the run's even after it exited."""
        self._root = pid
        if pid is not None:
            self.pids.add(pid)

    def cpu_seconds(self) -> float:
        if self._root is None:
            return 0.0
        total = _children_rusage() - self._rusage_base if self.reaped_by_us else 0.0
        try:
            root = psutil.Process(self._root)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:  # the root is gone (and reaped): its time is in RUSAGE_CHILDREN
            return total
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue  # exited between the listing and the read
            self.pids.add(p.pid)
            total += t.user + t.system + t.children_user + t.children_system
        return total


class TreeAttributor:
    """The Attributor for one run: shares for RUN only; `by_device` keeps what it handed out per device."""

    def __init__(self, tree: ProcessTree, meters: list[object], procfs: str) -> None:
        self.tree = tree
        self.meters = meters
        self.cpus = cgroups.online_cpus(procfs)
        self.by_device: dict[tuple[str, str], float] = defaultdict(float)
        self._last: float | None = None

    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        cpu_now = self.tree.cpu_seconds()
        previous, self._last = self._last, cpu_now
        if previous is None or seconds <= 0:
            gpu_process_shares(self.meters)  # the baseline: NVML samples from before the run are consumed
            return []
        fraction = max(cpu_now - previous, 0.0) / (self.cpus * seconds)
        pids = self.tree.pids
        shares = split_deltas(deltas, {RUN: fraction}, self.meters, lambda pid: RUN if pid in pids else None)
        for s in shares:
            self.by_device[(s.component, s.device)] += s.joules
        return shares

    def gone(self, now_wall: float) -> list[Any]:
        return []  # the run is never gone before it ends

    def adopt(self, series: list[tuple[str, ...]]) -> None:
        pass

    def health(self) -> None:
        return None  # measure and track() have no /metrics

    def doctor_lines(self) -> list[str]:
        return [f"process tree of pid {self.tree.root}: CPU time over {self.cpus} CPUs, GPUs by NVML process use"]

    def close(self) -> None:
        pass
