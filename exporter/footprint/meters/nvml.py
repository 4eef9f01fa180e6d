"""NVIDIA GPUs through NVML, with the official bindings (`nvidia-ml-py`, module `pynvml`).

Energy per GPU comes from the hardware counter (`nvmlDeviceGetTotalEnergyConsumption`: mJ since the
driver loaded; Volta and newer). Where it is missing, the meter integrates power (trapezoid) on
instant power (field 186), or on `nvmlDeviceGetPowerUsage` where that field is missing too, and says
so with source="nvml_power". Only whole GPUs are enumerated: MIG instances share their parent's power,
so energy is never reported per instance (that would count it twice).

Faults: no libnvidia-ml at all is "no data here" (MeterUnavailable from the constructor). An init
failure, or a library-wide failure later (driver unloaded, version mismatch), makes `read()` raise and
is retried on later reads at most every `retry_interval`. A lost GPU (NVML_ERROR_GPU_IS_LOST) goes
into `down_devices()` while the others keep being read, and its handle is re-acquired on a later read.
NVML errors surface as the NvmlError subclasses below, never as pynvml's own.

The hardware counter's epoch is the driver version: a new version means the driver was loaded again,
so the counter restarted from 0. A reload without a version change shows as a smaller counter, which
the ledger absorbs.

Each reading carries the GPU's power ceiling (`max_watts`), against which the ledger judges every
counter delta: the highest power limit the board allows (the enforced limit, or the top of
nvmlDeviceGetPowerManagementLimitConstraints where that is higher: an administrator may raise the
limit at any time) times `GPU_MARGIN`, or --counter.max-watts=gpu=W.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from footprint.meters.base import (
    NONE_DOWN,
    NVML_COUNTERS,
    MeterError,
    MeterUnavailable,
    PowerIntegrator,
    Reading,
    SteadyPlan,
    new_reading,
    reading,
)
from footprint.meters.session import GPU_MARGIN as GPU_MARGIN
from footprint.meters.session import LibrarySession, gpu_ceiling

try:
    import pynvml
except ImportError:  # the dependency is missing: no way to talk to NVML here
    pynvml = None

try:  # the optional C reader (meters/_fastread.c): every GPU's counter in one call
    from footprint.meters import _fastread
except ImportError:  # not built where it was installed: one ctypes call per GPU
    _fastread = None  # type: ignore[assignment]

log = logging.getLogger("footprint.meters.nvml")
T = TypeVar("T")

# NVML return codes (stable C ABI values, as in nvml.h).
SUCCESS = 0
UNINITIALIZED = 1
INVALID_ARGUMENT = 2
NOT_SUPPORTED = 3
NOT_FOUND = 6
DRIVER_NOT_LOADED = 9
LIBRARY_NOT_FOUND = 12
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
RESET_REQUIRED = 16
LIB_RM_VERSION_MISMATCH = 18
GPU_NOT_FOUND = 28
UNKNOWN = 999

FIELD_POWER_INSTANT = 186

NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId of a process outside MIG


class NvmlError(MeterError):
    """An NVML call failed. `code` is NVML's return code, `reason` its short text."""

    def __init__(self, call: str, code: int, reason: str) -> None:
        super().__init__(f"{call}: {reason}")
        self.call = call
        self.code = code
        self.reason = reason


class NvmlNotInstalled(MeterUnavailable):
    """libnvidia-ml.so.1 (or the pynvml bindings) is not on this host: no NVIDIA driver here."""


class NvmlInitError(NvmlError):
    """nvmlInit failed (driver not loaded, no permission, ...): retried on later reads."""


class NvmlLibraryError(NvmlError):
    """NVML as a whole stopped working (driver unloaded, library/driver mismatch): re-initialised later."""


class NvmlGpuLost(NvmlError):
    """The GPU fell off the bus or needs a reset: down until a later read finds it again."""


class NvmlNotSupported(NvmlError):
    """This GPU or driver does not have the call or field."""


