"""Estimated CPU and DRAM power, for components that no real meter covers.

CPU watts = idle + (max - idle) x utilisation over the interval (psutil, whole machine). DRAM watts =
installed GiB x W/GiB (a constant: DRAM power varies little with load). Both are labelled
`source="estimate"` and integrated into a process-local counter; they never invent energy for time
the exporter was not running.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import psutil

from footprint.config import Settings
from footprint.meters.base import Reading, cpu_model

GIB = 1024**3


class EstimateMeter:
    name = "estimate"

    def __init__(
        self,
        settings: Settings,
        components: set[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`components`: which of {"cpu", "dram"} to estimate (those no real meter covers)."""
        psutil.PROCFS_PATH = settings.path_procfs
        self.components = components
        self.idle = settings.estimate_cpu_idle_watts
        self.max = settings.estimate_cpu_max_watts
        self.dram_watts = psutil.virtual_memory().total / GIB * settings.estimate_dram_watts_per_gib
        self.clock = clock
        self.joules = dict.fromkeys(components, 0.0)
        self.model = cpu_model(settings.path_procfs)
        self._last = clock()
        psutil.cpu_percent(interval=None)  # starts psutil's utilisation window

    def cpu_watts(self, utilisation: float) -> float:
        return self.idle + (self.max - self.idle) * min(max(utilisation, 0.0), 1.0)

    def read(self) -> list[Reading]:
        now = self.clock()
        dt, self._last = max(now - self._last, 0.0), now
        readings = []
        if "cpu" in self.components:
            watts = self.cpu_watts(psutil.cpu_percent(interval=None) / 100.0)
            self.joules["cpu"] += watts * dt
            readings.append(self._reading("cpu", "0", watts, {"model": self.model}))
        if "dram" in self.components:
            self.joules["dram"] += self.dram_watts * dt
            readings.append(self._reading("dram", "0", self.dram_watts, {}))
        return readings

    def _reading(self, component: str, device: str, watts: float, info: Mapping[str, str]) -> Reading:
        return Reading(
            component=component,
            device=device,
            source="estimate",
            energy_joules=self.joules[component],
            power_watts=watts,
            hardware_counter=False,
            info=info,
        )

    def down_devices(self) -> Mapping[str, str]:
        return {}

    def describe(self) -> list[str]:
        lines = []
        if "cpu" in self.components:
            lines.append(
                f"estimate: cpu from utilisation, {self.idle:g} W idle to {self.max:g} W busy "
                "(set --estimate.cpu-idle-watts / --estimate.cpu-max-watts for your machine)"
            )
        if "dram" in self.components:
            lines.append(f"estimate: dram at a constant {self.dram_watts:.2f} W (installed memory x W/GiB)")
        return lines

    def close(self) -> None:
        pass

