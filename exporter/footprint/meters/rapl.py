"""CPU package, DRAM and platform energy from Linux powercap (RAPL) sysfs.

Layout: <sysfs>/class/powercap/intel-rapl:N/{name,energy_uj,max_energy_range_uj} for each package
(or `psys`), with sub-zones intel-rapl:N:M named core, uncore or dram. AMD Zen uses the same tree.
Core and uncore are contained in their package and are never read. The node total is packages +
dram; psys (the whole platform, where present) is exported for reference but not added on top.

Zones are checked one by one: a zone whose energy_uj cannot be read (root-only since CVE-2020-8694,
and some hosts open up only the package files) is not measured, and `covered()` leaves it out so the
estimate meter fills in for it. The tree is looked at again every `rediscover_seconds` (cheaply: the
whole discovery only when the zone list changed or a zone's readability did): a zone that
appears or becomes readable later (hotplug, a late driver, an init container granting access) is
measured from then on, and one that stops being readable goes back to the estimate.

Device labels are the ones the estimate meter uses for the same hardware (`package-N`, `dram-N`),
so a CPU's series keep their `device` when RAPL takes over from the estimate or hands back to it;
only `source` says which one measured an interval.
"""

from __future__ import annotations

import contextlib
import logging
import math
import operator
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from footprint.accounting.ledger import DEFAULT_MAX_WATTS, budget_joules
from footprint.config import ConfigError
from footprint.meters.base import (
    DECIMAL_FILES,
    NO_GAUGES,
    MeterError,
    MeterUnavailable,
    Reading,
    SteadyPlan,
    boot_id,
    cpu_model,
    reading,
)

try:  # the optional C reader (meters/_fastread.c): every zone's counter in one call
    from footprint.meters import _fastread
except ImportError:  # not built where it was installed: one os.pread per zone
    _fastread = None  # type: ignore[assignment]

log = logging.getLogger("footprint.meters.rapl")

_ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
_PACKAGE_RE = re.compile(r"^package-(\d+)")

# The ceiling over a zone's highest constraint_*_max_power_uw: that is the most a power limit can be
# set to (PL1/PL2), and a package may exceed its limit for milliseconds; energy over a sample stays
# under it with room to spare.
RAPL_MARGIN = 1.5

PERMISSION_HINT = (
    "RAPL energy_uj is readable by root only on current kernels (PLATYPUS, CVE-2020-8694): run the "
    "exporter as root, or grant read access with `chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*:*/energy_uj` (a udev rule makes it stick); CPU power is estimated meanwhile"
)


@dataclass(frozen=True)
class Zone:
    path: Path
    component: str  # cpu | dram | psys
    device: str  # package-0, dram-0, psys (the estimate's label for the same hardware)
    wrap_joules: float | None
    in_node_total: bool
    max_power_watts: float | None = None  # highest constraint_*_max_power_uw, watts; None: not published


def _read_text(path: Path) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read().strip()


def _max_power(path: Path) -> float | None:
    """The highest constraint_N_max_power_uw of a zone, watts (absent, 0 or garbage: None)."""
    best = None
    try:
        names = [n for n in os.listdir(path) if n.startswith("constraint_") and n.endswith("_max_power_uw")]
    except OSError:
        return None
    for name in names:
        try:
            watts = int(_read_text(path / name)) / 1e6
        except (OSError, ValueError):
            continue
        if math.isfinite(watts) and watts > 0 and (best is None or watts > best):
            best = watts
    return best


def discover(sysfs: str) -> list[Zone]:
    """The zones worth reading, in a stable order. Empty when there is no powercap tree."""
    root = Path(sysfs) / "class" / "powercap"
    try:
        entries = sorted(os.listdir(root), key=_zone_sort_key)
    except OSError:
        return []
    zones = []
    for entry in entries:
        m = _ZONE_RE.match(entry)
        if not m:
            continue
        path = root / entry
        try:
            name = _read_text(path / "name")
        except (OSError, ValueError):
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
        if wrap is not None and not (math.isfinite(wrap) and wrap > 0):
            wrap = None
        zones.append(Zone(path, component, device, wrap, in_total, _max_power(path)))
    return zones


