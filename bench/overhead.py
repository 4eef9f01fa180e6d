"""Benchmark 1: what sampling costs, in CPU time of the process, against CodeCarbon and a floor.

Contenders, one at a time, each read the same 8 fake GPUs (one libnvidia-ml) and the same two RAPL
packages (one fixture tree):
- footprint: the real exporter at 1 s sampling, without scrapes and then with a scrape every 15 s;
  once with 200 pods x 3 containers attributed (fake API server, pod-resources, cgroups) and once
  without attribution.
- codecarbon: CodeCarbon's OfflineEmissionsTracker(measure_power_secs=1), in its own venv, in a
  network namespace with no interfaces (`unshare -n`) and a mount namespace where the RAPL fixture is
  bound over /sys/class (so it reads the same packages).
- floor: a loop that only reads the same sensors at 1 Hz (bench/floor_loop.py).

Each process is put into its own cgroup so its CPU time counts every thread, including ones that
have exited (scrape handlers); it warms up, then CPU time is read over a fixed window.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import common
import pods as k8s
from common import Fixture, Proc

SCRAPE_INTERVAL = 15.0
PODS = 200


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


def run_codecarbon(fx: Fixture, warmup: float, window: float) -> dict[str, object]:
    venv_python = subprocess.run(["bash", str(common.BENCH / "codecarbon_venv.sh")], check=True,
                                 capture_output=True, text=True).stdout.strip().splitlines()[-1]
    shim = fx.root / "shim"
    shim.mkdir(exist_ok=True)
    smi = shim / "nvidia-smi"  # CodeCarbon only checks that `nvidia-smi --help` runs before using pynvml
    smi.write_text("#!/bin/sh\nexit 0\n")
    smi.chmod(0o755)
    env = {**os.environ, **fx.env(), "PATH": f"{shim}:{os.environ.get('PATH', '')}",
           "CODECARBON_LOG_LEVEL": "warning"}
    script = str(common.BENCH / "codecarbon_tracker.py")
    mode = isolation()
    if mode == "netns+mountns":
        cmd = ["unshare", "-n", "-m", "sh", "-c", 'mount --bind "$1" /sys/class && exec "$2" "$3"', "sh",
               str(fx.rapl.sys_class), venv_python, script]
    elif mode == "netns":
        cmd = ["unshare", "-n", venv_python, script]
    else:
        cmd = [venv_python, script]
    with Proc(cmd, env, "codecarbon") as proc:
        clock = common.CpuClock(proc.pid, "codecarbon")
        try:
            common.wait_for(proc, lambda: "ready" in proc.log().splitlines(), 120, "tracking", poll=0.1)
            time.sleep(warmup)
            result = measure(clock, window)
            proc.stop(timeout=60)
        finally:
            clock.close()
        report: dict[str, object] = {}
        for line in proc.log().splitlines():
            if line.startswith("{"):
                report = json.loads(line)
        valid = report.get("codecarbon_gpu_count") == common.GPUS and float(str(report.get("gpu_energy_kwh") or 0)) > 0
        return {
            "window": result.figures(),
            "isolation": mode,
            "rapl_fixture": mode == "netns+mountns",
            "measured_all_gpus": valid,
            "cpu_clock": clock.method,
            "version": subprocess.run([venv_python, "-c", "import codecarbon; print(codecarbon.__version__)"],
                                      capture_output=True, text=True).stdout.strip(),
            **report,
        }


def run_floor(fx: Fixture, warmup: float, window: float) -> dict[str, object]:
    env = {**os.environ, **fx.env()}
    cmd = [sys.executable, str(common.BENCH / "floor_loop.py"), str(fx.rapl.sysfs)]
    with Proc(cmd, env, "floor") as proc:
        clock = common.CpuClock(proc.pid, "floor")
        try:
            common.wait_for(proc, lambda: "ready gpus=8" in proc.log(), 30, "first round")
            time.sleep(warmup)
            result = measure(clock, window)
        finally:
            proc.stop()
            clock.close()
        return {"window": result.figures(), "cpu_clock": clock.method}


def run(quick: bool, with_pods: bool = True) -> dict[str, object]:
    warmup, window = (5.0, 15.0) if quick else (10.0, 60.0)
    figures: dict[str, object] = {"warmup_seconds": warmup, "window_seconds": window, "sample_interval_s": 1.0,
                                  "gpus": common.GPUS, "rapl_packages": 2}
    with common.fixture() as fx:
        common.log("overhead: footprint, 8 GPUs + RAPL, no attribution")
        figures["footprint"] = run_footprint(fx, [], "footprint", warmup, window)
        if with_pods:
            common.log(f"overhead: footprint, 8 GPUs + RAPL + {PODS} pods x 3 containers")
            with k8s.pods(PODS * k8s.CONTAINERS_PER_POD) as p:
                p.start_advancing()
                figures["footprint_pods"] = {
                    "pods": PODS, "containers": p.containers,
                    **run_footprint(fx, p.flags, "footprint-pods", warmup, window, expect_workloads=True),
                }
        common.log("overhead: CodeCarbon offline tracker")
        figures["codecarbon"] = run_codecarbon(fx, warmup, window)
        common.log("overhead: floor (sensor reads only)")
        figures["floor"] = run_floor(fx, warmup, window)
    return figures


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(args.quick), indent=2))


if __name__ == "__main__":
    threading.current_thread().name = "overhead"
    main()
