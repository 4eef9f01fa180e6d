"""AMD Instinct GPUs through AMD's official Python bindings (`amdsmi`), or amdgpu's hwmon files.

Energy per physical GPU comes from the hardware accumulator (`amdsmi_get_energy_count`: a 64-bit
count of `counter_resolution` µJ ticks, 15.3 µJ on every ASIC today, with the metrics table's
timestamp in ns). Where it is missing, the meter integrates socket power (`amdsmi_get_power_info`,
whole watts) and says so with source="amdsmi_power". The accumulator restarts from 0 when the driver
loads again: the driver version is the counter's epoch, and a reload without a new version shows as
a smaller counter, which the ledger absorbs. A 64-bit accumulator of 15.3 µJ ticks does not wrap in
practice (2.8e14 J), so a smaller value is a reset, never a wrap. The resolution is used as the
library answers it (rocm_smi hard-codes 15.3; amdsmi.h's metrics comment says 15.259 µJ).

Partitions: MI300X compute partitions (SPX/DPX/QPX/CPX) and memory partitions (NPS1/NPS4) show up as
several logical GPUs of one package. amdsmi groups them by PCI domain:bus:device (its "socket"); the
meter does the same and reports energy once per physical GPU, read on its primary partition (the
package-level values answer there; the others answer N/A, or on some versions the package's values
again, which summed would count the package several times). Exactly as MIG in the NVML meter.

The library is found by the bindings themselves when `amdsmi` is imported: ROCM_HOME, ROCM_PATH, the
linker path, then /opt/rocm/lib. `--path.rocm` sets ROCM_HOME first, so the library is injectable.

Without the bindings or the library, `AmdHwmonMeter` reads amdgpu's hwmon power files under
--path.sysfs (µW) and integrates them (source="hwmon_power"). The registry uses one or the other,
never both, so no GPU is counted twice.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from footprint.meters.base import MeterError, MeterUnavailable, PowerIntegrator, Reading
from footprint.meters.session import GPU_MARGIN as GPU_MARGIN
from footprint.meters.session import LibrarySession, gpu_ceiling

log = logging.getLogger("footprint.meters.amdsmi")

# amdsmi_status_t values (amdsmi.h; the bindings' AMDSMI_STATUS_*).
NOT_SUPPORTED = 2
NOT_YET_IMPLEMENTED = 3
FAIL_LOAD_MODULE = 4
INIT_ERROR = 18
NOT_INIT = 32
DRIVER_NOT_LOADED = 34
NO_DRV = 51
LIBRARY_WIDE = {FAIL_LOAD_MODULE, INIT_ERROR, NOT_INIT, DRIVER_NOT_LOADED, NO_DRV}
NO_GPU_HERE = {DRIVER_NOT_LOADED, NO_DRV, FAIL_LOAD_MODULE}

MAX_WATTS = 5000.0  # above any accelerator package (MI300X 750 W, MI355X 1400 W): more is a glitch
NA = 0xFFFF  # amdsmi's "not available" in power fields (the bindings turn it into "N/A")


class AmdSmiError(MeterError):
    """An amdsmi call failed; `code` is its amdsmi_status_t."""

    def __init__(self, call: str, code: int, reason: str) -> None:
        super().__init__(f"{call}: {reason}")
        self.call = call
        self.code = code


class AmdSmiNotInstalled(MeterUnavailable):
    """The bindings or libamd_smi.so are not on this host, or no AMD GPU driver is loaded."""


def load_bindings(rocm_path: str) -> ModuleType:
    """Import `amdsmi` with ROCM_HOME set to `rocm_path` (when given), which its loader tries first.

    The bindings print to stdout and leave a broken module when the library is missing; that print is
    swallowed here and the failure becomes AmdSmiNotInstalled.
    """
    if rocm_path:
        os.environ["ROCM_HOME"] = rocm_path
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import amdsmi
    except ImportError as exc:
        raise AmdSmiNotInstalled("the amdsmi bindings are not installed (footprint-exporter[amd])") from exc
    except (KeyError, OSError, AttributeError) as exc:  # the wrapper's lookup of the loaded library
        raise AmdSmiNotInstalled(f"libamd_smi.so not found (ROCm not installed here): {exc!r}") from exc
    return amdsmi


def _number(value: Any, low: float, high: float) -> float | None:
    """A number from the library, or None where it is "N/A", not finite, or outside [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) and low <= number <= high else None