def _read_counter(path: str) -> int:
    """energy_uj in two syscalls and no text layer (a zone's first read, and each discovery's check)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(os.read(fd, 32))
    finally:
        os.close(fd)


class _Counter:
    """One zone's energy_uj, kept open and read with pread at offset 0: sysfs regenerates an attribute
    on every read from offset 0 (kernfs seq_file), so a kept-open descriptor reads the live counter
    without the path walk through the class links that an open() pays on every sample.

    A removed zone (driver unbound) fails the read (ENODEV) and the file is opened again once. A file
    replaced under its name (test trees and atomic writers; sysfs never does it) leaves the descriptor on
    the old inode, whose value then never moves: so only a value equal to the last one is checked
    (fstat: no links left) and the file opened again. A live RAPL counter moves every millisecond or so,
    so on real hardware the check all but never runs: each system call costs 10-30 us in a 1 Hz sample
    here (bench/README.md). The C reader does the same pread for every zone at once (`fd`) and leaves
    an unchanged value to `confirm`, anything but a plain decimal to `read`.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1  # not open
        self.last: int | None = None  # the value of the last read

    def read(self) -> int:
        if self.fd >= 0:
            try:
                value = int(os.pread(self.fd, 32, 0))
            except OSError:
                self.close()
            else:
                if value != self.last:
                    self.last = value
                    return value
                return self.confirm(value)
        return self._open()

    def confirm(self, value: int) -> int:
        """`value`, just read through `fd`, equals the last one: it stands unless the file was replaced
        under its name (no links left), which is then opened again and read."""
        try:
            if os.fstat(self.fd).st_nlink:
                return value
        except OSError:
            pass
        self.close()
        return self._open()

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            value = int(os.pread(fd, 32, 0))
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.last = fd, value
        return value

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # a meter dropped without close(): its descriptors go with it
        with contextlib.suppress(Exception):  # at interpreter exit os may be half torn down
            self.close()


def _zone_sort_key(name: str) -> tuple[int, int, str]:
    m = _ZONE_RE.match(name)
    if not m:
        return (1 << 30, 0, name)
    return (int(m.group(1)), int(m.group(2) or -1), name)


def covers(zone: Zone) -> tuple[str, str] | None:
    """The estimate device a zone measures (package-0-die-1 is part of package-0); None: none."""
    if zone.component == "cpu":
        m = _PACKAGE_RE.match(zone.device)
        return ("cpu", f"package-{m.group(1)}") if m else None
    if zone.component == "dram":
        return ("dram", zone.device)
    return None


