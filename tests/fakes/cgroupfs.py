"""A cgroup v2 tree of pod containers and a procfs, as kubelet, the runtimes and the kernel lay them out.

`CgroupTree`: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope`
(systemd driver; guaranteed pods one level up) or `kubepods/<qos>/pod<uid>/<id>` (cgroupfs driver),
each with a `cpu.stat` whose `usage_usec` the test advances by hand. The kernel's cpu.stat
(Documentation/admin-guide/cgroup-v2.rst, "cpu.stat") always has `usage_usec`, `user_usec` and
`system_usec` first, one `key value` line each, ending in a newline; `usage_usec` only grows for the
cgroup's life. `write_stat` breaks that on purpose: what a torn read, a kernel without the field or a
bind mount that lost it would show.
The kernel's cgroup files are seq_files: the same file for the cgroup's life, its text made anew at
each read from offset 0 (fs/seq_file.c, seq_read_iter), so a reader may keep one open (the exporter
does). Here cpu.stat is rewritten in place, one pwrite of the whole text (truncated when it got
shorter), so a kept descriptor sees it change as it would on a node. Unlike the kernel, a kept
descriptor of a removed container still reads its last text, where a kernel read fails with ENODEV:
the exporter closes the descriptors of containers its scan no longer finds, so either reads as gone.
A directory's link count is 2 + its subdirectories here (tmpfs, ext4) as on kernfs, which sets it from
the node's subdirectory count at each stat (fs/kernfs/inode.c, kernfs_refresh_inode): the exporter's
scan lists a pod's directory again when it moves. Its mtime moves here when a child is made, where a
kernel's cgroup directory keeps the time it was made: nothing may rest on it.
`FakeProcfs`: `/proc/stat` (N CPUs), `/proc/meminfo`, `/proc/cpuinfo` (enough for the estimate
meter's psutil), and `/proc/<pid>/{stat,cgroup,comm}` for processes the test adds.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

SCOPE_PREFIX = {"containerd": "cri-containerd", "crio": "crio", "docker": "docker"}


def container_id(n: int) -> str:
    """A 64-hex container id, distinct per n."""
    return f"{n:016x}" * 4


def _write(path: Path, text: str) -> None:
    """Atomic replace, as the kernel presents a file: a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rewrite(path: Path, text: str) -> None:
    """cpu.stat's new text in the same file (see the module's docstring)."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        if os.fstat(fd).st_size > len(data):
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


# The interface files every cgroup v2 directory of a node holds beside its children, with the cpu,
# cpuset, io, memory, pids and hugetlb controllers enabled, as kubelet enables them (the names from
# Documentation/admin-guide/cgroup-v2.rst, each controller's "Interface Files"): a scan of the tree
# walks past ~60 of them in every QoS, pod and container directory. Empty here (cpu.stat aside).
INTERFACE_FILES = (
    "cgroup.controllers", "cgroup.events", "cgroup.freeze", "cgroup.kill", "cgroup.max.depth",
    "cgroup.max.descendants", "cgroup.pressure", "cgroup.procs", "cgroup.stat", "cgroup.subtree_control",
    "cgroup.threads", "cgroup.type", "cpu.idle", "cpu.max", "cpu.max.burst", "cpu.pressure", "cpu.stat.local",
    "cpu.uclamp.max", "cpu.uclamp.min", "cpu.weight", "cpu.weight.nice", "cpuset.cpus", "cpuset.cpus.effective",
    "cpuset.cpus.exclusive", "cpuset.cpus.exclusive.effective", "cpuset.cpus.partition", "cpuset.mems",
    "cpuset.mems.effective", "hugetlb.2MB.current", "hugetlb.2MB.events", "hugetlb.2MB.events.local",
    "hugetlb.2MB.max", "hugetlb.2MB.numa_stat", "hugetlb.2MB.rsvd.current", "hugetlb.2MB.rsvd.max",
    "io.max", "io.pressure", "io.stat", "io.weight", "irq.pressure", "memory.current", "memory.events",
    "memory.events.local", "memory.high", "memory.low", "memory.max", "memory.min", "memory.numa_stat",
    "memory.oom.group", "memory.peak", "memory.pressure", "memory.reclaim", "memory.stat",
    "memory.swap.current", "memory.swap.events", "memory.swap.high", "memory.swap.max", "memory.swap.peak",
    "memory.zswap.current", "memory.zswap.max", "pids.current", "pids.events", "pids.max", "pids.peak",
)


def _cpu_stat(usage_usec: int) -> str:
    user = usage_usec * 7 // 10
    return (f"usage_usec {usage_usec}\nuser_usec {user}\nsystem_usec {usage_usec - user}\n"
            "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n")


class CgroupTree:
    def __init__(self, root: Path, driver: str = "systemd") -> None:
        self.root = root
        self.driver = driver
        self.usage: dict[str, int] = {}
        self.paths: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._populated: set[Path] = set()
        base = root / ("kubepods.slice" if driver == "systemd" else "kubepods")
        self._cgroup(base)
        (base / "cpu.stat").write_text(_cpu_stat(0))

    def _cgroup(self, path: Path) -> None:
        """`path` and the cgroups above it (up to the root), each with its interface files."""
        path.mkdir(parents=True, exist_ok=True)
        d = path
        while d != self.root and d not in self._populated:
            for name in INTERFACE_FILES:
                (d / name).touch()
            self._populated.add(d)
            d = d.parent

    def pod_dir(self, pod_uid: str, qos: str = "burstable") -> Path:
        if self.driver == "systemd":
            uid = pod_uid.replace("-", "_")
            if qos == "guaranteed":
                return self.root / "kubepods.slice" / f"kubepods-pod{uid}.slice"
            return self.root / "kubepods.slice" / f"kubepods-{qos}.slice" / f"kubepods-{qos}-pod{uid}.slice"
        if qos == "guaranteed":
            return self.root / "kubepods" / f"pod{pod_uid}"
        return self.root / "kubepods" / qos / f"pod{pod_uid}"

    def add_container(self, pod_uid: str, cid: str, runtime: str = "containerd", qos: str = "burstable",
                      usage_usec: int = 0) -> Path:
        """The container's cgroup; its path is also what /proc/<pid>/cgroup shows (relative to root)."""
        pod = self.pod_dir(pod_uid, qos)
        name = cid if self.driver == "cgroupfs" else f"{SCOPE_PREFIX[runtime]}-{cid}.scope"
        path = pod / name
        self._cgroup(path)
        if runtime == "crio" and self.driver == "systemd":  # CRI-O's monitor sits beside the container
            self._cgroup(pod / f"crio-conmon-{cid}.scope")
        with self._lock:
            self.usage[cid] = usage_usec
            self.paths[cid] = path
            _write(path / "cpu.stat", _cpu_stat(usage_usec))
        return path

    def advance(self, cid: str, usec: int) -> None:
        with self._lock:
            if cid not in self.paths:
                return
            self.usage[cid] += usec
            _rewrite(self.paths[cid] / "cpu.stat", _cpu_stat(self.usage[cid]))

    def write_stat(self, cid: str, text: str) -> None:
        """The container's cpu.stat reads `text` as it is (a partial or odd read); its counter keeps its
        value for the next `advance`."""
        with self._lock:
            _rewrite(self.paths[cid] / "cpu.stat", text)

    def remove_container(self, cid: str) -> None:
        with self._lock:
            path = self.paths.pop(cid, None)
            self.usage.pop(cid, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)
            self._populated.discard(path)

    def cgroup_path(self, cid: str) -> str:
        return "/" + str(self.paths[cid].relative_to(self.root))