def partition_shares(busy: float, added: Mapping[int, float | None], partitions: int) -> dict[int, float]:
    """The processes of one partition: pid -> share of the package's energy.

    The partition is 1/`partitions` of the package, busy `busy` (0-1) of the interval; that part is
    split by the GFX engine time each process added (ns; None: no baseline yet, it gets nothing), or
    equally where none added any (first sight, or engine time not reported). Never more than the
    partition: the shares sum to at most busy / partitions.
    """
    busy = min(max(busy, 0.0), 1.0) if math.isfinite(busy) else 0.0
    weights = {pid: w for pid, w in added.items() if w is not None and math.isfinite(w) and w > 0}
    if not weights:
        weights = dict.fromkeys(added, 1.0)
    total = sum(weights.values())
    if not weights or not math.isfinite(total) or partitions < 1:
        return {}
    return {pid: busy * w / total / partitions for pid, w in weights.items()}


@dataclass
class _Gpu:
    """One physical GPU: its partitions' handles (primary first) and what was learned at set-up."""

    index: int
    device: str  # "0", "1"... by PCI address; "amd0"... on a node whose NVIDIA GPUs use the plain numbers
    bdf: str  # PCI address of the package (function 0): what amd.com/gpu device ids name
    handles: list[Any]
    model: str = ""
    uuid: str = ""
    serial: str = ""
    compute_partition: str = ""
    memory_partition: str = ""
    cap_watts: float | None = None
    max_cap_watts: float | None = None
    mode: str = ""  # counter | power
    info: dict[str, str] = field(default_factory=dict)
    ready: bool = False
    down: str = ""
    retry_at: float = 0.0
    last_counter: tuple[int, float] | None = None  # (timestamp ns, joules)
    gfx_ns: dict[tuple[int, int], int] = field(default_factory=dict)  # (partition, pid) -> GFX busy ns


_ENERGY_FROM = {
    "counter": "energy from the hardware accumulator (amdsmi_get_energy_count)",
    "power": "energy integrated from socket power (amdsmi_get_power_info): no energy accumulator",
}


