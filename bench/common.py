"""What every benchmark shares: the machine, the fixtures (fake GPUs, RAPL tree), process CPU clocks,
starting processes on loopback, percentiles and the results files.

Benchmarks are plain modules run by bench/run.py; nothing here is a test and nothing is collected by
pytest (no test_* names).
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
CACHE = REPO / ".cache" / "bench"
# The exporter package under test; BENCH_EXPORTER_DIR points at another tree (a proposed patch).
EXPORTER_DIR = Path(os.environ.get("BENCH_EXPORTER_DIR") or REPO / "exporter").resolve()
for _p in (str(REPO), str(EXPORTER_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from tests.fakes import nvml as fake_nvml  # noqa: E402
from tests.fakes.nvml import FakeGpu, Scenario  # noqa: E402
from tests.fakes.sysfs import RaplTree  # noqa: E402

GPUS = 8


# --- machine and results ---------------------------------------------------------------------------


def machine() -> dict[str, object]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as fh:
        mem_kib = int(fh.readline().split()[1])
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:8],
    }


def write_result(out: Path, name: str, mode: str, figures: Mapping[str, object]) -> Path:
    """bench/results/<name>.json: the machine, the date, the mode and the figures."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    doc = {
        "benchmark": name,
        "mode": mode,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "exporter": exporter_revision(),
        "figures": figures,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def exporter_revision() -> dict[str, object]:
    """The commit measured, and whether the package had uncommitted changes (others work in the tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()

    if not EXPORTER_DIR.is_relative_to(REPO):  # a snapshot (git archive) says its commit in REVISION beside it
        revision = EXPORTER_DIR.parent / "REVISION"
        commit = revision.read_text().strip() if revision.exists() else "unknown"
        return {"commit": commit, "package": str(EXPORTER_DIR), "uncommitted_files": None}
    changed = git("status", "--porcelain", "--", str(EXPORTER_DIR))
    return {"commit": git("rev-parse", "--short", "HEAD"), "package": str(EXPORTER_DIR),
            "uncommitted_files": len(changed.splitlines())}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100): a value that was actually observed."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- fake NVML ------------------------------------------------------------------------------------

EXTRAS = BENCH / "nvml_extras.c"


def bench_nvml() -> Path:
    """Directory holding the bench's libnvidia-ml.so.1: the test fake plus nvml_extras.c (for CodeCarbon).

    Built once per source version, like the fake itself; every contender loads this same library.
    """
    return fake_nvml.build_fake_nvml(EXTRAS)


def preload_nvml() -> None:
    """Load the bench library into this process: pynvml's plain-soname dlopen then finds it."""
    if not _preloaded:
        _preloaded.append(ctypes.CDLL(str(bench_nvml() / fake_nvml.LIBRARY)))


_preloaded: list[ctypes.CDLL] = []


def nvml_env(scenario: Path) -> dict[str, str]:
    return {"LD_LIBRARY_PATH": str(bench_nvml()), fake_nvml.SCENARIO_ENV: str(scenario)}


def busy_gpus(epoch: float, count: int = GPUS) -> Scenario:
    """`count` H100s following the monotonic clock, each with its own repeating load pattern."""
    gpus = []
    for i in range(count):
        steps = []
        for k in range(600):  # 600 steps of 1-4 s: longer than any benchmark run
            t = k * (1.0 + (k * 7 + i * 3) % 4)
            watts = 90.0 + ((k * 131 + i * 17) % 600)
            steps.append((t, watts))
        steps.sort()
        gpus.append(FakeGpu(uuid=f"GPU-bench-{i:04d}", power=tuple(steps), utilization=(60 + i, 30)))
    return Scenario(gpus=gpus, time=None, epoch=epoch)


# --- RAPL fixture ---------------------------------------------------------------------------------


