"""Bare metal and HPC: energy split among groups of processes (opt-in, --attribution.processes).

Groups, by --attribution.group-by:
- `comm`: the process name (/proc/<pid>/stat's comm, 15 characters at most): every `python` together;
- `slurm-job`: the Slurm job id from the process's cgroup path (`.../job_<id>/step_<n>/...`, Slurm's
  cgroup v2 plugin); processes outside any job are not grouped and stay unattributed.
Series are their own families, footprint_process_group_energy_joules_total{process_group, component}
and footprint_process_group_emissions_grams_total{process_group} (the comm, or the job id digits),
never `pod` with an empty `namespace`: the per-namespace rules, the budget alert and the Workloads
dashboard stay about pods. Never a pid label: pids churn and would explode cardinality.

The rules match the Kubernetes ones: CPU and DRAM by the group's CPU time (utime + stime of its
processes) over online CPUs x window (--attribution.interval); GPUs by the NVML per-process
utilisation shares, idle unattributed. Kernel threads are skipped. A process's CPU time in the
window in which it exits is lost (unattributed); a process started since the last pass counts from
its start.
A group leaves (after the grace period) once none of its processes is running.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable

from footprint.attribution import cgroups
from footprint.attribution.base import AnyConsumer, AttributionHealth, EnergyDelta, ProcessGroup, WorkloadShare
from footprint.attribution.consumers import ConsumerBook, health, split_deltas
from footprint.attribution.cputime import CpuTimeBook
from footprint.config import Settings

log = logging.getLogger("footprint.attribution.processes")

PF_KTHREAD = 0x00200000


UNREADABLE = "unreadable"


def read_stat(procfs: str, pid: int) -> tuple[str, int, int] | str | None:
    """(comm, start time, utime + stime in clock ticks) of a user-space process; None if it is gone or
    a kernel thread; UNREADABLE if it is there but its stat cannot be read or parsed (a partial read)."""
    try:
        with open(f"{procfs}/{pid}/stat", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return UNREADABLE if os.path.isdir(f"{procfs}/{pid}") else None
    open_paren, close_paren = text.find("("), text.rfind(")")
    if open_paren < 0 or close_paren < open_paren:
        return UNREADABLE
    rest = text[close_paren + 2 :].split()  # fields 3.. (state is rest[0])
    try:
        flags, utime, stime, start = int(rest[6]), int(rest[11]), int(rest[12]), int(rest[19])
    except (IndexError, ValueError):
        return UNREADABLE
    if min(utime, stime, start) < 0:
        return UNREADABLE
    if flags & PF_KTHREAD:
        return None
    return text[open_paren + 1 : close_paren], start, utime + stime


class ProcessAttributor:
    def __init__(self, settings: Settings, meters: list[object]) -> None:
        self.procfs = settings.path_procfs
        self.group_by = settings.attribution_group_by
        self.meters = meters
        self.book = ConsumerBook(settings.attribution_max_series, settings.attribution_grace_period)
        self.ticks_per_second = os.sysconf("SC_CLK_TCK")
        self.cpus = cgroups.online_cpus(self.procfs)
        self.cpu_time: CpuTimeBook[tuple[int, int]] = CpuTimeBook(self.ticks_per_second)  # (pid, start) -> ticks
        self._groups: set[str] = set()  # groups with a running process at the last split
        self.up: bool | None = None

    def _group(self, pid: int, comm: str) -> str | None:
        if self.group_by == "comm":
            return comm
        path = cgroups.process_cgroup(self.procfs, pid)
        return cgroups.slurm_job_of(path) if path else None

    @staticmethod
    def consumer(group: str) -> ProcessGroup:
        return ProcessGroup(group)

    def _scan(self) -> tuple[dict[int, tuple[str, tuple[int, int], int]], set[int]]:
        """pid -> (group, (pid, start time), CPU ticks) of every grouped user-space process, and the pids
        that are there but could not be read this time."""
        try:
            entries = [e.name for e in os.scandir(self.procfs) if e.name.isdigit()]
        except OSError as exc:
            if self.up is not False:
                log.warning("cannot list processes: %s", exc)
            self.up = False
            return {}, set()
        self.up = True
        out, unreadable = {}, set()
        for name in entries:
            pid = int(name)
            stat = read_stat(self.procfs, pid)
            if stat is None:
                continue  # exited mid-scan, or a kernel thread
            if isinstance(stat, str):
                unreadable.add(pid)
                continue
            comm, start, ticks = stat
            group = self._group(pid, comm)
            if group is not None:
                out[pid] = (group, (pid, start), ticks)
        return out, unreadable

    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        procs, unreadable = self._scan()
        reads: dict[tuple[int, int], int | None] = {key: ticks for _, key, ticks in procs.values()}
        for key in self.cpu_time.remembered():
            if key[0] in unreadable:  # the same process, its stat unreadable this time: carry over
                reads[key] = None
        used = self.cpu_time.deltas(reads, max(seconds, 0.0), self.cpus)
        if self.up:
            self._groups = {group for group, _, _ in procs.values()}
        if seconds <= 0:
            return []
        cpu: dict[ProcessGroup, float] = defaultdict(float)
        capacity = self.cpus * seconds * self.ticks_per_second
        for group, key, _ in procs.values():
            if key in used:
                cpu[self.consumer(group)] += used[key] / capacity

        def consumer_of_pid(pid: int) -> ProcessGroup | None:
            group = procs[pid][0] if pid in procs else self._group_of_pid(pid)
            return self.consumer(group) if group is not None else None

        return self.book.admit(split_deltas(deltas, cpu, self.meters, consumer_of_pid))

    def _group_of_pid(self, pid: int) -> str | None:
        stat = read_stat(self.procfs, pid)
        return self._group(pid, stat[0]) if isinstance(stat, tuple) else None

    def gone(self, now_wall: float) -> list[AnyConsumer]:
        """Groups with no running process; and any container series restored from a checkpoint (an
        older version put groups there): there are no pods here."""
        groups = self._groups
        return self.book.gone(now_wall, lambda c: isinstance(c, ProcessGroup) and c.group in groups)

    def adopt(self, series: Iterable[tuple[str, ...]]) -> None:
        self.book.adopt(series)

    def health(self) -> AttributionHealth:
        return health(self.book, {"procfs": self.up}, self.cpu_time.rejected)

    def doctor_lines(self) -> list[str]:
        key = "process name (comm)" if self.group_by == "comm" else "Slurm job id (cgroup path)"
        return [f"processes: energy split by {key} from {self.procfs}; {self.cpus} CPUs"]

    def close(self) -> None:
        pass
