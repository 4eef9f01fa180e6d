"""Benchmark 1: what sampling costs, in CPU time of the process, against CodeCarbon, Zeus and floors.

Contenders, one at a time, each read the same 8 fake GPUs (one libnvidia-ml) and the same two RAPL
packages (one fixture tree):
- footprint: the real exporter at 1 s sampling, without scrapes and then with a scrape every 15 s;
  once with 200 pods x 3 containers attributed (fake API server, pod-resources, cgroups) and once
  without attribution.
- codecarbon: CodeCarbon's OfflineEmissionsTracker(measure_power_secs=1), in its own venv, in a
  network namespace with no interfaces (`unshare -n`) and a mount namespace where the RAPL fixture is
  bound over /sys/class and /sys/devices/virtual (so it reads the same packages through the same links).
- zeus: Zeus's ZeusMonitor closing and opening a window every second (bench/zeus_tracker.py), in its
  own venv, isolated the same way.
- floors: loops that only read the same sensors at 1 Hz (bench/floor_loop.py), one per mode.

Footprint (no attribution, no scrape), Zeus and CodeCarbon run in turns, three rounds, and each is
reported as the median of its three windows: the machine's load drifts, and alternating spreads the
drift over all three.

Each process is put into its own cgroup so its CPU time counts every thread, including ones that
have exited (scrape handlers); it warms up, then CPU time is read over a fixed window.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import common
import pods as k8s
from common import Fixture, Proc

SCRAPE_INTERVAL = 15.0
PODS = 200
# The exporter lists pods every 30 s by default (--kubernetes.refresh-interval), ~26 ms of CPU a list with
# 200 pods. A 40 s window holds one list or two, which moved a window by 0.65 ms a second: more than
# the scrapes measured against it. The pods' windows are whole multiples of it, so each holds as many.
POD_LIST_SECONDS = 30.0


@dataclass
class Window:
    cpu_seconds: float
    wall_seconds: float
    samples: float  # measurements taken in the window (1 Hz)
    scrapes: int = 0

    def figures(self) -> dict[str, float]:
        return {
            "cpu_seconds": round(self.cpu_seconds, 6),
            "wall_seconds": round(self.wall_seconds, 3),
            "scrapes": self.scrapes,
            "cpu_ms_per_sample": round(self.cpu_seconds / self.samples * 1e3, 4),
            "core_percent": round(self.cpu_seconds / self.wall_seconds * 100, 4),
            "cpu_seconds_per_hour": round(self.cpu_seconds / self.wall_seconds * 3600, 2),
        }


def measure(clock: common.CpuClock, seconds: float, interval: float = 1.0,
            scrape: Callable[[], object] | None = None) -> Window:
    """CPU time over `seconds`; with `scrape`, one call every 15 s, the first half an interval in."""
    scrapes = 0
    start_cpu, start = clock.seconds(), time.monotonic()
    if scrape is None:
        time.sleep(seconds)
    else:
        next_at = start + min(SCRAPE_INTERVAL, seconds) / 2
        while True:
            now = time.monotonic()
            if next_at >= start + seconds:
                time.sleep(max(start + seconds - now, 0))
                break
            time.sleep(max(next_at - now, 0))
            scrape()
            scrapes += 1
            next_at += SCRAPE_INTERVAL
    wall = time.monotonic() - start
    cpu = clock.seconds() - start_cpu
    return Window(cpu, wall, wall / interval, scrapes)


def proc_stat_seconds(pid: int) -> float:
    """CPU of one process (its threads, not its children), from /proc/<pid>/stat in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(clock: common.CpuClock, proc: Proc, limit: float = 120.0, quiet_ms: float = 20.0) -> float:
    """Wait until the process spends under `quiet_ms` of CPU in each of 3 seconds running (its start-up
    is over: Zeus's spawned RAPL pollers import zeus, pandas and friends for seconds); returns the wait."""
    start = time.monotonic()
    calm, last = 0, clock.seconds()
    while calm < 3 and time.monotonic() - start < limit and proc.alive():
        time.sleep(1.0)
        now = clock.seconds()
        calm = calm + 1 if (now - last) * 1e3 < quiet_ms else 0
        last = now
    return round(time.monotonic() - start, 1)


def sample_duration(url: str) -> dict[str, float]:
    """The exporter's own footprint_sample_duration_seconds: wall time per sample (sum / count)."""
    text = common.http_get(url).decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("footprint_sample_duration_seconds_sum") or line.startswith(
                "footprint_sample_duration_seconds_count"):
            name, value = line.rsplit(" ", 1)
            values[name.rsplit("_", 1)[1]] = float(value)
    count = values.get("count", 0.0)
    return {"sample_wall_ms_mean": round(values.get("sum", 0.0) / count * 1e3, 4) if count else float("nan")}