MEMINFO = """MemTotal:       65536000 kB
MemFree:        32768000 kB
MemAvailable:   48000000 kB
Buffers:          100000 kB
Cached:          8000000 kB
SwapCached:            0 kB
Active:         16000000 kB
Inactive:        8000000 kB
Shmem:            100000 kB
SReclaimable:     500000 kB
SwapTotal:             0 kB
SwapFree:              0 kB
"""


class FakeProcfs:
    def __init__(self, root: Path, cpus: int = 8) -> None:
        self.root = root
        self.cpus = cpus
        self.busy_ticks = 0
        self.idle_ticks = 0
        root.mkdir(parents=True, exist_ok=True)
        (root / "meminfo").write_text(MEMINFO)
        (root / "cpuinfo").write_text("".join(
            f"processor\t: {i}\nmodel name\t: Fake CPU @ 2.00GHz\n\n" for i in range(cpus)))
        self._lock = threading.Lock()
        self._procs: dict[int, tuple[str, int, int, bool]] = {}  # pid -> (comm, start, ticks, kernel thread)
        self._write_stat()

    def _write_stat(self) -> None:
        per_busy, per_idle = self.busy_ticks // self.cpus, self.idle_ticks // self.cpus
        lines = [f"cpu  {self.busy_ticks} 0 0 {self.idle_ticks} 0 0 0 0 0 0"]
        lines += [f"cpu{i} {per_busy} 0 0 {per_idle} 0 0 0 0 0 0" for i in range(self.cpus)]
        lines += ["intr 0", "ctxt 0", "btime 1763884800", "processes 1", "procs_running 1", "procs_blocked 0"]
        _write(self.root / "stat", "\n".join(lines) + "\n")

    def advance_cpu(self, busy_ticks: int, idle_ticks: int) -> None:
        """Move the machine-wide CPU time (what psutil's utilisation reads)."""
        with self._lock:
            self.busy_ticks += busy_ticks
            self.idle_ticks += idle_ticks
            self._write_stat()

    def add_process(self, pid: int, cgroup: str = "/user.slice", comm: str = "python", ticks: int = 0,
                    start: int = 1000, kernel_thread: bool = False) -> None:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        _write(d / "cgroup", f"0::{cgroup}\n")
        _write(d / "comm", comm + "\n")
        with self._lock:
            self._procs[pid] = (comm, start, ticks, kernel_thread)
        self._write_proc(pid)

    def _write_proc(self, pid: int) -> None:
        comm, start, ticks, kernel_thread = self._procs[pid]
        flags = 0x00200040 if kernel_thread else 0x00400100
        utime, stime = ticks - ticks // 4, ticks // 4
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
        # cutime cstime priority nice threads itreal starttime vsize rss ...
        fields = ["S", "1", str(pid), str(pid), "0", "-1", str(flags), "0", "0", "0", "0", str(utime), str(stime),
                  "0", "0", "20", "0", "1", "0", str(start), "1000000", "100"]
        _write(self.root / str(pid) / "stat", f"{pid} ({comm}) {' '.join(fields)}\n")

    def advance_process(self, pid: int, ticks: int) -> None:
        with self._lock:
            comm, start, total, kernel_thread = self._procs[pid]
            self._procs[pid] = (comm, start, total + ticks, kernel_thread)
        self._write_proc(pid)

    def remove_process(self, pid: int) -> None:
        with self._lock:
            self._procs.pop(pid, None)
        shutil.rmtree(self.root / str(pid), ignore_errors=True)