class RaplMeter:
    name = "rapl"

    def __init__(self, *, sysfs: str, procfs: str, sample_interval: float, max_watts: Mapping[str, float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`max_watts`: --counter.max-watts ceilings by component, which replace the zones' own bounds."""
        self.sysfs = sysfs
        self._powercap = os.path.join(sysfs, "class", "powercap")
        if not os.path.isdir(self._powercap):
            raise MeterUnavailable(f"no RAPL zones under {self.sysfs}/class/powercap")
        self.interval = sample_interval
        self.overrides = dict(max_watts)
        self.rediscover_seconds = max(1.0, 10 * sample_interval)
        self.clock = clock
        self.epoch = boot_id(procfs)
        model = cpu_model(procfs)
        self.info = {"model": model} if model else {}
        self.zones: list[Zone] = []
        self.unreadable: dict[str, str] = {}  # device -> why RAPL does not measure it
        # Per readable zone, built at each discovery: its energy_uj counter and the reading's fixed fields.
        # (counter, component, device, wrap, ceiling, in node total, info, key): what each sample's reading needs
        self._plan: list[tuple[_Counter, str, str, float | None, float, bool, Mapping[str, str], tuple[str, str]]] = []
        self._down: dict[str, str] = {}
        # Every zone read through its kept descriptor by the C reader last time, as a SteadyPlan: the
        # descriptors, each zone's reading with all but the energy, and the values read (its `last`, kept
        # up to date by both the C reader and _read_zones). While so, a sample is one C call, or two.
        self.steady: SteadyPlan | None = None
        self._covered: set[tuple[str, str]] = set()
        self._zone_list: list[str] | None = None  # class/powercap's entries at the last discovery
        self._denied: dict[str, str] = {}  # device -> energy_uj of a zone that could not be read
        self._next_discovery = 0.0
        self._refresh(clock(), starting=True)

    def ceiling(self, zone: Zone) -> float:
        """--counter.max-watts, else the zone's own bound with a margin, else the component default."""
        if zone.component in self.overrides:
            return self.overrides[zone.component]
        if zone.max_power_watts is not None:
            return zone.max_power_watts * RAPL_MARGIN
        return DEFAULT_MAX_WATTS.get(zone.component, DEFAULT_MAX_WATTS["cpu"])

    def _listing(self) -> list[str] | None:
        try:
            return sorted(os.listdir(self._powercap))  # a str made once: pathlib is slow, and cold by now
        except OSError:
            return None

    def _look_again(self, now: float, read_failed: bool) -> bool:
        """Every `rediscover_seconds`: the whole discovery (names, ranges, constraints: dozens of files)
        only when something may have changed: the zone list differs, a zone read just now failed, or one
        that could not be read can be now. True when it ran (the zones to read may be others)."""
        self._next_discovery = now + self.rediscover_seconds
        changed = read_failed or self._listing() != self._zone_list
        if not changed:
            for path in self._denied.values():
                try:
                    _read_counter(path)
                except (OSError, ValueError):
                    continue
                changed = True
                break
        if changed:
            self._refresh(now)
        return changed

    def _refresh(self, now: float, starting: bool = False) -> None:
        """Find the zones again and check each one can be read. At start a zone whose counter can
        wrap more than once between two samples refuses the setting (exit 2); later it is not read."""
        readable, unreadable, denied = [], {}, {}
        self._zone_list = self._listing()
        for z in discover(self.sysfs):
            try:
                _read_counter(str(z.path / "energy_uj"))
            except (OSError, ValueError) as exc:
                unreadable[z.device] = type(exc).__name__
                denied[z.device] = str(z.path / "energy_uj")
                continue
            if z.wrap_joules is not None and budget_joules(self.ceiling(z), self.interval) >= z.wrap_joules:
                why = (f"its counter wraps every {z.wrap_joules / self.ceiling(z):.3g}s at up to "
                       f"{self.ceiling(z):g} W, so more than one wrap could hide between samples "
                       f"{self.interval:g}s apart; sample more often (or set --counter.max-watts)")
                if starting:
                    raise ConfigError(f"sample.interval: too slow for RAPL zone {z.device}: {why}")
                unreadable[z.device] = "sampled too slowly"
                log.warning("RAPL zone not measured: %s", why, extra={"device": z.device})
                continue
            readable.append(z)
        found, lost = {z.device for z in readable} - {z.device for z in self.zones}, set()
        if not starting:
            lost = {z.device for z in self.zones} - {z.device for z in readable}
            for device in sorted(found):
                log.info("RAPL zone found; measured from now on", extra={"device": device})
            for device in sorted(lost):
                log.warning("RAPL zone no longer readable; estimated where the estimate is on",
                            extra={"device": device, "reason": unreadable.get(device, "gone")})
        newly_denied = {d for d, why in unreadable.items() if why == "PermissionError"} - set(self.unreadable)
        if newly_denied:
            log.warning(PERMISSION_HINT, extra={"zones": ",".join(sorted(newly_denied))})
        self.zones, self.unreadable, self._denied = readable, unreadable, denied
        self._leave_steady()
        counters = {c.path: c for c, *_ in self._plan}  # kept open across discoveries
        self._plan = []
        for z in readable:
            path = str(z.path / "energy_uj")
            counter = counters.pop(path) if path in counters else _Counter(path)
            info = self.info if z.component == "cpu" else {}
            self._plan.append((counter, z.component, z.device, z.wrap_joules, self.ceiling(z), z.in_node_total, info,
                               (z.component, z.device)))
        for counter in counters.values():  # zones no longer read
            counter.close()
        self._covered = {key for z in readable if z.in_node_total and (key := covers(z)) is not None}
        self._next_discovery = now + self.rediscover_seconds

    def covered(self) -> set[tuple[str, str]]:
        """The estimate devices RAPL measures now (readable zones in the node total), as of the last
        discovery: the estimate asks every sample."""
        return self._covered

    def read(self) -> list[Reading]:
        now = self.clock()
        readings, down = self._read_zones()
        if now >= self._next_discovery and self._look_again(now, bool(down)):
            readings, down = self._read_zones()  # the zones as found again, in this same sample
        self._down = down
        if self.steady is not None and self.steady.until != self._next_discovery:  # looked again, same zones
            self.steady = self.steady._replace(until=self._next_discovery)
        if down and not readings:
            raise MeterError(f"no RAPL zone could be read: {', '.join(sorted(down))}")
        return readings

    def _read_zones(self) -> tuple[list[Reading], dict[str, str]]:
        """One reading per zone in the plan, and why each zone that failed did. Steady (every zone read
        through its kept descriptor last time, the C reader built): one C call, and where every value is
        a plain number that moved, one more for the readings, what the loop below would make of them."""
        epoch, plan, steady = self.epoch, self._plan, self.steady
        fast: tuple[int | None, ...]
        if steady is not None and _fastread is not None:
            fast, last = _fastread.read_decimals(steady.sources), steady.last
            if last is not None and None not in fast and not any(map(operator.eq, fast, last)):
                last[:] = fast
                # uj / 1e6, as below (no None in fast; typing.cast would be a call and a generic alias a sample)
                return _fastread.with_energy(steady.templates, fast, 1e6), {}  # type: ignore[arg-type]
            self._leave_steady()  # an unchanged or odd value: the loop below, from these values
        else:
            fast = (None,) * len(plan) if _fastread is None else _fastread.read_decimals(tuple([p[0].fd for p in plan]))
        readings, down = [], {}
        for (counter, component, device, wrap, ceiling, in_total, info, key), uj in zip(plan, fast, strict=True):
            if uj is None or uj == counter.last:  # not open, not a plain value, or unchanged: the Python path
                try:
                    uj = counter.read() if uj is None else counter.confirm(uj)
                except (OSError, ValueError) as exc:
                    down[device] = type(exc).__name__
                    continue
            else:
                counter.last = uj
            readings.append(reading(component, device, "rapl", uj / 1e6, None, wrap, ceiling, True, epoch, in_total,
                                    info, NO_GAUGES, key))
        if _fastread is not None and not down and plan and all(p[0].fd >= 0 for p in plan):
            templates = tuple(r._replace(energy_joules=0.0) for r in readings)  # one a zone, in plan order
            self.steady = SteadyPlan(DECIMAL_FILES, self.clock, self._next_discovery, 0, tuple(p[0].fd for p in plan),
                                     templates, 1e6, [p[0].last for p in plan])
        return readings, down

    def _leave_steady(self) -> None:
        """Back to reading zone by zone: each counter's last value as the steady reads left it."""
        if self.steady is not None:
            for (counter, *_), last in zip(self._plan, self.steady.last or (), strict=True):
                counter.last = last
            self.steady = None

    def down_devices(self) -> Mapping[str, str]:
        return self._down

    def doctor_lines(self) -> list[str]:
        lines = [
            f"rapl: {z.device} ({z.component}) from {z.path}/energy_uj, ceiling {self.ceiling(z):g} W"
            + ("" if z.max_power_watts is None or z.component in self.overrides
               else f" (constraint max power {z.max_power_watts:g} W x {RAPL_MARGIN:g})")
            + ("" if z.in_node_total else ", exported but not added to the node total")
            for z in self.zones
        ]
        for device, why in sorted(self.unreadable.items()):
            hint = f"; {PERMISSION_HINT}" if why == "PermissionError" else ""
            lines.append(f"rapl: {device}: NOT READ ({why}): estimated instead where --meter.estimate is on{hint}")
        if not self.zones and not self.unreadable:
            lines.append(f"rapl: no zones under {self.sysfs}/class/powercap yet; looking again every "
                         f"{self.rediscover_seconds:g}s")
        return lines

    def close(self) -> None:
        self.steady = None
        for counter, *_ in self._plan:
            counter.close()
