"""CPU package, DRAM and platform energy from Linux powercap (RAPL) sysfs.

Layout: <sysfs>/class/powercap/intel-rapl:N/{name,energy_uj,max_energy_range_uj} for each package
(or `psys`), with sub-zones intel-rapl:N:M named core, uncore or dram. AMD Zen uses the same tree.
Core and uncore are contained in their package and are never read. The node total is packages +
dram; psys (the whole platform, where present) is exported for reference but not added on top.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from footprint.config import Settings
from footprint.meters.base import MeterError, MeterUnavailable, Reading, cpu_model

log = logging.getLogger("footprint.meters.rapl")

_ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")

PERMISSION_HINT = (
    "RAPL energy_uj is readable by root only on current kernels (PLATYPUS, CVE-2020-8694): run the "
    "exporter as root, or grant read access with `chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (a udev rule makes it stick); CPU power is estimated meanwhile"
)


@dataclass(frozen=True)
class Zone:
    path: Path
    component: str  # cpu | dram | psys
    device: str  # package-0, dram-0, psys
    wrap_joules: float | None
    in_node_total: bool


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def discover(sysfs: str) -> list[Zone]:
    """The zones worth reading, in a stable order. Empty when there is no powercap tree."""
    root = Path(sysfs) / "class" / "powercap"
    if not root.is_dir():
        return []
    zones = []
    for entry in sorted(os.listdir(root), key=_zone_sort_key):
        m = _ZONE_RE.match(entry)
        if not m:
            continue
        path = root / entry
        try:
            name = _read_text(path / "name")
        except OSError:
            continue
        top = m.group(2) is None
        if top and name.startswith("package"):
            component, device, in_total = "cpu", name, True
        elif top and name == "psys":
            component, device, in_total = "psys", "psys", False
        elif not top and name == "dram":
            component, device, in_total = "dram", f"dram-{m.group(1)}", True
        else:
            continue  # core / uncore: inside their package, never added on top
        try:
            wrap = int(_read_text(path / "max_energy_range_uj")) / 1e6
        except (OSError, ValueError):
            wrap = None
        zones.append(Zone(path, component, device, wrap, in_total))
    return zones


def _read_counter(path: str) -> int:
    """energy_uj in two syscalls and no text layer: this runs for every zone on every sample."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(os.read(fd, 32))
    finally:
        os.close(fd)


def _zone_sort_key(name: str) -> tuple[int, int, str]:
    m = _ZONE_RE.match(name)
    if not m:
        return (1 << 30, 0, name)
    return (int(m.group(1)), int(m.group(2) or -1), name)


class RaplMeter:
    name = "rapl"

    def __init__(self, settings: Settings) -> None:
        self.zones = discover(settings.path_sysfs)
        if not self.zones:
            raise MeterUnavailable(f"no RAPL zones under {settings.path_sysfs}/class/powercap")
        self.epoch = _boot_id(settings.path_procfs)
        self._counters = [str(z.path / "energy_uj") for z in self.zones]  # built once, read every sample
        model = cpu_model(settings.path_procfs)
        self.info = {"model": model} if model else {}
        self._down: dict[str, str] = {}
        try:
            _read_text(self.zones[0].path / "energy_uj")
        except PermissionError:
            raise MeterUnavailable(PERMISSION_HINT) from None

    @property
    def components(self) -> set[str]:
        return {z.component for z in self.zones if z.in_node_total}

    def read(self) -> list[Reading]:
        readings, down = [], {}
        for z, counter in zip(self.zones, self._counters, strict=True):
            try:
                uj = _read_counter(counter)
            except (OSError, ValueError) as exc:
                down[z.device] = type(exc).__name__
                continue
            readings.append(
                Reading(
                    component=z.component,
                    device=z.device,
                    source="rapl",
                    energy_joules=uj / 1e6,
                    wrap_joules=z.wrap_joules,
                    counter_epoch=self.epoch,
                    in_node_total=z.in_node_total,
                    info=self.info if z.component == "cpu" else {},
                )
            )
        self._down = down
        if not readings:
            raise MeterError(f"no RAPL zone could be read: {', '.join(sorted(down))}")
        return readings

    def down_devices(self) -> Mapping[str, str]:
        return self._down

    def describe(self) -> list[str]:
        return [
            f"rapl: {z.device} ({z.component}) from {z.path}/energy_uj"
            + ("" if z.in_node_total else ", exported but not added to the node total")
            for z in self.zones
        ]

    def close(self) -> None:
        pass


def _boot_id(procfs: str) -> str:
    """RAPL counters start at 0 on boot: the boot id tells a checkpoint from another boot apart."""
    try:
        return _read_text(Path(procfs) / "sys" / "kernel" / "random" / "boot_id")
    except OSError:
        return ""
