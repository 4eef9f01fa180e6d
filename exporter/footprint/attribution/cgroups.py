"""cgroup v2 and procfs facts attribution needs: container cgroups, their CPU time, a process's container.

Container cgroups, by runtime and kubelet cgroup driver:
- systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice/`
  holding `cri-containerd-<id>.scope` (containerd), `crio-<id>.scope` (CRI-O; `crio-conmon-*` is the
  monitor, not the container) or `docker-<id>.scope` (cri-dockerd); guaranteed pods sit directly under
  `kubepods.slice/kubepods-pod<uid>.slice/`;
- cgroupfs driver: `kubepods/<qos>/pod<uid>/<id>` (the bare 64-hex id);
- kind and other nested kubelets: the same under `kubelet.slice/kubelet-kubepods.slice/` with
  `kubelet-kubepods-<qos>-pod<uid>.slice` names (or `kubelet/kubepods/...`).
The `<id>` is the container id the API server reports in `containerStatuses[].containerID` after the
`<runtime>://` prefix. The pod's sandbox (pause) container has a cgroup too, but no status: its CPU
time stays unattributed.

`/proc/<pid>/cgroup` paths are shown relative to the reader's cgroup namespace (from inside a
container they may start with `/../..`), so a process's container is found by the path component
that names one, never by the whole path.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

try:  # the optional C reader (meters/_fastread.c): a directory's subdirectories without a string per file
    from footprint.meters import _fastread
except ImportError:
    _fastread = None  # type: ignore[assignment]

CONTAINER_SCOPE = re.compile(r"^(?:cri-containerd|crio|docker)-([0-9a-f]{64})\.scope$")
BARE_ID = re.compile(r"^[0-9a-f]{64}$")
POD_DIR = re.compile(r"^(?:(?:kubelet-)?kubepods(?:-[a-z]+)?-)?pod([0-9a-f_-]{36})(?:\.slice)?$")
SLURM_JOB = re.compile(r"^job_(\d+)$")
# Where kubelet puts pods under the cgroup root (kind and some distributions nest it under kubelet.slice).
KUBEPODS_ROOTS = ("kubepods.slice", "kubepods", "kubelet.slice/kubelet-kubepods.slice", "kubelet/kubepods")
MAX_DEPTH = 4
DESCEND = ("kubepods", "kubelet-kubepods", "pod")  # QoS and pod directory names


def container_id_of(components: list[str]) -> str | None:
    """The container id named in a cgroup path (as components), innermost first; None if none."""
    for i in range(len(components) - 1, -1, -1):
        m = CONTAINER_SCOPE.match(components[i])
        if m:
            return m.group(1)
        if BARE_ID.match(components[i]) and i > 0 and POD_DIR.match(components[i - 1]):
            return components[i]
    return None


def slurm_job_of(components: list[str]) -> str | None:
    for part in reversed(components):
        m = SLURM_JOB.match(part)
        if m:
            return m.group(1)
    return None


def kubepods_roots(cgroup_root: str) -> list[str]:
    return [p for p in (os.path.join(cgroup_root, r) for r in KUBEPODS_ROOTS) if os.path.isdir(p)]


def scan_containers(cgroup_root: str) -> dict[str, str] | None:
    """Container id -> its cgroup directory, for every pod container on this node, every directory
    listed (ContainerScan lists each pod's directory only when it changed).

    None when no kubepods hierarchy exists under `cgroup_root` (wrong --path.cgroup, or not a node).
    """
    return ContainerScan(cgroup_root).scan()


class ContainerScan:
    """The node's pod containers, found by walking the kubepods tree, each pod's directory listed again
    only when it may have changed.

    A pass walks hundreds of directories, each holding ~60 interface files beside its children (cpu.stat,
    memory.max...): only the subdirectories' names are read (`subdirs`), each name judged once per
    process (`_name_kind`). The kubepods and QoS levels are listed every scan (pods come and go there);
    a pod's directory is listed again only when
    - its link count changed: a directory's st_nlink is 2 + its subdirectories on kernfs (set from the
      node's subdirectory count at every stat, kernfs_refresh_inode) as on tmpfs, so a container made or
      removed there changes it (checked on this kernel: tests/unit/test_attribution_sources.py). Its
      mtime cannot tell: a kernel's cgroup directory keeps the time it was made when a child is made
      or removed (seen on 6.18);
    - `forget()` named one of its containers (its cgroup vanished: a restart may have made a new one
      in its place between two scans, leaving the count as it was);
    - the caller asks for a full scan (`scan(full=True)`: the API server lists a container id the last
      scan did not find), or FULL_SCAN_EVERY scans have passed since the last full one.
    So a pass stats ~200 pod directories where it listed them (bench/README.md, seventh pass).
    """

    FULL_SCAN_EVERY = 12  # scans; a minute at the default 5 s attribution interval

    def __init__(self, cgroup_root: str) -> None:
        self.cgroup_root = cgroup_root
        self._pods: dict[str, tuple[int, dict[str, str]]] = {}  # pod directory -> (st_nlink, its containers)
        self._since_full = 0

    def scan(self, full: bool = False) -> dict[str, str] | None:
        roots = kubepods_roots(self.cgroup_root)
        if not roots:
            self._pods.clear()
            return None
        self._since_full += 1
        if full or self._since_full >= self.FULL_SCAN_EVERY:
            self._pods.clear()
            self._since_full = 0
        known = self._pods
        pods: dict[str, tuple[int, dict[str, str]]] = {}

        def pod_containers(path: str, depth: int) -> dict[str, str] | None:
            """A pod directory's containers: remembered while its link count stands, else listed."""
            try:
                links = os.stat(path, follow_symlinks=False).st_nlink
            except OSError:  # removed while we looked
                return None
            pod = known.get(path)
            if pod is None or pod[0] != links:  # new, or a container made or removed in it
                pod = (links, _walk([(path, depth, True)]))
            pods[path] = pod
            return pod[1]

        found = _walk([(root, 0, False) for root in roots], pod_containers)
        self._pods = pods
        return found

    def forget(self, cgroup_dir: str) -> None:
        """This container's cgroup is gone: list its pod's directory again at the next scan (rare: a
        search, not an index kept up at every scan)."""
        for pod in [p for p in self._pods if cgroup_dir.startswith(p + "/")]:
            del self._pods[pod]


def _walk(stack: list[tuple[str, int, bool]],
          pod_containers: Callable[[str, int], dict[str, str] | None] | None = None) -> dict[str, str]:
    """The containers below each (directory, depth, is a pod's directory) of `stack`, by id: scopes
    anywhere, a bare id only as a pod directory's child, down to MAX_DEPTH. `pod_containers`, where
    given, answers for each pod directory met instead of walking it (None: it vanished meanwhile)."""
    found: dict[str, str] = {}
    kinds = _NAME_KINDS
    while stack:
        directory, depth, in_pod = stack.pop()
        try:
            names = subdirs(directory)
        except OSError:  # removed while we looked: the pod is going away
            continue
        for name in names:
            kind, cid = kinds.get(name) or _name_kind(name)
            if kind == _OTHER:
                continue
            if kind == _SCOPE or (kind == _BARE and in_pod):
                found[cid] = f"{directory}/{name}"
            elif kind >= _DESCEND and depth < MAX_DEPTH:
                if kind == _POD and pod_containers is not None:
                    found.update(pod_containers(f"{directory}/{name}", depth + 1) or {})
                else:
                    stack.append((f"{directory}/{name}", depth + 1, kind == _POD))
    return found


def subdirs(directory: str) -> list[str]:
    """The names of `directory`'s subdirectories, symlinks not followed (the C reader where it is built;
    it hands a directory whose entries' types it cannot see to the loop below). OSError: unreadable."""
    if _fastread is not None:
        names = _fastread.subdirs(directory)
        if names is not None:
            return names
    out = []
    for entry in os.scandir(directory):
        try:
            if entry.is_dir(follow_symlinks=False):
                out.append(entry.name)
        except OSError:  # gone since it was listed
            continue
    return out


# What a name in the kubepods tree is: a container's scope (its id), a bare container id (a container
# under the cgroupfs driver when inside a pod), a QoS or kubepods level to descend, a pod's directory,
# or anything else (interface files, sandboxes, monitors). Names repeat every pass: judged once each.
_OTHER, _SCOPE, _BARE, _DESCEND, _POD = range(5)
_NAME_KINDS: dict[str, tuple[int, str]] = {}
_MAX_NAMES = 65_536  # then forgotten and judged again: pods come and go for months


def _name_kind(name: str) -> tuple[int, str]:
    if name.endswith(".scope"):
        m = CONTAINER_SCOPE.match(name)
        kind = (_SCOPE, m.group(1)) if m else (_OTHER, "")
    elif len(name) == 64 and BARE_ID.match(name):
        kind = (_BARE, name)
    elif name.startswith(DESCEND) or name in ("burstable", "besteffort"):
        kind = (_POD if POD_DIR.match(name) else _DESCEND, "")
    else:
        kind = (_OTHER, "")
    if len(_NAME_KINDS) >= _MAX_NAMES:
        _NAME_KINDS.clear()
    _NAME_KINDS[name] = kind
    return kind


def cpu_usage_usec(cgroup_dir: str) -> int | None:
    """`usage_usec` from the cgroup's cpu.stat, opened for this read; None if it cannot be read (the caller
    tells a vanished cgroup from a bad read with `os.path.isdir`: only the rare failure pays for it).
    Raw os.open/os.read (a third of the cost of open() in text mode)."""
    try:
        fd = os.open(cgroup_dir + "/cpu.stat", os.O_RDONLY)  # not os.path.join: 600 times a pass
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    return usage_usec(data)


def usage_usec(data: bytes) -> int | None:
    """The `usage_usec` of cpu.stat's text: a plain non-negative decimal that ends its line, else None."""
    start = data.find(b"usage_usec ")
    if start < 0:
        return None
    end = data.find(b"\n", start)
    if end < 0:  # a line cut short: the number may be too
        return None
    text = data[start + 11 : end]
    return int(text) if text.isdigit() and len(text) <= 20 else None


class CpuStatFiles:
    """Every container's cpu.stat kept open and read again at offset 0 each pass.

    cgroup v2 files are kernfs seq_files, and a read at offset 0 runs the file's show() again (fs/seq_file.c,
    seq_read_iter: "if request is to read from zero offset, reset iterator to first record"), so a kept
    descriptor gives the current value, as RAPL's energy_uj does; the file stays the same for the cgroup's
    life, and once the cgroup is removed a read fails (kernfs deactivates its open files: ENODEV), when
    the descriptor is closed. 600 containers then cost 600 preads a pass, where opening each by its deep
    path, reading and closing it was half of an attribution pass (bench/README.md). Descriptors are kept
    for the cgroups of the last `read()` only, and at most `max_open` (a share of RLIMIT_NOFILE); past
    that, a cgroup is opened for each read as before.
    """

    def __init__(self, max_open: int | None = None) -> None:
        self.max_open = _fd_budget() if max_open is None else max_open
        self._fds: dict[str, int] = {}  # cgroup directory -> its cpu.stat

    def read(self, cgroup_dirs: list[str]) -> list[int | None]:
        """Each cgroup's `usage_usec` (None: unreadable now, as cpu_usage_usec says): every kept file in
        one C call where it is built; what it cannot read plainly, by the Python path."""
        fds = self._fds
        if len(fds) > len(cgroup_dirs) or any(d not in fds for d in cgroup_dirs):
            self._keep(cgroup_dirs)
        if _fastread is None:
            return [self._read_one(d) for d in cgroup_dirs]
        got = _fastread.read_field(tuple([fds.get(d, -1) for d in cgroup_dirs]), b"usage_usec ")
        if None not in got:
            return list(got)
        return [self._read_one(d) if v is None else v for d, v in zip(cgroup_dirs, got, strict=True)]

    def _read_one(self, cgroup_dir: str) -> int | None:
        fd = self._fds.get(cgroup_dir)
        if fd is None:
            return cpu_usage_usec(cgroup_dir)
        try:
            return usage_usec(os.pread(fd, 4096, 0))
        except OSError:  # removed (ENODEV), or any other failure: opened afresh next time
            del self._fds[cgroup_dir]
            os.close(fd)
            return cpu_usage_usec(cgroup_dir)

    def _keep(self, cgroup_dirs: list[str]) -> None:
        """Descriptors for these cgroups only: the others' closed, new ones opened while the budget lasts."""
        wanted = set(cgroup_dirs)
        for d in [d for d in self._fds if d not in wanted]:
            os.close(self._fds.pop(d))
        for d in cgroup_dirs:
            if d in self._fds or len(self._fds) >= self.max_open:
                continue
            try:
                self._fds[d] = os.open(d + "/cpu.stat", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue  # read by path (and found unreadable or gone) this pass

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _fd_budget() -> int:
    """Descriptors CpuStatFiles may keep: half the soft RLIMIT_NOFILE above what a process needs anyway."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return 8192
    return max(min((soft - 256) // 2, 8192), 0)


def process_cgroup(procfs: str, pid: int) -> list[str] | None:
    """The unified (`0::`) cgroup path of a process, as components; None if the process is gone."""
    try:
        with open(f"{procfs}/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("0::"):
                    return [p for p in line[3:].strip().split("/") if p]
    except OSError:
        return None
    return None


def online_cpus(procfs: str) -> int:
    """CPUs the kernel accounts time for (the `cpuN` lines of /proc/stat); the host's, also in a container."""
    try:
        with open(f"{procfs}/stat", encoding="ascii") as fh:
            count = sum(1 for line in fh if line.startswith("cpu") and line[3:4].isdigit())
    except OSError:
        count = 0
    return count or os.cpu_count() or 1