_ERROR_CLASSES: dict[int, type[NvmlError]] = {
    UNINITIALIZED: NvmlLibraryError,
    DRIVER_NOT_LOADED: NvmlLibraryError,
    LIB_RM_VERSION_MISMATCH: NvmlLibraryError,
    GPU_IS_LOST: NvmlGpuLost,
    GPU_NOT_FOUND: NvmlGpuLost,
    RESET_REQUIRED: NvmlGpuLost,
    NOT_SUPPORTED: NvmlNotSupported,
    FUNCTION_NOT_FOUND: NvmlNotSupported,
}


def _error(call: str, code: int, reason: str) -> NvmlError:
    return _ERROR_CLASSES.get(code, NvmlError)(call, code, reason)


def _call(name: str, *args: Any) -> Any:
    """Call pynvml.<name>, turning its exceptions into ours."""
    try:
        return getattr(pynvml, name)(*args)
    except pynvml.NVMLError as exc:
        raise _error(name, int(exc.value), str(exc)) from exc
    except pynvml.NVMLLibraryMismatchError as exc:  # an unversioned symbol this library lacks
        raise NvmlNotSupported(name, FUNCTION_NOT_FOUND, str(exc)) from exc


class _EnergyCall:
    """nvmlDeviceGetTotalEnergyConsumption through a function pointer of its own on the library pynvml
    loaded, with its argument types fixed and one output buffer: pynvml's wrapper looks the symbol up under
    a lock and allocates on every call, and this runs for every GPU on every sample. Errors are pynvml's
    (the same codes and texts) turned into ours; without the private lookup it falls back to pynvml.
    `read_many` reads every GPU in one call of the C reader where it was built.
    """

    NAME = "nvmlDeviceGetTotalEnergyConsumption"

    def __init__(self) -> None:
        self._fn: Any = None
        self.address = 0  # the function's address, for the C reader (0: not bound, or no pointer)
        self._value = ctypes.c_ulonglong()
        self._ref = ctypes.byref(self._value)

    def _bind(self) -> Any:
        try:
            pynvml._nvmlGetFunctionPointer(self.NAME)  # loads the library and checks the symbol, as pynvml does
            fn = pynvml.nvmlLib[self.NAME]  # a new pointer object: its argtypes are ours alone
        except (AttributeError, TypeError, pynvml.NVMLError):
            return None
        # Typed: each call converts both arguments through from_param (~4 % of a sample's instructions
        # could be saved without), but an untyped call would pass any handle that is not a ctypes
        # pointer as a C int, and the saving did not show in CPU time (bench/README.md, third pass).
        fn.argtypes = [pynvml.c_nvmlDevice_t, ctypes.POINTER(ctypes.c_ulonglong)]
        fn.restype = ctypes.c_int
        self.address = ctypes.cast(fn, ctypes.c_void_p).value or 0
        return fn

    def read(self, handle: Any) -> int:
        fn = self._fn
        if fn is None:
            fn = self._fn = self._bind()
            if fn is None:
                return int(_call(self.NAME, handle))
        code = fn(handle, self._ref)
        if code != SUCCESS:
            raise _error(self.NAME, code, str(pynvml.NVMLError(code)))
        return self._value.value

    def read_many(self, handles: tuple[int, ...]) -> tuple[int, ...] | None:
        """The counter (mJ) of each handle (`handle_address`), or minus its NVML return code, in one C
        call; None without the C reader or the function pointer (the caller reads each GPU by `read`)."""
        if _fastread is None:
            return None
        if self._fn is None:
            self._fn = self._bind()
        if not self.address:
            return None
        return _fastread.nvml_energy(self.address, handles)

    @staticmethod
    def fail(code: int) -> NvmlError:
        """The error a negative value from `read_many` stands for (minus its NVML code), as ours."""
        return _error(_EnergyCall.NAME, code, str(pynvml.NVMLError(code)))


