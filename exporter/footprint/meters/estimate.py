"""Estimated CPU and DRAM power, for the devices no real meter covers right now.

CPU watts = idle + (max - idle) x utilisation over the interval (psutil, whole machine). DRAM watts =
installed GiB x W/GiB (a constant: DRAM power varies little with load). Both are labelled
`source="estimate"` and integrated into a process-local counter; they never invent energy for time
the exporter was not running.

Devices are named as RAPL names the same hardware: `package-N` per CPU package (socket, from
<sysfs>/devices/system/cpu/cpu*/topology/physical_package_id) and `dram-N` for its memory, each an
equal share of the machine's estimate. So when RAPL becomes readable for a package (or stops being),
its series keep their `device` label and only `source` changes; the estimate skips every device
`covered()` says a real meter measures, on every read.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil

from footprint.meters.base import NONE_DOWN, NOTHING, MeterError, MeterUnavailable, Reading, SteadyPlan, cpu_model

GIB = 1024**3
_CPU_DIR = re.compile(r"^cpu\d+$")


def packages(sysfs: str) -> list[int]:
    """The CPU package ids of this machine (at least [0] when the topology cannot be read)."""
    root = Path(sysfs) / "devices" / "system" / "cpu"
    found = set()
    try:
        names = [n for n in os.listdir(root) if _CPU_DIR.match(n)]
    except OSError:
        names = []
    for name in names:
        try:
            found.add(int((root / name / "topology" / "physical_package_id").read_text().strip()))
        except (OSError, ValueError):
            continue
    return sorted(p for p in found if p >= 0) or [0]


class EstimateMeter:
    name = "estimate"

    def __init__(
        self,
        components: set[str],
        *,
        sysfs: str,
        procfs: str,
        cpu_idle_watts: float,
        cpu_max_watts: float,
        dram_watts_per_gib: float,
        clock: Callable[[], float] = time.monotonic,
        covered: Callable[[], set[tuple[str, str]]] = set,
    ) -> None:
        """`components`: which of {"cpu", "dram"} to estimate; `covered`: devices a real meter reads now."""
        self.procfs = procfs
        psutil.PROCFS_PATH = procfs
        self.components = components
        self.covered = covered
        self.idle = cpu_idle_watts
        self.max = cpu_max_watts
        self.packages = packages(sysfs)
        try:
            memory = psutil.virtual_memory().total
        except (OSError, psutil.Error) as exc:
            raise MeterUnavailable(f"cannot read installed memory from {self.procfs}/meminfo: {exc}") from None
        self.dram_watts = memory / GIB * dram_watts_per_gib
        self.devices = [(c, f"{prefix}-{p}") for c, prefix in (("cpu", "package"), ("dram", "dram"))
                        if c in components for p in self.packages]
        self.clock = clock
        self.joules = dict.fromkeys(self.devices, 0.0)
        self.model = cpu_model(procfs)
        self._last: float | None = clock()  # None while a real meter covers every device (see read)
        # While a real meter covers every device: read() would read nothing (the sampler skips it).
        self.steady: SteadyPlan | None = None
        self._covered_plan = SteadyPlan(NOTHING, clock, math.inf, 0, (), (), 1.0, None)
        try:
            self._utilisation()  # starts psutil's utilisation window
        except MeterError as exc:
            raise MeterUnavailable(str(exc)) from None

    def cpu_watts(self, utilisation: float) -> float:
        """The whole machine's CPU power at this utilisation (0-1)."""
        return self.idle + (self.max - self.idle) * min(max(utilisation, 0.0), 1.0)

    def _utilisation(self) -> float:
        try:
            return float(psutil.cpu_percent(interval=None)) / 100.0
        except (OSError, psutil.Error, ValueError) as exc:  # /proc/stat gone or garbled (a dying container)
            raise MeterError(f"cannot read CPU utilisation from {self.procfs}/stat: {exc}") from None

    def read(self) -> list[Reading]:
        """Estimated readings of the devices no real meter covers now. While one covers them all (a node
        with RAPL, every sample) nothing is read and the time is not kept: the estimate's first reading of a
        device that RAPL stops covering is only a baseline for the ledger (the device's counter so far is
        RAPL's), so the interval before it is never charged either way, and the sampler can skip read()."""
        now = self.clock()
        covered = self.covered()
        if covered.issuperset(self.devices):
            self._last, self.steady = None, self._covered_plan
            return []
        dt = 0.0 if self._last is None else max(now - self._last, 0.0)
        self._last, self.steady = now, None
        todo = [key for key in self.devices if key not in covered]
        utilisation = self._utilisation() if any(c == "cpu" for c, _ in todo) else 0.0
        share = 1.0 / len(self.packages)
        readings = []
        for key in todo:
            component, device = key
            watts = (self.cpu_watts(utilisation) if component == "cpu" else self.dram_watts) * share
            self.joules[key] += watts * dt
            readings.append(Reading(component=component, device=device, source="estimate",
                                    energy_joules=self.joules[key], power_watts=watts, hardware_counter=False,
                                    info={"model": self.model} if component == "cpu" else {}))
        return readings

    def down_devices(self) -> Mapping[str, str]:
        return NONE_DOWN  # a model is never down

    def doctor_lines(self) -> list[str]:
        covered = self.covered()
        lines = []
        for component, device in self.devices:
            if (component, device) in covered:
                lines.append(f"estimate: {component} {device}: measured by RAPL, not estimated")
            elif component == "cpu":
                lines.append(
                    f"estimate: cpu {device} from utilisation, {self.idle:g} W idle to {self.max:g} W busy for the "
                    f"machine, shared by {len(self.packages)} package(s) (set --estimate.cpu-idle-watts / "
                    "--estimate.cpu-max-watts for your machine)"
                )
            else:
                lines.append(f"estimate: dram {device} at a constant {self.dram_watts / len(self.packages):.2f} W "
                             "(installed memory x W/GiB, shared by the packages)")
        return lines

    def close(self) -> None:
        pass
