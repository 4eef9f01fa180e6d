"""A/B: the CPU per 1 Hz sample of two copies of the exporter, launched one at a time, alternating.

    .venv/bin/python bench/ab.py /tmp/before/exporter [--rounds 6] [--window 20] [--pods 200] [--state]

Why alternating launches and not two exporters side by side: on this VM two identical exporters run at
the same time differ by up to 1.5x for their whole life (each wakes at its own phase of the second,
and what the host does at that phase stays the same), and which one is luckier does not depend on the
code; the host's own load also drifts by several times within minutes (the idle loop's floor went
from 0.26 to 6 ms per second in one half hour). Each round launches A, then B (B first every other
round) and the idle-loop floor (bench/floor_loop.py), each alone on the bench's fixtures (8 fake GPUs +
RAPL, no attribution, no scrape; `--pods N`: N pods x 3 containers attributed as in bench/overhead.py;
`--state`: a state file of its own per launch, as the Helm chart always sets), warms up 5 s and reads
the CPU of its cgroup over the window.
Reported: each one's median over the rounds, its rounds, and each exporter's own mean sample wall
time (`footprint_sample_duration_seconds`). Nothing is written; the table is for bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import common
import overhead
import pods as k8s

WORKLOADS = "footprint_workload_energy_joules_total{"


def launch_exporter(fx: common.Fixture, exporter_dir: str, window: float, flags: list[str],
                    state: bool) -> tuple[float, float]:
    """(CPU ms per 1 Hz sample, mean sample wall ms) of one launch of the exporter in `exporter_dir`."""
    port = common.free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = common.exporter_env(fx, {"PYTHONPATH": exporter_dir})
    with tempfile.TemporaryDirectory(prefix="ab-state-") as tmp:
        cmd = common.exporter_cmd(port, fx, *flags, *([f"--state.file={tmp}/state.json"] if state else []))
        with common.Proc(cmd, env, "ab") as proc:
            clock = common.CpuClock(proc.pid, "ab")
            try:
                common.wait_for(proc, lambda: common.valid_scrape(common.http_get(url).decode()), 30, "valid scrape")
                time.sleep(5)
                if flags:  # attributed: measured once workloads have series, as bench/overhead.py does
                    common.wait_for(proc, lambda: WORKLOADS in common.http_get(url).decode(), 30, "workload series")
                figures = overhead.measure(clock, window).figures()
                return figures["cpu_ms_per_sample"], overhead.sample_duration(url)["sample_wall_ms_mean"]
            finally:
                proc.stop()
                clock.close()


def launch_idle(fx: common.Fixture, window: float) -> float:
    cmd = [sys.executable, str(common.BENCH / "floor_loop.py"), str(fx.rapl.sysfs), "idle"]
    with common.Proc(cmd, {**os.environ, **fx.env()}, "ab-idle") as proc:
        clock = common.CpuClock(proc.pid, "ab-idle")
        try:
            common.wait_for(proc, lambda: "ready gpus=" in proc.log(), 30, "first round")
            time.sleep(5)
            return float(overhead.measure(clock, window).figures()["cpu_ms_per_sample"])
        finally:
            proc.stop()
            clock.close()


@contextlib.contextmanager
def attributed(n: int) -> Iterator[list[str]]:
    """The exporter flags for n pods x 3 containers on the bench's fakes (none: no attribution)."""
    if not n:
        yield []
        return
    with k8s.pods(n * k8s.CONTAINERS_PER_POD) as p:
        p.start_advancing()  # the containers' cpu.stat counters move, so every pass splits energy
        yield p.flags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", help="the other copy's package folder (holding footprint/)")
    parser.add_argument("--after", default=str(common.EXPORTER_DIR), help="this checkout's package folder")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--pods", type=int, default=0, help="pods x 3 containers attributed (default none)")
    parser.add_argument("--state", action="store_true", help="each launch with a state file of its own")
    args = parser.parse_args()
    if not (Path(args.before) / "footprint").is_dir():
        parser.error(f"{args.before} holds no footprint package")
    cpu: dict[str, list[float]] = {"before": [], "after": [], "idle": []}
    wall: dict[str, list[float]] = {"before": [], "after": []}
    with common.fixture() as fx, attributed(args.pods) as flags:
        for k in range(args.rounds):
            order = [("before", args.before), ("after", args.after)]
            if k % 2:
                order.reverse()
            for name, folder in order:
                ms, wall_ms = launch_exporter(fx, folder, args.window, flags, args.state)
                cpu[name].append(ms)
                wall[name].append(wall_ms)
            cpu["idle"].append(launch_idle(fx, args.window))
            common.log(f"round {k + 1}/{args.rounds}: " + ", ".join(f"{n} {v[-1]:.3f} ms" for n, v in cpu.items()))
    print("| contender | CPU ms per 1 Hz sample (median) | rounds | sample wall ms (median of means) |")
    print("|---|---|---|---|")
    for name, values in cpu.items():
        walls = f"{statistics.median(wall[name]):.3f}" if name in wall else ""
        print(f"| {name} | {statistics.median(values):.3f} | {', '.join(f'{v:.2f}' for v in values)} | {walls} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