def handle_address(handle: Any) -> int:
    """A device handle as the C pointer value the C reader takes (0: not a ctypes pointer, read on its own)."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value or 0
    except (ctypes.ArgumentError, TypeError):
        return 0


def _field_number(value: Any) -> float:
    """The number in an nvmlFieldValue_t, by its valueType (double, uint, ulong, ull, sll, sint, ushort)."""
    members = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")
    kind = int(value.valueType)
    if not 0 <= kind < len(members):
        raise NvmlError("nvmlDeviceGetFieldValues", UNKNOWN, f"unknown value type {kind}")
    return float(getattr(value.value, members[kind]))


@dataclass(frozen=True)
class GpuProcess:
    """A compute process on a GPU. Instance ids are None outside MIG."""

    pid: int
    used_memory_bytes: int | None
    gpu_instance_id: int | None
    compute_instance_id: int | None


@dataclass
class _Gpu:
    index: int
    handle: Any = None
    model: str = ""
    uuid: str = ""
    power_limit_watts: float | None = None
    max_limit_watts: float | None = None  # the top of the settable range (power management constraints)
    mig: bool | None = None  # None: no MIG on this GPU
    mode: str = ""  # counter | field | power_usage
    info: dict[str, str] = field(default_factory=dict)
    down: str = ""  # why it failed on the last read; "" while it works
    retry_at: float = 0.0
    last_util_timestamp: int = 0  # for nvmlDeviceGetProcessUtilization: samples newer than this
    max_watts: float | None = None  # the counter's ceiling (see NvmlMeter.ceiling), fixed at set-up
    gauges: dict[str, float] = field(default_factory=dict)  # utilisation and limit, from the last slow read
    gauges_due: float = 0.0  # when utilisation is read next (the attribution cadence)
    address: int = 0  # the handle as a C pointer value, for the C reader (0: read on its own)
    device: str = field(init=False)  # the NVML index as the device label, made once: read every sample
    key: tuple[str, str] = field(init=False)  # its readings' key, made once too

    def __post_init__(self) -> None:
        self.device = str(self.index)
        self.key = ("gpu", self.device)


_ENERGY_FROM = {
    "counter": "energy from the hardware counter (nvmlDeviceGetTotalEnergyConsumption)",
    "field": "energy integrated from instant power (NVML field 186): no hardware energy counter",
    "power_usage": "energy integrated from nvmlDeviceGetPowerUsage: no hardware energy counter, no instant power",
}


# The steady plan: (GPUs, their addresses, the first gauges_due, each one's reading with all but the energy).
_SteadyPlan = tuple[tuple[_Gpu, ...], tuple[int, ...], float, tuple[Reading, ...]]
_GAUGES = Reading._fields.index("gauges")  # where a reading holds its gauges


class NvmlMeter:
    """Every whole NVIDIA GPU NVML sees, one Reading each (device = the NVML index).

    For attribution, `process_shares()` says which processes used each GPU during the last interval:
    device -> pid -> share of the GPU's energy in that interval (0-1; the shares of a device sum to at
    most 1, the rest is idle and stays unattributed). It comes from nvmlDeviceGetProcessUtilization
    (mean SM utilisation of each process over the samples since the previous call); where that is not
    supported (MIG, older GPUs) the GPU's utilisation is split equally among its running compute
    processes. Call it once per interval: each call consumes the samples since the one before.
    """

    name = "nvml"

    def __init__(
        self,
        *,
        sample_interval: float,
        attribution_interval: float,
        max_watts: float | None,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float | None = None,
    ) -> None:
        """`max_watts`: the --counter.max-watts gpu ceiling, else None (each GPU's own power limit)."""
        if pynvml is None:
            raise NvmlNotInstalled("the nvidia-ml-py bindings (module pynvml) are not installed")
        self._clock = clock
        self._override = max_watts
        self._retry = retry_interval if retry_interval is not None else max(1.0, 5 * sample_interval)
        self._lock = threading.RLock()
        self._session: LibrarySession[NvmlInitError] = LibrarySession(self._retry, self._init, self._shutdown)
        self._driver_version = ""
        self._gpus: list[_Gpu] = []
        # Integrated counters outlive a re-initialisation (keyed by uuid), so they never go backwards.
        self._integrators: dict[str, PowerIntegrator] = {}
        # Utilisation is shown at scrape time only: read at the attribution cadence, not every sample.
        self._gauge_interval = attribution_interval or sample_interval
        self._energy_call = _EnergyCall()
        self._energy = self._energy_call.read  # a bound method: cheaper to call than an object's __call__
        # Every GPU up on its counter, read in one C call: (GPUs, their addresses, the first gauges_due, each
        # one's reading with all but the energy). Made by a read that found them so, dropped by anything that
        # changes a GPU (see _steady_read). `steady` is the same plan as the sampler follows it (_keep).
        self._steady: _SteadyPlan | None = None
        self.steady: SteadyPlan | None = None
        try:
            self._init(clock())
        except NvmlInitError as exc:
            if exc.code == LIBRARY_NOT_FOUND:
                raise NvmlNotInstalled("libnvidia-ml.so.1 not found: no NVIDIA driver on this host") from exc
            log.warning("NVML initialisation failed, retrying every %gs: %s", self._retry, exc)

    # --- library -------------------------------------------------------------------------------

    def _init(self, now: float) -> None:
        self._keep(None)
        try:
            _call("nvmlInit")
        except NvmlError as exc:
            raise self._session.failed(NvmlInitError("nvmlInit", exc.code, exc.reason), now + self._retry) from exc
        self._session.started()
        try:
            self._driver_version = str(_call("nvmlSystemGetDriverVersion"))
            count = int(_call("nvmlDeviceGetCount"))
        except NvmlError as exc:
            raise self._lose_library(now, exc, retry_at=now + self._retry) from exc
        self._gpus = [_Gpu(i) for i in range(count)]
        for gpu in self._gpus:
            try:
                self._setup(gpu)
            except NvmlLibraryError as exc:
                raise self._lose_library(now, exc, retry_at=now + self._retry) from exc
            except NvmlError as exc:
                self._mark_down(gpu, now, exc)
        log.info("NVML driver %s: %d GPU(s)", self._driver_version, count)

    def _lose_library(self, now: float, exc: NvmlError, retry_at: float | None = None) -> NvmlInitError:
        """NVML as a whole failed: shut it down and mark every GPU down; initialise again at `retry_at`
        (default: the next read). Returns the error that reads raise until then."""
        error = NvmlInitError(exc.call, exc.code, exc.reason)
        self._keep(None)
        self._session.failed(error, now if retry_at is None else retry_at)
        for gpu in self._gpus:
            gpu.down = str(exc)
        log.warning("NVML failed, will initialise again: %s", exc)
        return error

    @staticmethod
    def _shutdown() -> None:
        _call("nvmlShutdown")

    def _setup(self, gpu: _Gpu) -> None:
        """(Re)acquire the handle and the static facts, and choose where energy comes from."""
        h = _call("nvmlDeviceGetHandleByIndex", gpu.index)
        gpu.model = str(_call("nvmlDeviceGetName", h))
        gpu.uuid = str(_call("nvmlDeviceGetUUID", h))
        gpu.power_limit_watts = None
        for call in ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"):
            try:
                gpu.power_limit_watts = int(_call(call, h)) / 1000.0
                break
            except NvmlNotSupported:
                continue
        try:
            gpu.max_limit_watts = int(_call("nvmlDeviceGetPowerManagementLimitConstraints", h)[1]) / 1000.0
        except NvmlNotSupported:
            gpu.max_limit_watts = None
        try:
            gpu.mig = bool(_call("nvmlDeviceGetMigMode", h)[0])
        except NvmlNotSupported:
            gpu.mig = None
        try:
            _call("nvmlDeviceGetTotalEnergyConsumption", h)
            gpu.mode = "counter"
        except NvmlNotSupported:
            try:
                self._instant_power(h)
                gpu.mode = "field"
            except NvmlNotSupported:
                _call("nvmlDeviceGetPowerUsage", h)  # unsupported too: no way to measure this GPU
                gpu.mode = "power_usage"
        gpu.info = {
            "index": gpu.device,
            "uuid": gpu.uuid,
            "model": gpu.model,
            "driver_version": self._driver_version,
        }  # static facts only: the power limit can change at runtime, so it is a gauge, not a label
        if gpu.mode != "counter":
            self._integrators.setdefault(gpu.uuid, PowerIntegrator())
        gpu.max_watts = self.ceiling(gpu)
        gpu.gauges_due = 0.0  # read utilisation with the first reading
        gpu.address = handle_address(h) if gpu.mode == "counter" else 0
        gpu.handle = h  # only now: a GPU whose set-up failed has no handle and is set up again later

    def _mark_down(self, gpu: _Gpu, now: float, exc: NvmlError) -> None:
        self._keep(None)
        if not gpu.down:
            log.warning("GPU %d down: %s", gpu.index, exc)
        gpu.down = str(exc)
        if gpu.uuid in self._integrators:
            self._integrators[gpu.uuid].reset_baseline()  # never bridge the gap with a straight line
        if isinstance(exc, NvmlGpuLost) or gpu.handle is None:
            gpu.handle = None  # a lost GPU's handle is stale: find it again, not before retry_at
            gpu.retry_at = now + self._retry
        else:
            gpu.retry_at = now

    # --- reading -------------------------------------------------------------------------------

    @staticmethod
    def _instant_power(handle: Any) -> float:
        value = _call("nvmlDeviceGetFieldValues", handle, [FIELD_POWER_INSTANT])[0]
        code = int(value.nvmlReturn)
        if code != SUCCESS:
            # A driver older than the field id may call it an invalid argument: the same as unsupported.
            raise _error(f"nvmlDeviceGetFieldValues({FIELD_POWER_INSTANT})", NOT_SUPPORTED if code == INVALID_ARGUMENT
                         else code, str(pynvml.NVMLError(code)))
        return _field_number(value) / 1000.0

    def _read_gpu(self, gpu: _Gpu, now: float, counter: int | None) -> Reading:
        """`counter`: the energy counter as `read_many` gave it, None where it was not read with the others."""
        h = gpu.handle
        power: float | None
        if gpu.mode == "counter":
            if counter is None:  # not read with the others: the one call a sample needs
                counter = self._energy(h)
            elif counter < 0:
                raise _EnergyCall.fail(-counter)
            joules = counter / 1000.0
            power = None  # the sampler's judged delta over its time: a glitch never makes a power figure
            source, hardware, epoch = "nvml", True, self._driver_version
        else:
            power = self._instant_power(h) if gpu.mode == "field" else int(_call("nvmlDeviceGetPowerUsage", h)) / 1000.0
            joules = self._integrators[gpu.uuid].add(now, power)
            source, hardware, epoch = "nvml_power", False, ""
        if now >= gpu.gauges_due:
            gpu.gauges = self._gauges(gpu)
            gpu.gauges_due = now + self._gauge_interval
        return reading("gpu", gpu.device, source, joules, power, None, gpu.max_watts, hardware, epoch, True,
                       gpu.info, gpu.gauges, gpu.key)

    @staticmethod
    def _gauges(gpu: _Gpu) -> dict[str, float]:
        """Utilisation and the limit, for scrape-time gauges (a new dict: readings already made keep theirs)."""
        gauges: dict[str, float] = {}
        with contextlib.suppress(NvmlNotSupported):  # MIG mode has no whole-GPU utilisation
            gauges["utilization_ratio"] = int(_call("nvmlDeviceGetUtilizationRates", gpu.handle).gpu) / 100.0
        if gpu.power_limit_watts is not None:
            gauges["power_limit_watts"] = gpu.power_limit_watts
        return gauges

    def ceiling(self, gpu: _Gpu) -> float | None:
        """--counter.max-watts=gpu=W, else the highest limit the board allows x GPU_MARGIN (None: unknown,
        the ledger's default applies)."""
        return gpu_ceiling(self._override, gpu.power_limit_watts, gpu.max_limit_watts)

    def read(self) -> list[Reading]:
        with self._lock:
            now = self._clock()
            self._session.ensure(now)
            counters = self._steady_read(now)
            if isinstance(counters, list):
                return counters
            due = [gpu for gpu in self._gpus if not gpu.down or now >= gpu.retry_at]
            if counters is None:
                counters = self._read_counters(due)
            readings = []
            for gpu in due:
                try:
                    if gpu.handle is None:
                        self._setup(gpu)
                    readings.append(self._read_gpu(gpu, now, counters.get(gpu.index)))
                    if gpu.down:
                        log.info("GPU %d back", gpu.index)
                    gpu.down = ""
                except NvmlLibraryError as exc:
                    self._lose_library(now, exc)
                    raise
                except NvmlError as exc:
                    self._mark_down(gpu, now, exc)
            if not readings and self._gpus:
                raise NvmlError("read", UNKNOWN, f"no GPU could be read ({len(self._gpus)} down)")
            gpus = self._gpus
            if gpus and all(gpu.address and not gpu.down and gpu.handle is not None for gpu in gpus) and \
                    len(readings) == len(gpus) and _fastread is not None:
                self._keep((tuple(gpus), tuple(gpu.address for gpu in gpus), min(g.gauges_due for g in gpus),
                            tuple(self._read_gpu(gpu, now, 0) for gpu in gpus)))
            return readings

    def _steady_read(self, now: float) -> list[Reading] | dict[int, int] | None:
        """The readings of a sample like the last, where every GPU was up on its counter (nearly every
        sample): one C call for the counters and one for the readings, each `_read_gpu`'s own (made when
        the plan was) with this sample's energy. A dict: the counters read, one of them an error (the
        full path takes them from there, nothing read twice); None: not steady (a GPU down or set up
        again), the full path reads. Gauges that are due are read into the plan (`_refresh_gauges`)."""
        steady = self._steady
        if steady is None:
            return None
        gpus, addresses, gauges_due, _ = steady
        values = self._energy_call.read_many(addresses)
        if values is None:
            return None
        failed = min(values) < 0
        if not failed and now >= gauges_due:
            try:
                steady = self._refresh_gauges(now, steady)
            except NvmlError:  # the full path reads that GPU's gauges again and marks it down
                failed = True
        if failed:
            self._keep(None)
            return {gpu.index: value for gpu, value in zip(gpus, values, strict=True)}
        assert _fastread is not None  # a steady plan is made only with it
        return _fastread.with_energy(steady[3], values, 1000.0)  # counter mJ / 1000, as _read_gpu

    def _refresh_gauges(self, now: float, steady: _SteadyPlan) -> _SteadyPlan:
        """The gauges of each GPU due, read as `_read_gpu` reads them, into the steady plan's templates:
        what the full path (and the plan it makes again) would give, without making every GPU's reading
        twice in Python (the sample that read utilisation cost ~230-270 k instructions more than a steady one:
        bench/README.md, ninth pass)."""
        gpus, addresses, _, templates = steady
        fresh = []
        for gpu, template in zip(gpus, templates, strict=True):
            if now >= gpu.gauges_due:
                gpu.gauges = self._gauges(gpu)
                gpu.gauges_due = now + self._gauge_interval
                template = new_reading((*template[:_GAUGES], gpu.gauges, *template[_GAUGES + 1:]))
            fresh.append(template)
        refreshed = (gpus, addresses, min(gpu.gauges_due for gpu in gpus), tuple(fresh))
        self._keep(refreshed)
        return refreshed

    def _keep(self, steady: _SteadyPlan | None) -> None:
        """The steady plan, and the SteadyPlan made of it that the sampler follows instead of read() until
        the first gauges are due (None where there is none, or no function pointer to hand the C reader)."""
        self._steady = steady
        address = self._energy_call.address
        self.steady = None if steady is None or not address else SteadyPlan(
            NVML_COUNTERS, self._clock, steady[2], address, steady[1], steady[3], 1000.0, None)

    def _read_counters(self, due: list[_Gpu]) -> dict[int, int]:
        """Index -> the energy counter (or minus its error code) of each due GPU with a handle, in one
        call of the C reader; empty without it (each GPU is then read on its own)."""
        batch = [gpu for gpu in due if gpu.address and gpu.handle is not None]
        values = self._energy_call.read_many(tuple(gpu.address for gpu in batch)) if batch else None
        return {} if values is None else {gpu.index: value for gpu, value in zip(batch, values, strict=True)}

    def down_devices(self) -> Mapping[str, str]:
        with self._lock:
            if self._steady is not None:  # every GPU up
                return NONE_DOWN
            return {gpu.device: gpu.down for gpu in self._gpus if gpu.down}

    # --- attribution ---------------------------------------------------------------------------

    def _healthy(self) -> list[_Gpu]:
        if not self._session.initialised:
            return []
        return [gpu for gpu in self._gpus if not gpu.down and gpu.handle is not None]

    def _per_device(self, read: Callable[[_Gpu], T], what: str) -> dict[str, T]:
        """read(gpu) for every healthy GPU; a device that cannot be read is left out."""
        with self._lock:
            found = {}
            for gpu in self._healthy():
                try:
                    found[gpu.device] = read(gpu)
                except NvmlError as exc:
                    log.debug("GPU %d: no %s: %s", gpu.index, what, exc)
            return found

    def process_shares(self) -> dict[str, dict[int, float]]:
        """Device -> pid -> share of the GPU's energy over the last interval (see the class docstring).

        A device whose processes cannot be read is left out: its energy stays unattributed.
        """
        return self._per_device(self._shares, "process shares")

    def _shares(self, gpu: _Gpu) -> dict[int, float]:
        try:
            samples = _call("nvmlDeviceGetProcessUtilization", gpu.handle, gpu.last_util_timestamp)
        except NvmlNotSupported:
            return self._equal_shares(gpu)
        except NvmlError as exc:
            if exc.code == NOT_FOUND:
                return {}  # no process used the GPU since the last call
            raise
        sm: dict[int, list[int]] = {}
        for s in samples:
            gpu.last_util_timestamp = max(gpu.last_util_timestamp, int(s.timeStamp))
            sm.setdefault(int(s.pid), []).append(int(s.smUtil))
        shares = {pid: sum(values) / len(values) / 100.0 for pid, values in sm.items()}
        total = sum(shares.values())
        if total > 1.0:  # sampling overlap can add up past 100 %: never hand out more than the GPU
            shares = {pid: share / total for pid, share in shares.items()}
        return shares

    def _equal_shares(self, gpu: _Gpu) -> dict[int, float]:
        pids = sorted({p.pid for p in self._processes(gpu)})
        if not pids:
            return {}
        try:
            busy = int(_call("nvmlDeviceGetUtilizationRates", gpu.handle).gpu) / 100.0
        except NvmlNotSupported:
            busy = 1.0  # MIG: no utilisation at all; the processes hold the GPU, so split all of it
        return {pid: busy / len(pids) for pid in pids}

    @staticmethod
    def _processes(gpu: _Gpu) -> list[GpuProcess]:
        def instance(value: Any) -> int | None:
            return None if value is None or int(value) == NO_INSTANCE else int(value)

        return [
            GpuProcess(
                pid=int(p.pid),
                used_memory_bytes=None if p.usedGpuMemory is None else int(p.usedGpuMemory),
                gpu_instance_id=instance(getattr(p, "gpuInstanceId", None)),
                compute_instance_id=instance(getattr(p, "computeInstanceId", None)),
            )
            for p in _call("nvmlDeviceGetComputeRunningProcesses", gpu.handle)
        ]

    # --- doctor --------------------------------------------------------------------------------

    def doctor_lines(self) -> list[str]:
        with self._lock:
            failure = self._session.doctor_line("nvml", self._clock())
            if failure:
                return [failure]
            lines = [f"nvml: driver {self._driver_version}, {len(self._gpus)} GPU(s)"]
            for gpu in self._gpus:
                if gpu.down:
                    lines.append(f"nvml: gpu {gpu.index}: DOWN: {gpu.down}")
                    continue
                limit = "unknown" if gpu.power_limit_watts is None else f"{gpu.power_limit_watts:g} W"
                if gpu.mode == "counter":
                    ceiling = self.ceiling(gpu)
                    limit += ", counter ceiling " + ("the default" if ceiling is None else f"{ceiling:g} W")
                mig = ", MIG on: energy for the whole GPU only" if gpu.mig else ""
                lines.append(
                    f"nvml: gpu {gpu.index}: {gpu.model} {gpu.uuid}, power limit {limit}{mig}; {_ENERGY_FROM[gpu.mode]}"
                )
            return lines

    def close(self) -> None:
        with self._lock:
            self._session.stop()
