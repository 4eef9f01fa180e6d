"""Auto-detection: which meters run on this host, and why the others do not.

Real meters first (rapl, nvml, amdsmi or else its hwmon fallback); the estimate meter then covers,
at each read, only the CPU packages and DRAM that RAPL does not read at that moment, so nothing is
counted twice and nothing is left out when a zone appears or stops being readable. Every decision
is kept as a line for `doctor`. This is the one place that reads `Settings` for the meters: the
`*_meter(settings)` builders pass each meter only the values it uses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from footprint.accounting.ledger import parse_max_watts
from footprint.config import Settings
from footprint.meters.base import Meter, MeterUnavailable

if TYPE_CHECKING:
    from footprint.meters.amdsmi import AmdHwmonMeter, AmdSmiMeter
    from footprint.meters.estimate import EstimateMeter
    from footprint.meters.nvml import NvmlMeter
    from footprint.meters.rapl import RaplMeter

log = logging.getLogger("footprint.meters")


@dataclass
class Detection:
    meters: list[Meter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a meter is off or absent


def rapl_meter(settings: Settings, clock: Callable[[], float] = time.monotonic) -> RaplMeter:
    from footprint.meters.rapl import RaplMeter

    return RaplMeter(sysfs=settings.path_sysfs, procfs=settings.path_procfs, sample_interval=settings.sample_interval,
                     max_watts=parse_max_watts(settings.counter_max_watts), clock=clock)


def estimate_meter(settings: Settings, components: set[str], clock: Callable[[], float] = time.monotonic,
                   covered: Callable[[], set[tuple[str, str]]] = set) -> EstimateMeter:
    from footprint.meters.estimate import EstimateMeter

    return EstimateMeter(components, sysfs=settings.path_sysfs, procfs=settings.path_procfs,
                         cpu_idle_watts=settings.estimate_cpu_idle_watts,
                         cpu_max_watts=settings.estimate_cpu_max_watts,
                         dram_watts_per_gib=settings.estimate_dram_watts_per_gib, clock=clock, covered=covered)


def nvml_meter(settings: Settings, clock: Callable[[], float] = time.monotonic,
               retry_interval: float | None = None) -> NvmlMeter:
    from footprint.meters.nvml import NvmlMeter

    return NvmlMeter(sample_interval=settings.sample_interval, attribution_interval=settings.attribution_interval,
                     max_watts=parse_max_watts(settings.counter_max_watts).get("gpu"), clock=clock,
                     retry_interval=retry_interval)


def amdsmi_meter(settings: Settings, clock: Callable[[], float] = time.monotonic,
                 retry_interval: float | None = None, device_prefix: str = "") -> AmdSmiMeter:
    from footprint.meters.amdsmi import AmdSmiMeter

    return AmdSmiMeter(rocm=settings.path_rocm, sample_interval=settings.sample_interval,
                       max_watts=parse_max_watts(settings.counter_max_watts).get("gpu"), clock=clock,
                       retry_interval=retry_interval, device_prefix=device_prefix)


def amd_hwmon_meter(settings: Settings, clock: Callable[[], float] = time.monotonic,
                    device_prefix: str = "") -> AmdHwmonMeter:
    from footprint.meters.amdsmi import AmdHwmonMeter

    return AmdHwmonMeter(sysfs=settings.path_sysfs, max_watts=parse_max_watts(settings.counter_max_watts).get("gpu"),
                         clock=clock, device_prefix=device_prefix)


def detect(settings: Settings) -> Detection:
    found = Detection()
    covered: Callable[[], set[tuple[str, str]]] = set  # CPU/DRAM devices a real meter reads now

    if settings.meter_rapl:
        try:
            rapl = rapl_meter(settings)
            found.meters.append(rapl)
            covered = rapl.covered
        except MeterUnavailable as exc:
            found.notes.append(f"rapl: not used: {exc}")
    else:
        found.notes.append("rapl: disabled (--no-meter.rapl)")

    if settings.meter_nvml:
        try:
            found.meters.append(nvml_meter(settings))
        except MeterUnavailable as exc:
            found.notes.append(f"nvml: not used: {exc}")
    else:
        found.notes.append("nvml: disabled (--no-meter.nvml)")

    if settings.meter_amdsmi:
        # NVIDIA GPUs are devices "0", "1"...: AMD ones on the same node become "amd0"... (never the same key)
        prefix = "amd" if any(m.name == "nvml" for m in found.meters) else ""
        try:
            found.meters.append(amdsmi_meter(settings, device_prefix=prefix))
        except MeterUnavailable as exc:
            found.notes.append(f"amdsmi: not used: {exc}")
            try:  # only where amdsmi is not available, so no AMD GPU is read twice
                found.meters.append(amd_hwmon_meter(settings, device_prefix=prefix))
            except MeterUnavailable as hwmon_exc:
                found.notes.append(f"amdgpu_hwmon: not used: {hwmon_exc}")
    else:
        found.notes.append("amdsmi: disabled (--no-meter.amdsmi)")

    if settings.meter_estimate:
        try:  # every read, it estimates the CPU packages and DRAM that RAPL does not read at that moment
            found.meters.append(estimate_meter(settings, {"cpu", "dram"}, covered=covered))
        except MeterUnavailable as exc:
            found.notes.append(f"estimate: not used: {exc}")
    else:
        found.notes.append("estimate: disabled (--no-meter.estimate): CPU and DRAM that RAPL does not read are "
                           "not measured")
    for note in found.notes:
        log.info(note)
    return found
