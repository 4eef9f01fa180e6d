"""Where the running exporter's CPU goes, thread by thread, with nothing scraping it.

    .venv/bin/python bench/threads.py [--seconds 30] [-- extra exporter flags]

Starts the real exporter on the bench's fixtures (8 fake GPUs + RAPL, 1 s sampling, as
bench/overhead.py), lets it settle for 10 s, then reads each thread's run time (ns) and time slices
from /proc/<pid>/task/<tid>/schedstat over the window: the CPU each thread used a second and how
often it woke, and what one sample itself took (the mean of footprint_sample_duration_seconds over the
window, one scrape at each end): the thread's CPU less that is the wake-up and the loop. A quick
check between full runs of bench/overhead.py (which counts the whole process through its cgroup);
prints a table, writes nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import common


def threads(pid: int) -> dict[str, tuple[str, int, int]]:
    """tid -> (name, run ns, time slices) of every thread of `pid` now."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            run_ns, _, slices = map(int, Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split())
        except OSError:  # the thread ended meanwhile
            continue
        out[tid] = (name, run_ns, slices)
    return out


def sample_duration(url: str) -> tuple[float, float]:
    """The sample-duration histogram's sum (s) and count now."""
    text = common.http_get(url).decode()
    found = [re.search(rf"^footprint_sample_duration_seconds_{part} (\S+)$", text, re.M) for part in ("sum", "count")]
    total, count = (float(m.group(1)) if m else float("nan") for m in found)
    return total, count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("flags", nargs="*", help="more exporter flags (after --)")
    args = parser.parse_args()
    with common.fixture() as fx:
        port = common.free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        with common.Proc(common.exporter_cmd(port, fx, *args.flags), common.exporter_env(fx), "threads") as proc:
            common.wait_for(proc, lambda: common.valid_scrape(common.http_get(url).decode()), 30, "valid scrape")
            time.sleep(10.0)
            sum_before, count_before = sample_duration(url)
            before, started = threads(proc.pid), time.monotonic()
            time.sleep(args.seconds)
            after, seconds = threads(proc.pid), time.monotonic() - started
            sum_after, count_after = sample_duration(url)
            proc.stop()
    print("| thread | CPU ms a second | wake-ups a second |")
    print("|---|---|---|")
    total = 0.0
    for tid, (name, run_ns, slices) in sorted(after.items()):
        _, run_before, slices_before = before.get(tid, (name, 0, 0))
        ms = (run_ns - run_before) / 1e6 / seconds
        total += ms
        print(f"| {name} {tid} | {ms:.4f} | {(slices - slices_before) / seconds:.2f} |")
    print(f"| all | {total:.4f} | |")
    samples = count_after - count_before
    mean = (sum_after - sum_before) / samples * 1e3 if samples > 0 else float("nan")
    print(f"\none sample itself (footprint_sample_duration_seconds): {mean:.4f} ms, mean of {samples:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
