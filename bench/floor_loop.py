"""The floors for bench/overhead.py: loops that only read the sensors the exporter reads, at 1 Hz.

Modes (argv[2]), each the least some way of reading the same 8 GPUs and 4 RAPL files can cost:
- `pynvml`: NVML total energy and power of every GPU through pynvml (the bindings the exporter uses)
  and every RAPL package and dram `energy_uj` file, opened and read each time;
- `energy`: only the energy counters through pynvml, and the RAPL files;
- `ctypes`: the energy counters through one prebuilt ctypes function pointer on the library pynvml
  loaded (no pynvml wrapper per call), the RAPL files by pread on descriptors kept open;
- `idle`: nothing read: a Python loop waking once a second.
Each sleeps between rounds on a held lock, as the exporter's Worker does.
No accounting, no HTTP, no metrics. Prints `ready` after the first round; runs until SIGTERM.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

import pynvml

MODES = ("pynvml", "energy", "ctypes", "idle")


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


def reader(mode: str, sysfs: str) -> tuple[int, int, object]:
    """(GPUs, RAPL files, a function doing one round of reads and returning their sum)."""
    if mode == "idle":
        return 0, 0, lambda: 1
    pynvml.nvmlInit()
    handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    files = rapl_files(sysfs)
    if mode == "ctypes":
        fn = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetTotalEnergyConsumption")
        fn.argtypes = [pynvml.c_nvmlDevice_t, ctypes.POINTER(ctypes.c_ulonglong)]
        fn.restype = ctypes.c_int
        value = ctypes.c_ulonglong()
        ref = ctypes.byref(value)
        fds = [os.open(path, os.O_RDONLY) for path in files]
        pread = os.pread

        def fast() -> int:
            total = 0
            for h in handles:
                if fn(h, ref) == 0:
                    total += value.value
            for fd in fds:
                total += int(pread(fd, 32, 0))
            return total

        return len(handles), len(files), fast

    def rapl() -> int:
        total = 0
        for path in files:
            with open(path, encoding="ascii") as fh:
                total += int(fh.read())
        return total

    if mode == "energy":
        return len(handles), len(files), lambda: sum(
            pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles) + rapl()
    return len(handles), len(files), lambda: sum(
        pynvml.nvmlDeviceGetTotalEnergyConsumption(h) + pynvml.nvmlDeviceGetPowerUsage(h) for h in handles) + rapl()


def main() -> int:
    sysfs = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) > 2 else "pynvml"
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    if mode not in MODES:
        print(f"mode must be one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    # Sleeping as footprint's Worker does, on a held lock that SIGTERM's handler releases (an Event's wait
    # costs 35-40 us more a wake: bench/wake.py): what the floor saves there, the exporter saves too.
    asleep, stopping = threading.Lock(), []
    asleep.acquire()

    def stop(*_: object) -> None:
        stopping.append(True)
        asleep.release()

    signal.signal(signal.SIGTERM, stop)
    gpus, files, read = reader(mode, sysfs)
    total = 0
    next_at = time.monotonic()
    first = True
    while not stopping:
        total += read()  # type: ignore[operator]
        if first:
            print(f"ready gpus={gpus} rapl_files={files}", flush=True)
            first = False
        next_at += interval
        asleep.acquire(True, max(next_at - time.monotonic(), 0.0))
    return 0 if total > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