@contextlib.contextmanager
def exporter(fx: Fixture, flags: list[str], name: str) -> Iterator[tuple[Proc, common.CpuClock, str]]:
    port = common.free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with Proc(common.exporter_cmd(port, fx, *flags), common.exporter_env(fx), name) as proc:
        clock = common.CpuClock(proc.pid, name)
        try:
            common.wait_for(proc, lambda: common.valid_scrape(common.http_get(url).decode()), 30, "valid scrape")
            yield proc, clock, url
        finally:
            proc.stop()
            clock.close()


def run_footprint(fx: Fixture, flags: list[str], name: str, warmup: float, window: float,
                  expect_workloads: bool = False) -> dict[str, object]:
    with exporter(fx, flags, name) as (proc, clock, url):
        time.sleep(warmup)
        if expect_workloads:
            common.wait_for(proc, lambda: "footprint_workload_energy_joules_total{" in common.http_get(url).decode(),
                            30, "workload series")
        quiet = measure(clock, window)
        scraped = measure(clock, window, scrape=lambda: common.http_get(url))
        body = common.http_get(url)
        return {
            "no_scrape": quiet.figures(),
            "scrape_15s": scraped.figures(),
            "series": common.sample_lines(body),
            "payload_bytes": len(body),
            "cpu_clock": clock.method,
            **sample_duration(url),
        }


# --- CodeCarbon -----------------------------------------------------------------------------------


def isolation() -> str:
    """How CodeCarbon can be cut off the network here: netns+mountns, netns only, or nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "none"
    for mode, args in (("netns+mountns", ["-n", "-m"]), ("netns", ["-n"])):
        if subprocess.run([unshare, *args, "true"], capture_output=True).returncode == 0:
            return mode
    return "none"


def venv_python(name: str, dist: str, version: str) -> str:
    """The python of a peer's own venv, installed by bench/peer_venv.sh (idempotent)."""
    return subprocess.run(["bash", str(common.BENCH / "peer_venv.sh"), name, dist, version], check=True,
                          capture_output=True, text=True).stdout.strip().splitlines()[-1]


def isolated(fx: Fixture, mode: str, cmd: list[str]) -> list[str]:
    """`cmd` cut off the network, seeing the RAPL fixture as /sys (where the namespaces allow)."""
    if mode == "netns+mountns":
        return ["unshare", "-n", "-m", "sh", "-c",
                'mount --bind "$1/class" /sys/class && mount --bind "$1/devices/virtual" /sys/devices/virtual'
                ' && shift && exec "$@"', "sh", str(fx.rapl.sysfs), *cmd]
    if mode == "netns":
        return ["unshare", "-n", *cmd]
    return cmd



def last_report(log: str) -> dict[str, object]:
    """The tracker's summary: the last JSON object line it logged (empty if it logged none)."""
    report: dict[str, object] = {}
    for line in log.splitlines():
        if line.startswith("{"):
            report = json.loads(line)
    return report

def run_codecarbon(fx: Fixture, warmup: float, window: float) -> dict[str, object]:
    python = venv_python("codecarbon", "codecarbon", os.environ.get("CODECARBON_VERSION", "3.3.2"))
    shim = fx.root / "shim"
    shim.mkdir(exist_ok=True)
    smi = shim / "nvidia-smi"  # CodeCarbon only checks that `nvidia-smi --help` runs before using pynvml
    smi.write_text("#!/bin/sh\nexit 0\n")
    smi.chmod(0o755)
    env = {**os.environ, **fx.env(), "PATH": f"{shim}:{os.environ.get('PATH', '')}",
           "CODECARBON_LOG_LEVEL": "warning"}
    mode = isolation()
    cmd = isolated(fx, mode, [python, str(common.BENCH / "codecarbon_tracker.py")])
    with Proc(cmd, env, "codecarbon") as proc:
        clock = common.CpuClock(proc.pid, "codecarbon")
        try:
            common.wait_for(proc, lambda: "ready" in proc.log().splitlines(), 120, "tracking", poll=0.1)
            time.sleep(warmup)
            result = measure(clock, window)
            proc.stop(timeout=60)
        finally:
            clock.close()
        report = last_report(proc.log())
        valid = report.get("codecarbon_gpu_count") == common.GPUS and float(str(report.get("gpu_energy_kwh") or 0)) > 0
        return {
            "window": result.figures(),
            "isolation": mode,
            "rapl_fixture": mode == "netns+mountns",
            "measured_all_gpus": valid,
            "cpu_clock": clock.method,
            "version": subprocess.run([python, "-c", "import codecarbon; print(codecarbon.__version__)"],
                                      capture_output=True, text=True).stdout.strip(),
            **report,
        }