class AmdSmiMeter:
    """Every physical AMD GPU amdsmi sees, one Reading each (device = its order by PCI address, after
    `device_prefix`: "amd" where NVIDIA GPUs are read too, so device ids never collide).

    Each reading carries the package's power ceiling (`max_watts`) for the ledger's plausibility rule:
    the highest cap the board allows (current or maximum settable) x GPU_MARGIN, or
    --counter.max-watts=gpu=W.

    For attribution, `process_shares()` says which processes used each GPU during the last interval:
    device -> pid -> share (0-1, at most 1 per device). Each partition is 1/N of the package; within
    it, its busy fraction (gfx_activity) is split among its processes by the GFX engine time each one
    added since the previous call (equally while no baseline exists).
    """

    name = "amdsmi"

    def __init__(
        self,
        *,
        rocm: str,
        sample_interval: float,
        max_watts: float | None,
        clock: Callable[[], float] = time.monotonic,
        retry_interval: float | None = None,
        device_prefix: str = "",
    ) -> None:
        """`rocm`: where the amdsmi bindings live; `max_watts`: the --counter.max-watts gpu ceiling, else None."""
        self.smi = load_bindings(rocm)
        self._clock = clock
        self._prefix = device_prefix
        self._override = max_watts
        self._retry = retry_interval if retry_interval is not None else max(1.0, 5 * sample_interval)
        self._lock = threading.RLock()
        self._session: LibrarySession[AmdSmiError] = LibrarySession(self._retry, self._init, self._shutdown)
        self._gpus: list[_Gpu] = []
        self._integrators: dict[str, PowerIntegrator] = {}  # by uuid: outlive a re-initialisation
        try:
            self._init(clock())
        except AmdSmiError as exc:
            if exc.code in NO_GPU_HERE:
                raise AmdSmiNotInstalled(f"amdsmi_init: no AMD GPU driver here ({exc})") from exc
            log.warning("amdsmi initialisation failed, retrying every %gs: %s", self._retry, exc)
        if self._session.initialised and not self._gpus:
            self.close()
            raise AmdSmiNotInstalled("amdsmi found no AMD GPU")

    # --- library -------------------------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> Any:
        """Call amdsmi.<name>, turning the bindings' exceptions into ours."""
        smi = self.smi
        try:
            return getattr(smi, name)(*args)
        except smi.AmdSmiLibraryException as exc:
            raise AmdSmiError(name, int(exc.get_error_code()), exc.get_error_info(detailed=False)) from exc
        except smi.AmdSmiException as exc:  # retry, timeout, parameter: this read fails, the next tries
            raise AmdSmiError(name, -1, type(exc).__name__) from exc

    def _init(self, now: float) -> None:
        try:
            self._call("amdsmi_init", self.smi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except AmdSmiError as exc:
            self._session.failed(exc, now + self._retry)
            raise
        self._session.started()
        try:
            self._gpus = self._enumerate()
        except AmdSmiError as exc:
            self._lose_library(now, exc, now + self._retry)
            raise
        for gpu in self._gpus:
            try:
                self._setup(gpu)
            except AmdSmiError as exc:
                if exc.code in LIBRARY_WIDE:
                    self._lose_library(now, exc, now + self._retry)
                    raise
                self._mark_down(gpu, now, exc)
        log.info("amdsmi: %d AMD GPU(s), %d logical", len(self._gpus), sum(len(g.handles) for g in self._gpus))

    def _enumerate(self) -> list[_Gpu]:
        """Logical GPUs grouped into packages by PCI domain:bus:device, as amdsmi builds its sockets."""
        packages: dict[str, list[tuple[int, Any]]] = {}
        for handle in self._call("amdsmi_get_processor_handles"):
            bdf = str(self._call("amdsmi_get_gpu_device_bdf", handle)).lower()
            package, _, function = bdf.rpartition(".")
            try:
                partition = int(self._call("amdsmi_get_gpu_kfd_info", handle)["current_partition_id"])
            except (AmdSmiError, KeyError, TypeError, ValueError):
                partition = int(function) if function.isdigit() else 0
            packages.setdefault(package, []).append((partition, handle))
        return [
            _Gpu(i, f"{self._prefix}{i}", f"{package}.0", [h for _, h in sorted(members, key=lambda m: m[0])])
            for i, (package, members) in enumerate(sorted(packages.items()))
        ]

    def _lose_library(self, now: float, exc: AmdSmiError, retry_at: float | None = None) -> AmdSmiError:
        self._session.failed(exc, now if retry_at is None else retry_at)
        for gpu in self._gpus:
            gpu.down = str(exc)
        log.warning("amdsmi failed, will initialise again: %s", exc)
        return exc

    def _shutdown(self) -> None:
        self._call("amdsmi_shut_down")

    def _optional(self, name: str, *args: Any) -> Any:
        """A call whose NOT_SUPPORTED means "this GPU does not have it" (None), not a fault."""
        try:
            return self._call(name, *args)
        except AmdSmiError as exc:
            if exc.code in (NOT_SUPPORTED, NOT_YET_IMPLEMENTED):
                return None
            raise

    def _setup(self, gpu: _Gpu) -> None:
        """Read the package's static facts on its primary partition and choose where energy comes from."""
        h = gpu.handles[0]
        asic = self._call("amdsmi_get_gpu_asic_info", h)
        gpu.model = str(asic.get("market_name", "")).strip()
        serial = str(asic.get("asic_serial", ""))
        gpu.serial = "" if serial == "N/A" else serial
        gpu.uuid = str(self._optional("amdsmi_get_gpu_device_uuid", h) or "")
        version = self._driver_version(h)
        gpu.compute_partition = str(self._optional("amdsmi_get_gpu_compute_partition", h) or "")
        gpu.memory_partition = str(self._optional("amdsmi_get_gpu_memory_partition", h) or "")
        cap = self._optional("amdsmi_get_power_cap_info", h) or {}
        cap_uw = _number(cap.get("power_cap"), 1.0, MAX_WATTS * 1e6)
        max_uw = _number(cap.get("max_power_cap"), 1.0, MAX_WATTS * 1e6)
        gpu.cap_watts = None if cap_uw is None else cap_uw / 1e6
        gpu.max_cap_watts = None if max_uw is None else max_uw / 1e6
        gpu.mode = "counter" if self._optional("amdsmi_get_energy_count", h) is not None else "power"
        if gpu.mode == "power":
            self._socket_power(gpu)  # raises: no way to measure this GPU
            self._integrators.setdefault(gpu.uuid or gpu.bdf, PowerIntegrator())
        gpu.info = {
            "index": str(gpu.index),
            "vendor": "amd",
            "model": gpu.model,
            "uuid": gpu.uuid,
            "serial": gpu.serial,
            "pci_bus_id": gpu.bdf,
            "driver_version": version,
            "compute_partition": gpu.compute_partition,
            "memory_partition": gpu.memory_partition,
            "partitions": str(len(gpu.handles)),
        }
        gpu.last_counter, gpu.ready = None, True

    def _driver_version(self, handle: Any) -> str:
        driver = self._optional("amdsmi_get_gpu_driver_info", handle) or {}
        return str(driver.get("driver_version", ""))

    def _check_driver(self) -> None:
        """A new driver version means the driver was loaded again: every counter restarted (a new epoch).
        System-wide, so asked once per read, on the first GPU that works."""
        gpu = next((g for g in self._gpus if g.ready and not g.down), None)
        if gpu is None:
            return
        version = self._driver_version(gpu.handles[0])
        if version and version != gpu.info["driver_version"]:
            log.info("amdgpu driver %s -> %s", gpu.info["driver_version"], version)
            for g in self._gpus:
                if g.ready:
                    g.info = {**g.info, "driver_version": version}

    def _mark_down(self, gpu: _Gpu, now: float, exc: AmdSmiError) -> None:
        if not gpu.down:
            log.warning("AMD GPU %d down: %s", gpu.index, exc)
        gpu.down = str(exc)
        gpu.ready = False  # set up again on the next try: a GPU back from a reset may have changed
        gpu.last_counter = None
        gpu.retry_at = now + self._retry
        integrator = self._integrators.get(gpu.uuid or gpu.bdf)
        if integrator is not None:
            integrator.reset_baseline()  # never bridge the gap with a straight line

    # --- reading -------------------------------------------------------------------------------

    def _socket_power(self, gpu: _Gpu) -> float:
        info = self._call("amdsmi_get_power_info", gpu.handles[0])
        bound = min(MAX_WATTS, (gpu.cap_watts or MAX_WATTS) * 2)
        for key in ("current_socket_power", "average_socket_power", "socket_power"):
            value = info.get(key)
            if value == NA:
                continue
            watts = _number(value, 0.0, bound)
            if watts is not None:
                return watts
        raise AmdSmiError("amdsmi_get_power_info", NOT_SUPPORTED, f"no plausible socket power in {info!r}")

    def _read_gpu(self, gpu: _Gpu, now: float) -> Reading:
        h = gpu.handles[0]
        power: float | None = None
        if gpu.mode == "counter":
            count = self._call("amdsmi_get_energy_count", h)
            ticks = _number(count.get("energy_accumulator"), 0.0, 2.0**64)
            resolution = _number(count.get("counter_resolution"), 1e-3, 1e3)  # µJ per tick
            stamp = _number(count.get("timestamp"), 0.0, 2.0**64)
            if ticks is None or resolution is None or stamp is None:
                raise AmdSmiError("amdsmi_get_energy_count", -1, f"implausible answer {count!r}")
            joules = ticks * resolution / 1e6
            last, gpu.last_counter = gpu.last_counter, (int(stamp), joules)
            if last is not None and joules >= last[1] and stamp > last[0]:
                power = (joules - last[1]) / ((stamp - last[0]) / 1e9)
            source, hardware, epoch = "amdsmi", True, gpu.info["driver_version"]
        else:
            power = self._socket_power(gpu)
            joules = self._integrators[gpu.uuid or gpu.bdf].add(now, power)
            source, hardware, epoch = "amdsmi_power", False, ""
        gauges: dict[str, float] = {}
        activity = self._optional("amdsmi_get_gpu_activity", h) or {}
        busy = _number(activity.get("gfx_activity"), 0.0, 100.0)
        if busy is not None:
            gauges["utilization_ratio"] = busy / 100.0
        if gpu.cap_watts is not None:
            gauges["power_limit_watts"] = gpu.cap_watts
        return Reading(
            component="gpu",
            device=gpu.device,
            source=source,
            energy_joules=joules,
            power_watts=power,
            hardware_counter=hardware,
            counter_epoch=epoch,
            max_watts=self.ceiling(gpu),
            info=gpu.info,
            gauges=gauges,
        )

    def ceiling(self, gpu: _Gpu) -> float | None:
        """--counter.max-watts=gpu=W, else the highest cap the board allows x GPU_MARGIN (None: unknown,
        the ledger's default applies)."""
        return gpu_ceiling(self._override, gpu.cap_watts, gpu.max_cap_watts)

    def read(self) -> list[Reading]:
        with self._lock:
            now = self._clock()
            self._session.ensure(now)
            with contextlib.suppress(AmdSmiError):  # that GPU's own read below says what is wrong
                self._check_driver()
            readings = []
            for gpu in self._gpus:
                if gpu.down and now < gpu.retry_at:
                    continue
                try:
                    if not gpu.ready:
                        self._setup(gpu)
                    readings.append(self._read_gpu(gpu, now))
                    if gpu.down:
                        log.info("AMD GPU %d back", gpu.index)
                    gpu.down = ""
                except AmdSmiError as exc:
                    if exc.code in LIBRARY_WIDE:
                        raise self._lose_library(now, exc) from exc
                    self._mark_down(gpu, now, exc)
            if not readings and self._gpus:
                error = AmdSmiError("read", -1, f"no AMD GPU could be read ({len(self._gpus)} down)")
                # Every GPU failing at once is the driver going away (unload, reset): its handles are
                # stale, so shut down and enumerate again at the next retry, not just read them again.
                raise self._lose_library(now, error, now + self._retry)
            return readings

    def down_devices(self) -> Mapping[str, str]:
        with self._lock:
            return {gpu.device: gpu.down for gpu in self._gpus if gpu.down}

    # --- attribution ---------------------------------------------------------------------------

    def process_shares(self) -> dict[str, dict[int, float]]:
        """Device -> pid -> share of the GPU's energy over the last interval (see the class docstring).

        A device whose processes cannot be read is left out: its energy stays unattributed.
        """
        with self._lock:
            if not self._session.initialised:
                return {}
            out = {}
            for gpu in self._gpus:
                if gpu.down or not gpu.ready:
                    continue
                try:
                    out[gpu.device] = self._shares(gpu)
                except AmdSmiError as exc:
                    log.debug("AMD GPU %d: no process shares: %s", gpu.index, exc)
            return out

    def _shares(self, gpu: _Gpu) -> dict[int, float]:
        shares: dict[int, float] = {}
        seen: dict[tuple[int, int], int] = {}
        package_busy = None
        for part, handle in enumerate(gpu.handles):
            processes = self._optional("amdsmi_get_gpu_process_list", handle) or []
            if not processes:
                continue
            activity = self._optional("amdsmi_get_gpu_activity", handle) or {}
            busy = _number(activity.get("gfx_activity"), 0.0, 100.0)
            if busy is None and package_busy is None:
                primary = self._optional("amdsmi_get_gpu_activity", gpu.handles[0]) or {}
                package_busy = _number(primary.get("gfx_activity"), 0.0, 100.0)
            fraction = (busy if busy is not None else package_busy if package_busy is not None else 100.0) / 100.0
            added: dict[int, float | None] = {}
            for p in processes:
                pid = _number(p.get("pid"), 1, 2**32)
                gfx = _number((p.get("engine_usage") or {}).get("gfx"), 0.0, 2.0**64)
                if pid is None:
                    continue
                key = (part, int(pid))
                before = gpu.gfx_ns.get(key)
                if gfx is not None:
                    seen[key] = int(gfx)
                if gfx is not None and before is not None:
                    added[int(pid)] = (added.get(int(pid)) or 0.0) + max(gfx - before, 0.0)
                else:
                    added.setdefault(int(pid), None)
            for pid, share in partition_shares(fraction, added, len(gpu.handles)).items():
                shares[pid] = shares.get(pid, 0.0) + share
        gpu.gfx_ns = seen
        return shares

    # --- doctor --------------------------------------------------------------------------------

    def doctor_lines(self) -> list[str]:
        with self._lock:
            failure = self._session.doctor_line("amdsmi", self._clock())
            if failure:
                return [failure]
            lines = [f"amdsmi: {len(self._gpus)} AMD GPU(s), {sum(len(g.handles) for g in self._gpus)} logical"]
            for gpu in self._gpus:
                if gpu.down:
                    lines.append(f"amdsmi: gpu {gpu.device} ({gpu.bdf}): DOWN: {gpu.down}")
                    continue
                ceiling = self.ceiling(gpu)
                limit = ("unknown" if gpu.cap_watts is None else f"{gpu.cap_watts:g} W") + (
                    ", counter ceiling " + ("the default" if ceiling is None else f"{ceiling:g} W"))
                mode = f"{gpu.compute_partition or 'unknown'}/{gpu.memory_partition or 'unknown'}"
                parts = (f", {len(gpu.handles)} partitions: energy for the whole GPU only"
                         if len(gpu.handles) > 1 else "")
                lines.append(f"amdsmi: gpu {gpu.device} ({gpu.bdf}): {gpu.model} {gpu.uuid}, power cap {limit}, "
                             f"partition mode {mode}{parts}; {_ENERGY_FROM[gpu.mode]}")
            return lines

    def close(self) -> None:
        with self._lock:
            self._session.stop()


# --- fallback: amdgpu hwmon ----------------------------------------------------------------------

_CARD_RE = re.compile(r"^card(\d+)$")
AMD_VENDOR = "0x1002"


def _read(path: Path) -> str:
    with open(path, encoding="ascii", errors="replace") as fh:
        return fh.read().strip()


def _fact(device: Path, name: str) -> str:
    with contextlib.suppress(OSError):
        return _read(device / name)
    return ""


@dataclass(frozen=True)
class _HwmonGpu:
    device: str
    power_file: Path
    cap_watts: float | None
    max_cap_watts: float | None
    info: Mapping[str, str]


# Logical GPUs per package in each compute partition mode; CPX has one per XCC (8 on MI300X, 6 on MI300A).
PARTITIONS = {"SPX": "1", "DPX": "2", "TPX": "3", "QPX": "4"}


def _microwatts(path: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        return _number(int(_read(path)) / 1e6, 1.0, MAX_WATTS)
    return None


APU_SKIPPED = ("no power1_cap: an APU (its socket power includes the CPU cores RAPL counts) or a "
               "pre-GCN GPU; not read")


def discover_hwmon(sysfs: str, device_prefix: str = "") -> tuple[list[_HwmonGpu], dict[str, str]]:
    """amdgpu's PCI devices under <sysfs>/class/drm/card*/device with a hwmon power file, by PCI address,
    and the ones left out (PCI address -> why).

    Partitions (amdgpu_xcp platform devices) have no hwmon of their own, and several cards may point at
    one PCI device: each PCI device is listed once. On an APU (a Ryzen with integrated graphics) the
    power file is the whole socket, CPU included, which RAPL already counts; amdgpu hides power1_cap on
    APUs (amdgpu_pm.c hwmon_attributes_visible: "not implemented yet for APUs other than GC 10.3.1
    (vangogh) and 9.4.3"), so a device without it is left out rather than counted twice.
    """
    root = Path(sysfs) / "class" / "drm"
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir(root):
            if not _CARD_RE.match(entry):
                continue
            device = root / entry / "device"
            try:
                if _read(device / "vendor").lower() != AMD_VENDOR:
                    continue
                address = os.path.basename(os.path.realpath(device))
            except OSError:
                continue
            found.setdefault(address, device)
    gpus: list[_HwmonGpu] = []
    skipped: dict[str, str] = {}
    for address in sorted(found):
        device = found[address]
        for hwmon in sorted((device / "hwmon").glob("hwmon*")):
            with contextlib.suppress(OSError):
                if _read(hwmon / "name") != "amdgpu":
                    continue
            # The driver's own average over its window first: fewer aliasing errors at 1 s samples.
            power = next((hwmon / n for n in ("power1_average", "power1_input") if (hwmon / n).exists()), None)
            if power is None:
                continue
            if not (hwmon / "power1_cap").exists():
                skipped[address] = APU_SKIPPED
                break
            index = len(gpus)
            compute = _fact(device, "current_compute_partition")
            gpus.append(_HwmonGpu(f"{device_prefix}{index}", power, _microwatts(hwmon / "power1_cap"),
                                  _microwatts(hwmon / "power1_cap_max"), {
                "index": str(index),
                "vendor": "amd",
                "model": _fact(device, "product_name") or f"AMD GPU {_fact(device, 'device')}".strip(),
                "serial": _fact(device, "serial_number") or _fact(device, "unique_id"),
                "pci_bus_id": address,
                "compute_partition": compute,
                "memory_partition": _fact(device, "current_memory_partition"),
                "partitions": PARTITIONS.get(compute.upper(), "") if compute else "1",
            }))
            break
    return gpus, skipped


class AmdHwmonMeter:
    """amdgpu's hwmon socket power (µW) per physical GPU, integrated: the fallback without amdsmi."""

    name = "amdgpu_hwmon"

    def __init__(self, *, sysfs: str, max_watts: float | None, clock: Callable[[], float] = time.monotonic,
                 device_prefix: str = "") -> None:
        self.sysfs = sysfs
        self._clock = clock
        self._override = max_watts
        self.gpus, self.skipped = discover_hwmon(self.sysfs, device_prefix)
        if not self.gpus:
            why = "".join(f"; {address}: {reason}" for address, reason in self.skipped.items())
            raise MeterUnavailable(f"no amdgpu hwmon power file under {self.sysfs}/class/drm{why}")
        self._integrators = {g.device: PowerIntegrator() for g in self.gpus}
        self._down: dict[str, str] = {}

    def read(self) -> list[Reading]:
        now = self._clock()
        readings = []
        for gpu in self.gpus:
            integrator = self._integrators[gpu.device]
            try:
                raw = int(_read(gpu.power_file))
            except (OSError, ValueError) as exc:
                self._fail(gpu, integrator, f"{gpu.power_file.name}: {exc}")
                continue
            watts = _number(raw / 1e6, 0.0, min(MAX_WATTS, (gpu.cap_watts or MAX_WATTS) * 2))
            if watts is None:
                self._fail(gpu, integrator, f"{gpu.power_file.name}: implausible {raw} µW")
                continue
            self._down.pop(gpu.device, None)
            readings.append(Reading(
                component="gpu",
                device=gpu.device,
                source="hwmon_power",
                energy_joules=integrator.add(now, watts),
                power_watts=watts,
                hardware_counter=False,
                max_watts=self.ceiling(gpu),
                info=gpu.info,
                gauges={} if gpu.cap_watts is None else {"power_limit_watts": gpu.cap_watts},
            ))
        if not readings:
            raise MeterError(f"no amdgpu hwmon power file could be read ({len(self.gpus)} down)")
        return readings

    def ceiling(self, gpu: _HwmonGpu) -> float | None:
        """As AmdSmiMeter.ceiling: the override, else the highest cap x GPU_MARGIN, else the default."""
        return gpu_ceiling(self._override, gpu.cap_watts, gpu.max_cap_watts)

    def _fail(self, gpu: _HwmonGpu, integrator: PowerIntegrator, reason: str) -> None:
        if gpu.device not in self._down:
            log.warning("AMD GPU %s (hwmon) down: %s", gpu.device, reason)
        self._down[gpu.device] = reason
        integrator.reset_baseline()

    def down_devices(self) -> Mapping[str, str]:
        return dict(self._down)

    def doctor_lines(self) -> list[str]:
        lines = [f"amdgpu_hwmon: {len(self.gpus)} AMD GPU(s) from {self.sysfs}/class/drm (amdsmi not available)"]
        for gpu in self.gpus:
            mode = f"{gpu.info['compute_partition'] or 'unknown'}/{gpu.info['memory_partition'] or 'unknown'}"
            lines.append(f"amdgpu_hwmon: gpu {gpu.device} ({gpu.info['pci_bus_id']}): {gpu.info['model']}, "
                         f"partition mode {mode}; energy integrated from {gpu.power_file}")
        lines += [f"amdgpu_hwmon: {address}: {reason}" for address, reason in self.skipped.items()]
        return lines

    def close(self) -> None:
        pass
