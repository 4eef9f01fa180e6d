"""Auto-detection: which meters run on this host, and why the others do not.

Real meters first (rapl, nvml, amdsmi or else its hwmon fallback); the estimate meter then covers
only the components no real meter does, so nothing is counted twice. Every decision is kept as a line for `doctor`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from footprint.config import Settings
from footprint.meters.base import Meter, MeterUnavailable

log = logging.getLogger("footprint.meters")


@dataclass
class Detection:
    meters: list[Meter] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # why a meter is off or absent


def detect(settings: Settings) -> Detection:
    found = Detection()
    covered: set[str] = set()

    if settings.meter_rapl:
        from footprint.meters.rapl import RaplMeter

        try:
            rapl = RaplMeter(settings)
            found.meters.append(rapl)
            covered |= rapl.components
        except MeterUnavailable as exc:
            found.notes.append(f"rapl: not used: {exc}")
    else:
        found.notes.append("rapl: disabled (--no-meter.rapl)")

    if settings.meter_nvml:
        try:
            from footprint.meters.nvml import NvmlMeter

            found.meters.append(NvmlMeter(settings))
        except MeterUnavailable as exc:
            found.notes.append(f"nvml: not used: {exc}")
    else:
        found.notes.append("nvml: disabled (--no-meter.nvml)")

    if settings.meter_amdsmi:
        from footprint.meters.amdsmi import AmdHwmonMeter, AmdSmiMeter

        try:
            found.meters.append(AmdSmiMeter(settings))
        except MeterUnavailable as exc:
            found.notes.append(f"amdsmi: not used: {exc}")
            try:  # only where amdsmi is not available, so no AMD GPU is read twice
                found.meters.append(AmdHwmonMeter(settings))
            except MeterUnavailable as hwmon_exc:
                found.notes.append(f"amdgpu_hwmon: not used: {hwmon_exc}")
    else:
        found.notes.append("amdsmi: disabled (--no-meter.amdsmi)")

    missing = {"cpu", "dram"} - covered
    if settings.meter_estimate and missing:
        from footprint.meters.estimate import EstimateMeter

        found.meters.append(EstimateMeter(settings, missing))
    elif missing:
        found.notes.append(f"estimate: disabled (--no-meter.estimate): {', '.join(sorted(missing))} not measured")
    for note in found.notes:
        log.info(note)
    return found