class Rapl:
    """The RAPL fixture (two packages with core and dram) whose counters move like hardware's.

    A thread in this (driver) process advances every zone at 10 Hz at its own rate, so readers see
    changing, distinct counters (CodeCarbon drops a package whose counter mirrors another's), writing
    each value in place as the kernel's attribute changes (a reader's kept-open descriptor sees it; see
    tests/fakes/sysfs.py for what real sysfs does). The
    tree has the links real kernels have (tests/fakes/sysfs.py): class/powercap/intel-rapl:N into
    devices/virtual/powercap/intel-rapl/, whose `subsystem` CodeCarbon lists and whose
    intel-rapl:N Zeus globs.
    """

    RATES_W: ClassVar[dict[str, float]] = {"intel-rapl:0": 95.0, "intel-rapl:0:0": 60.0, "intel-rapl:0:1": 12.0,
               "intel-rapl:1": 88.0, "intel-rapl:1:0": 55.0, "intel-rapl:1:1": 11.0}

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tree = RaplTree(root, packages=2, dram=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rapl-advancer", daemon=True)

    @property
    def sysfs(self) -> Path:
        return self.root

    @property
    def sys_class(self) -> Path:
        return self.root / "class"

    def _run(self) -> None:
        counters = {zone: self.tree.counter(zone) for zone in self.RATES_W}
        files = {zone: os.open(self.tree.path(zone) / "energy_uj", os.O_WRONLY) for zone in self.RATES_W}
        try:
            while not self._stop.wait(0.1):
                for zone, watts in self.RATES_W.items():
                    counters[zone] = (counters[zone] + int(watts * 0.1 * 1e6)) % self.tree.max_range_uj
                    # In place, as sysfs changes an attribute (a reader's kept-open descriptor sees it), in
                    # one write of a fixed width (no truncation: a reader never sees a shorter value with
                    # the old one's tail; the padding is whitespace every reader's int() skips).
                    os.pwrite(files[zone], f"{counters[zone]:<20}\n".encode(), 0)
        finally:
            for fd in files.values():
                os.close(fd)

    def start(self) -> Rapl:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Fixture:
    root: Path
    scenario: Path
    rapl: Rapl

    def env(self) -> dict[str, str]:
        return nvml_env(self.scenario)


@contextlib.contextmanager
def fixture(gpus: int = GPUS) -> Iterator[Fixture]:
    """A temp dir with the 8-GPU scenario and the moving RAPL tree, for the duration of a benchmark."""
    with tempfile.TemporaryDirectory(prefix="footprint-bench-") as tmp:
        root = Path(tmp)
        scenario = root / "scenario"
        busy_gpus(time.monotonic(), gpus).write(scenario)
        rapl = Rapl(root / "sys").start()
        try:
            yield Fixture(root, scenario, rapl)
        finally:
            rapl.stop()


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def exporter_cmd(port: int, fx: Fixture, *extra: str) -> list[str]:
    """The real exporter: 8 fake GPUs, the RAPL fixture, 1 s sampling, the embedded grid table (no network)."""
    return [
        sys.executable, "-m", "footprint",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--path.sysfs={fx.rapl.sysfs}",
        "--sample.interval=1s",
        "--grid.zone=FR",
        "--log.level=warn",
        *extra,
    ]


def exporter_env(fx: Fixture, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
    env["PYTHONPATH"] = str(EXPORTER_DIR)
    env.update(fx.env())
    env.update(extra or {})
    return env


class Proc:
    """A benchmarked process, its log in a temp file, stopped with SIGTERM (then SIGKILL) on exit."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], name: str) -> None:
        self.name = name
        fd, self.log_path = tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")
        self.started = time.perf_counter()
        try:
            self.popen = subprocess.Popen(list(cmd), env=dict(env), stdout=fd, stderr=subprocess.STDOUT, cwd=REPO)
        finally:
            os.close(fd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)
        return int(self.popen.returncode)

    def cleanup(self) -> None:
        Path(self.log_path).unlink(missing_ok=True)

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.cleanup()


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return bytes(resp.read())


def wait_for(proc: Proc, predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.01) -> float:
    """Poll until predicate() is true; returns seconds since the process started. Fails with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if predicate():
                return time.perf_counter() - proc.started
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before {what}:\n{proc.log()[-4000:]}")
        time.sleep(poll)
    raise RuntimeError(f"{proc.name}: no {what} within {timeout}s:\n{proc.log()[-4000:]}")


def gpu_series(text: str) -> int:
    return sum(1 for line in text.splitlines()
               if line.startswith('footprint_energy_joules_total{component="gpu"'))


def valid_scrape(text: str, gpus: int = GPUS) -> bool:
    """Every fake GPU and both RAPL packages are in the exposition: the exporter measures what it should."""
    return gpu_series(text) == gpus and 'device="package-1",source="rapl"' in text


def sample_lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


# --- CPU time and memory of another process --------------------------------------------------------


class CpuClock:
    """CPU time (user + system) of a process and every thread it ever had, in seconds.

    Precise where possible: the process goes into its own cgroup (v2 `cpu.stat` usage_usec, or v1
    `cpuacct.usage` in ns), which also counts threads that have already exited (a scrape's handler
    thread). Elsewhere (no cgroup access) it falls back to /proc/<pid>/stat, in clock ticks (10 ms).
    """

    def __init__(self, pid: int, name: str) -> None:
        self.pid = pid
        self.group: Path | None = None
        self.method = "proc-stat"
        for base, stat in ((Path("/sys/fs/cgroup"), "cpu.stat"), (Path("/sys/fs/cgroup/unified"), "cpu.stat"),
                           (Path("/sys/fs/cgroup/cpuacct"), "cpuacct.usage")):
            if not (base / "cgroup.procs").exists():
                continue
            group = base / f"footprint-bench-{name}-{pid}"
            try:
                group.mkdir()
                (group / "cgroup.procs").write_text(str(pid))
            except OSError:
                with contextlib.suppress(OSError):
                    group.rmdir()
                continue
            if (group / stat).exists():
                self.group, self.stat, self.method = group, stat, f"cgroup:{stat}"
                break
            with contextlib.suppress(OSError):
                group.rmdir()

    def seconds(self) -> float:
        if self.group is not None:
            text = (self.group / self.stat).read_text()
            if self.stat == "cpuacct.usage":
                return int(text) / 1e9
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        """Remove the cgroup once the process has exited (a live member would keep it busy)."""
        if self.group is None:
            return
        for _ in range(50):
            try:
                self.group.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pss_mib(pid: int) -> float:
    """Proportional set size: shared library pages split between the processes that map them."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def tool(name: str) -> str:
    """An external tool from PATH or <repo>/.tools/bin (scripts/install-test-tools.sh puts it there)."""
    found = shutil.which(name) or shutil.which(name, path=str(REPO / ".tools" / "bin"))
    if found is None:
        raise RuntimeError(f"{name} not found on PATH or in .tools/bin: run `make tools`")
    return found


def print_figures(doc: str | None, run: Callable[[bool], object]) -> None:
    """A benchmark module run on its own: `--quick` or not, its figures printed as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
