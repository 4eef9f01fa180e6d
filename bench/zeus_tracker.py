"""Zeus's ZeusMonitor as a stand-alone 1 Hz monitor, for bench/overhead.py (runs in Zeus's venv).

ZeusMonitor measures windows: `begin_window` reads every GPU's energy counter (NVML, Volta and newer)
and every RAPL package and dram counter, `end_window` reads them again and returns the difference.
A monitor that reports every second is an `end_window` then a `begin_window` each second, with
`sync_execution=False` (no framework to synchronise; the default would import torch). ZeusMonitor
itself spawns one process per RAPL file that polls it for wraparounds (RaplWraparoundTracker): they
are part of what Zeus costs and run in the same cgroup.

Prints `ready` once the first window is open; on SIGTERM ends the window and prints one JSON line
with what it measured, so the benchmark can check that it read the 8 GPUs and the RAPL packages.
"""

from __future__ import annotations

import importlib.metadata
import json
import signal
import sys
import threading
import time

from zeus.monitor import ZeusMonitor


def main() -> int:
    interval = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    monitor = ZeusMonitor()
    gpu_j = cpu_j = dram_j = 0.0
    windows = 0
    monitor.begin_window("tick", sync_execution=False)
    print(f"ready gpus={len(monitor.gpu_indices)} cpus={len(monitor.cpu_indices)}", flush=True)
    next_at = time.monotonic() + interval
    while not done.wait(max(next_at - time.monotonic(), 0.0)):
        m = monitor.end_window("tick", sync_execution=False)
        monitor.begin_window("tick", sync_execution=False)
        gpu_j += sum(m.gpu_energy.values())
        cpu_j += sum((m.cpu_energy or {}).values())
        dram_j += sum((m.dram_energy or {}).values())
        windows += 1
        next_at += interval
    print(json.dumps({
        "zeus_gpu_count": len(monitor.gpu_indices),
        "zeus_cpu_count": len(monitor.cpu_indices),
        "zeus_dram": monitor.cpus.supportsGetDramEnergyConsumption(0) if monitor.cpu_indices else False,
        "gpu_energy_j": gpu_j,
        "cpu_energy_j": cpu_j,
        "dram_energy_j": dram_j,
        "windows": windows,
        "version": importlib.metadata.version("zeus-ml"),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