def run_zeus(fx: Fixture, warmup: float, window: float) -> dict[str, object]:
    python = venv_python("zeus", "zeus-ml", os.environ.get("ZEUS_VERSION", "0.11.0.post1"))
    env = {**os.environ, **fx.env(), "ZEUS_LOG_LEVEL": "WARNING"}
    mode = isolation()
    cmd = isolated(fx, mode, [python, str(common.BENCH / "zeus_tracker.py")])
    with Proc(cmd, env, "zeus") as proc:
        clock = common.CpuClock(proc.pid, "zeus")
        try:
            common.wait_for(proc, lambda: "ready gpus=" in proc.log(), 120, "first window", poll=0.1)
            settled = settle(clock, proc)
            time.sleep(warmup)
            main_before = proc_stat_seconds(proc.pid)
            result = measure(clock, window)
            main_ms = (proc_stat_seconds(proc.pid) - main_before) / result.samples * 1e3
            proc.stop(timeout=60)
        finally:
            clock.close()
        report = last_report(proc.log())
        valid = (report.get("zeus_gpu_count") == common.GPUS and report.get("zeus_cpu_count") == 2
                 and all(float(str(report.get(k) or 0)) > 0 for k in ("gpu_energy_j", "cpu_energy_j")))
        return {"window": result.figures(), "isolation": mode, "rapl_fixture": mode == "netns+mountns",
                "measured_all_gpus_and_rapl": valid, "settle_seconds": settled,
                "main_process_cpu_ms_per_sample": round(main_ms, 3), "cpu_clock": clock.method, **report}


def run_floor(fx: Fixture, warmup: float, window: float, mode: str = "pynvml") -> dict[str, object]:
    env = {**os.environ, **fx.env()}
    cmd = [sys.executable, str(common.BENCH / "floor_loop.py"), str(fx.rapl.sysfs), mode]
    with Proc(cmd, env, f"floor-{mode}") as proc:
        clock = common.CpuClock(proc.pid, f"floor-{mode}")
        try:
            common.wait_for(proc, lambda: "ready gpus=" in proc.log(), 30, "first round")
            time.sleep(warmup)
            result = measure(clock, window)
        finally:
            proc.stop()
            clock.close()
        return {"window": result.figures(), "mode": mode, "cpu_clock": clock.method}


ROUNDS = 3
FLOORS = ("pynvml", "energy", "ctypes", "idle")


def median_window(windows: list[dict[str, float]]) -> dict[str, float]:
    """The window whose CPU per sample is the median of the rounds."""
    ordered = sorted(windows, key=lambda w: w["cpu_ms_per_sample"])
    return ordered[len(ordered) // 2]


def run(quick: bool, with_pods: bool = True) -> dict[str, object]:
    warmup, window = (5.0, 15.0) if quick else (10.0, 40.0)
    figures: dict[str, object] = {"warmup_seconds": warmup, "window_seconds": window, "sample_interval_s": 1.0,
                                  "gpus": common.GPUS, "rapl_packages": 2, "rounds": ROUNDS}
    with common.fixture() as fx:
        rounds: dict[str, list[dict[str, object]]] = {"footprint": [], "zeus": [], "codecarbon": []}
        for k in range(ROUNDS):
            common.log(f"overhead round {k + 1}/{ROUNDS}: footprint (8 GPUs + RAPL), Zeus, CodeCarbon")
            rounds["footprint"].append(run_footprint(fx, [], "footprint", warmup, window))
            rounds["zeus"].append(run_zeus(fx, warmup, window))
            rounds["codecarbon"].append(run_codecarbon(fx, warmup, window))
        ours = rounds["footprint"]
        figures["footprint"] = {**ours[-1],
                                "no_scrape": median_window([r["no_scrape"] for r in ours]),  # type: ignore[misc]
                                "scrape_15s": median_window([r["scrape_15s"] for r in ours]),  # type: ignore[misc]
                                "rounds_cpu_ms_per_sample": [r["no_scrape"]["cpu_ms_per_sample"]  # type: ignore[index]
                                                             for r in ours]}
        for peer in ("zeus", "codecarbon"):
            runs = rounds[peer]
            figures[peer] = {**runs[-1], "window": median_window([r["window"] for r in runs]),  # type: ignore[misc]
                             "rounds_cpu_ms_per_sample": [r["window"]["cpu_ms_per_sample"]  # type: ignore[index]
                                                          for r in runs]}
        if with_pods:
            common.log(f"overhead: footprint, 8 GPUs + RAPL + {PODS} pods x 3 containers")
            pods_window = math.ceil(window / POD_LIST_SECONDS) * POD_LIST_SECONDS
            with k8s.pods(PODS * k8s.CONTAINERS_PER_POD) as p:
                p.start_advancing()
                figures["footprint_pods"] = {
                    "pods": PODS, "containers": p.containers, "window_seconds": pods_window,
                    **run_footprint(fx, p.flags, "footprint-pods", warmup, pods_window, expect_workloads=True),
                }
        for mode in FLOORS:
            common.log(f"overhead: floor ({mode})")
            figures["floor" if mode == "pynvml" else f"floor_{mode}"] = run_floor(fx, warmup, window, mode)
    return figures


def main() -> None:
    common.print_figures(__doc__, run)


if __name__ == "__main__":
    threading.current_thread().name = "overhead"
    main()
