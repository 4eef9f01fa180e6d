"""What every meter returns, and the contract it keeps.

A meter reads hardware and nothing else: no accounting, no totals. Each `read()` returns one
`Reading` per device it covers. A reading carries a *cumulative* energy value in joules: the hardware
counter itself where one exists (NVML total energy, RAPL `energy_uj`), or a counter the meter keeps
by integrating power where none exists (then `hardware_counter` is False and `source` says so).
The ledger turns successive cumulative values into deltas and absorbs wraps and resets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import NamedTuple, Protocol, runtime_checkable


class MeterError(Exception):
    """A meter (or one of its devices) cannot be read right now; its `*_up` goes to 0."""


class MeterUnavailable(MeterError):
    """The hardware or interface is not present on this host: "no data here", not a fault."""


class _ReadingFields(NamedTuple):
    component: str  # "gpu", "cpu", "dram", "psys"
    device: str  # stable id within the component: "0", "package-0", "uuid"...
    source: str  # "nvml", "nvml_power", "rapl", "estimate"
    energy_joules: float  # cumulative; may wrap (see wrap_joules) or reset (driver reload)
    power_watts: float | None  # over the last interval or instantaneous, as the meter has it
    wrap_joules: float | None  # the counter wraps to 0 after this many joules (RAPL)
    max_watts: float | None  # the device's power ceiling (physics bound); None: component default
    hardware_counter: bool  # False: integrated by the meter, process-local, starts at 0
    counter_epoch: str  # changes when the counter restarts from 0 on purpose (driver load, boot)
    in_node_total: bool  # False for readings contained in another one (never summed into the node)
    info: Mapping[str, str]  # static facts for footprint_device_info
    gauges: Mapping[str, float]  # e.g. utilization_ratio, power_limit_watts
    # (component, device), made once: the sampler, ledger and exposition look readings up by it many times.
    key: tuple[str, str]


class Reading(_ReadingFields):
    """One device's reading, never changed once made. A tuple: a meter makes one per device every sample,
    and a class with an __init__ is made through CPython's slowest call path (a tenth of a sample's
    instructions went to making 12 slotted readings: bench/README.md); the hot meters make theirs with
    `reading()`, one C-level tuple.__new__, everyone else with the constructor below."""

    __slots__ = ()

    def __new__(cls, component: str, device: str, source: str, energy_joules: float,
                power_watts: float | None = None, wrap_joules: float | None = None, max_watts: float | None = None,
                hardware_counter: bool = True, counter_epoch: str = "", in_node_total: bool = True,
                info: Mapping[str, str] | None = None, gauges: Mapping[str, float] | None = None) -> Reading:
        return tuple.__new__(cls, (component, device, source, energy_joules, power_watts, wrap_joules, max_watts,
                                   hardware_counter, counter_epoch, in_node_total, {} if info is None else info,
                                   {} if gauges is None else gauges, (component, device)))


def reading(component: str, device: str, source: str, energy_joules: float, power_watts: float | None,
            wrap_joules: float | None, max_watts: float | None, hardware_counter: bool, counter_epoch: str,
            in_node_total: bool, info: Mapping[str, str], gauges: Mapping[str, float],
            key: tuple[str, str]) -> Reading:
    """Reading(...) with every field given (the key too: a meter keeps each device's), for the meters that
    make one per device every sample: a plain function call and one tuple.__new__."""
    return new_reading((component, device, source, energy_joules, power_watts, wrap_joules, max_watts,
                        hardware_counter, counter_epoch, in_node_total, info, gauges, key))


# A Reading from the tuple of its 13 fields in order, unchecked: for a meter's loop over its devices.
new_reading = partial(tuple.__new__, Reading)
NO_GAUGES: Mapping[str, float] = MappingProxyType({})  # the gauges of a reading that has none, shared
NONE_DOWN: Mapping[str, str] = MappingProxyType({})  # down_devices() of a meter with every device up, shared


# SteadyPlan.kind: how the C reader reads the plan's sources.
NVML_COUNTERS = 0  # sources: device handles; address: nvmlDeviceGetTotalEnergyConsumption; values in mJ
DECIMAL_FILES = 1  # sources: kept-open descriptors of files holding a decimal counter (RAPL energy_uj)
NOTHING = 2  # no devices to read (a meter whose devices another one measures now)


class SteadyPlan(NamedTuple):
    """How a meter reads in a sample like its last one (every device up, nothing due): what the sampler
    hands the C reader (`_fastread.read_steady`) for it instead of calling read(), which would give the
    same readings. The C reader follows a plan only if every source reads cleanly, and for DECIMAL_FILES
    only if every value moved from `last`. Otherwise the whole sample goes through read(). A meter drops
    its plan (`steady = None`) or replaces it whenever its read would do anything else."""

    kind: int
    clock: Callable[[], float]  # the meter's clock, called once at the start of the read, as read() calls it
    until: float  # from this time on the clock (gauges due, a discovery) read() must run
    address: int  # NVML_COUNTERS: the function's address; else 0
    sources: tuple[int, ...]  # handles or descriptors, one per template
    templates: tuple[Reading, ...]  # each device's reading with all but its energy (field 3)
    divisor: float  # energy_joules = value / divisor
    last: list[int | None] | None  # DECIMAL_FILES: each file's last value (a read following the plan replaces it)


class Meter(Protocol):
    """One kind of hardware. `name` is what `--meter.<name>` and `footprint_meter_up{meter}` use.

    A meter may also have a `steady` attribute, a SteadyPlan or None: how its next read goes while
    nothing changes. The sampler follows it in C instead of calling read(). A meter without the attribute
    is always read through read()."""

    name: str

    def read(self) -> list[Reading]:
        """Read every device. Raise MeterError if nothing could be read at all.

        A meter that can read some devices but not others returns the good ones and reports the
        bad ones through `down_devices()`.
        """
        ...

    def down_devices(self) -> Mapping[str, str]:
        """Devices that failed on the last read: device id -> short reason (for metrics and logs)."""
        ...

    def doctor_lines(self) -> list[str]:
        """Human lines for `doctor`: what was found and where the energy comes from."""
        ...

    def close(self) -> None: ...


class PowerIntegrator:
    """Trapezoidal integration of instantaneous power into a process-local cumulative counter.

    Used only where no hardware energy counter exists. The first sample establishes the baseline and
    adds nothing: energy before the first sample is unknown, and we never invent it.
    """

    def __init__(self) -> None:
        self.joules = 0.0
        self._last: tuple[float, float] | None = None  # (monotonic seconds, watts)

    def add(self, now: float, watts: float) -> float:
        if self._last is not None:
            t0, w0 = self._last
            dt = now - t0
            if dt > 0:
                self.joules += (w0 + watts) / 2.0 * dt
        self._last = (now, watts)
        return self.joules

    def reset_baseline(self) -> None:
        """After a gap (device lost), restart from the next sample rather than bridging the gap."""
        self._last = None


def boot_id(procfs: str) -> str:
    """This boot's id (<procfs>/sys/kernel/random/boot_id; "" if unreadable). Counters that start at 0 on
    boot (RAPL) use it as their epoch; the checkpoint tells another boot's file apart with it."""
    try:
        with open(f"{procfs}/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def cpu_model(procfs: str) -> str:
    """The CPU model name from <procfs>/cpuinfo, for footprint_device_info (empty if unknown)."""
    try:
        with open(f"{procfs}/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


@runtime_checkable
class GpuProcessSource(Protocol):
    """A meter that can say which processes used each of its GPUs (NVML, amdsmi): what attribution asks.

    `process_shares()`: device -> pid -> share of that GPU's energy over the interval since the previous
    call (0-1, summing to at most 1 per device; the rest is idle). Each call consumes those samples.
    """

    def process_shares(self) -> dict[str, dict[int, float]]: ...
