"""The floor for bench/overhead.py: a loop that only reads the sensors the exporter reads, at 1 Hz.

Per second: NVML total energy and power of every GPU (pynvml, the same bindings the exporter uses)
and every RAPL package and dram `energy_uj` file. No accounting, no HTTP, no metrics: the least any
Python exporter of these sensors can spend. Prints `ready` after the first round; runs until SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pynvml


def rapl_files(sysfs: str) -> list[str]:
    root = os.path.join(sysfs, "class", "powercap")
    found = []
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if not entry.startswith("intel-rapl:"):
            continue
        with open(os.path.join(path, "name"), encoding="ascii") as fh:
            name = fh.read().strip()
        if name.startswith("package") or name == "dram":
            found.append(os.path.join(path, "energy_uj"))
    return found


def main() -> int:
    sysfs = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    pynvml.nvmlInit()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    files = rapl_files(sysfs)
    total = 0.0
    next_at = time.monotonic()
    first = True
    while not done.is_set():
        for h in handles:
            total += pynvml.nvmlDeviceGetTotalEnergyConsumption(h) + pynvml.nvmlDeviceGetPowerUsage(h)
        for path in files:
            with open(path, encoding="ascii") as fh:
                total += int(fh.read())
        if first:
            print(f"ready gpus={len(handles)} rapl_files={len(files)}", flush=True)
            first = False
        next_at += interval
        done.wait(max(next_at - time.monotonic(), 0.0))
    pynvml.nvmlShutdown()
    return 0 if total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
