"""The fake libnvidia-ml.so.1 (fake_nvml.c): build it, write its scenarios, know its ground truth.

The real pynvml loads the compiled fake, either in a subprocess started with `fake_env()` (sets
LD_LIBRARY_PATH) or in this process after `preload()` (pynvml's plain-soname dlopen then finds the
already loaded fake). The scenario file is re-read by the fake whenever it changes, so a test moves
time forward, loses a GPU or reloads the driver by writing the scenario again.

Time is the fake's own: `Scenario.time` fixes it (seconds), or `time=None` makes it follow
CLOCK_MONOTONIC from `Scenario.epoch` (a `time.monotonic()` value). The energy counter is the exact
integral of the step power trace; `Scenario.energy_mj()` computes the same integer in Python.

What the real library does, and the fake imitates: nvmlDeviceGetTotalEnergyConsumption is in mJ since
the driver was last loaded (NVML API reference; Volta and newer, NOT_SUPPORTED before), so it restarts
from 0 at each load and is ~10^9 mJ a month after one. It has been seen to read a few mJ below the
previous value, 0, or garbage near 2^64 for one read (ml-energy/zeus and NVIDIA developer forum
reports): `FakeGpu.glitches` answer such values in a window of fake time. The power limit is
settable between nvmlDeviceGetPowerManagementLimitConstraints' min and max (`power_limit_max_watts`).
nvmlDeviceGetArchitecture answers `FakeGpu.architecture` (nvmlDeviceArchitecture_t: VOLTA 5 ... HOPPER 9,
UNKNOWN 0xffffffff); peers such as Zeus read the energy counter only from VOLTA on.
A driver call can hang for seconds (a GPU falling off the bus): `Scenario.hangs` blocks
nvmlDeviceGetTotalEnergyConsumption while a file exists (`<file>.entered` appears once it blocks).
Other failures a scenario sets, all as NVML answers them (NVML API reference, return codes):
`lost` windows (NVML_ERROR_GPU_IS_LOST, a GPU off the bus), `errors` (a call or field ID answering
an NVML error code, optionally only in a window), `init_error` (nvmlInit failing, e.g.
DRIVER_NOT_LOADED), `reloads`, `energy_counter=False` (NOT_SUPPORTED, as before Volta) and
`mig=True` (utilisation calls NOT_SUPPORTED, as on MIG-enabled GPUs).
Fake time that a test moves by seconds in one real sample is not physics: such tests raise the GPU
ceiling (`--counter.max-watts=gpu=...`), since the exporter judges every delta against real time.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.cfake import build_library, since_load_nj, timeline_lines, trace_lines, watts_at, write_atomic
from tests.fakes.cfake import us as _us

SOURCE = Path(__file__).with_name("fake_nvml.c")
CACHE = Path(__file__).resolve().parents[3] / ".cache" / "fake-nvml"
LIBRARY = "libnvidia-ml.so.1"
SCENARIO_ENV = "FAKE_NVML_SCENARIO"

# NVML return codes the tests use (same values as pynvml's NVML_ERROR_*).
NOT_SUPPORTED = 3
NO_PERMISSION = 4
DRIVER_NOT_LOADED = 9
GPU_IS_LOST = 15
UNKNOWN = 999

_loaded: list[ctypes.CDLL] = []


def build_fake_nvml(wrapper: Path | None = None) -> Path:
    """Compile fake_nvml.c (once per source version) and return the directory holding the library.

    `wrapper`: a C file that #includes fake_nvml.c and adds calls (the benchmarks' extras); it is
    compiled instead, and its text is part of the cache key.
    """
    return build_library("libnvidia-ml.so.1", CACHE, wrapper or SOURCE, LIBRARY, LIBRARY,
                         depends=[SOURCE] if wrapper else [])


def preload() -> Path:
    """Load the fake into this process so pynvml's `CDLL("libnvidia-ml.so.1")` resolves to it."""
    directory = build_fake_nvml()
    if not _loaded:
        _loaded.append(ctypes.CDLL(str(directory / LIBRARY)))
    return directory


def fake_env(scenario: Path) -> dict[str, str]:
    """Environment for a subprocess that should load the fake with `scenario`."""
    directory = build_fake_nvml()
    previous = os.environ.get("LD_LIBRARY_PATH", "")
    return {
        "LD_LIBRARY_PATH": str(directory) + (os.pathsep + previous if previous else ""),
        SCENARIO_ENV: str(scenario),
    }


@dataclass
class FakeProcess:
    pid: int
    sm_util: int = 0  # percent, what nvmlDeviceGetProcessUtilization reports
    mem_util: int = 0
    used_memory: int = 1 << 30
    gpu_instance: int = 0xFFFFFFFF  # NVML's "not MIG"
    compute_instance: int = 0xFFFFFFFF


@dataclass
class FakeError:
    """`function` (or "field:<id>", or "*" for every call) returns `code` in [start, end), or always."""

    function: str
    code: int
    start: float | None = None
    end: float | None = None

    def line(self) -> str:
        window = "" if self.start is None else f" {_us(self.start)} {_us(self.end or 1e12)}"
        return f"error {self.function} {self.code}{window}"


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""  # default: derived from the index
    power_limit_watts: float = 700.0
    power_limit_max_watts: float | None = None  # top of the settable range; None: the limit itself
    power: Sequence[tuple[float, float]] = ((0.0, 100.0),)  # (from second, watts) steps, ascending
    energy_counter: bool = True  # False: nvmlDeviceGetTotalEnergyConsumption answers NOT_SUPPORTED
    instant_power_field: bool = True  # False: field 186 answers NOT_SUPPORTED
    energy_offset_mj: int = 0  # counter value at time 0 (energy since an earlier driver load)
    utilization: tuple[int, int] = (0, 0)  # gpu %, memory %
    architecture: int = 9  # nvmlDeviceArchitecture_t: 9 HOPPER (the H100 above), 5 VOLTA, 4 PASCAL
    mig: bool | None = None  # None: no MIG; True: utilisation calls answer NOT_SUPPORTED, as on real GPUs
    lost: Sequence[tuple[float, float]] = ()  # [start, end) windows answering GPU_IS_LOST
    errors: Sequence[FakeError] = ()
    processes: Sequence[FakeProcess] = ()
    glitches: Sequence[tuple[float, float, int]] = ()  # [from, until) seconds: the counter answers this mJ

    def watts_at(self, t: float) -> float:
        return watts_at(self.power, t)


@dataclass
class Scenario:
    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    time: float | None = 0.0  # the fake's clock in seconds; None: CLOCK_MONOTONIC - epoch
    epoch: float = 0.0  # time.monotonic() value that is t=0 when time is None
    driver_version: str = "550.54.15"
    init_error: int = 0
    reloads: Sequence[float] = ()  # driver reloads: every counter restarts from 0 at these times
    errors: Sequence[FakeError] = ()  # library-wide rules (nvmlDeviceGetCount_v2, ...)
    hangs: Sequence[tuple[str, Path]] = ()  # (NVML function, file): the call blocks while the file exists

    def text(self) -> str:
        if len(self.gpus) > 8:
            raise ValueError("the fake holds at most 8 GPUs")
        lines = [f"driver_version {self.driver_version}", f"init_error {self.init_error}",
                 *timeline_lines(self.time, self.epoch, self.reloads)]
        lines += [e.line() for e in self.errors]
        lines += [f"hang {function} {path}" for function, path in self.hangs]
        for i, gpu in enumerate(self.gpus):
            lines += [
                f"gpu {i}",
                f"name {gpu.name}",
                f"power_limit_mw {round(gpu.power_limit_watts * 1000)}",
                f"energy_offset_mj {gpu.energy_offset_mj}",
                f"util {gpu.utilization[0]} {gpu.utilization[1]}",
                f"mig {-1 if gpu.mig is None else int(gpu.mig)}",
                f"arch {gpu.architecture}",
            ]
            if gpu.uuid:
                lines.append(f"uuid {gpu.uuid}")
            if gpu.power_limit_max_watts is not None:
                lines.append(f"power_limit_max_mw {round(gpu.power_limit_max_watts * 1000)}")
            lines += [f"energy_glitch {_us(a)} {_us(b)} {mj}" for a, b, mj in gpu.glitches]
            lines += trace_lines(gpu.power, gpu.lost)
            errors = list(gpu.errors)
            if not gpu.energy_counter:
                errors.append(FakeError("nvmlDeviceGetTotalEnergyConsumption", NOT_SUPPORTED))
                errors.append(FakeError("field:83", NOT_SUPPORTED))
            if not gpu.instant_power_field:
                errors.append(FakeError("field:186", NOT_SUPPORTED))
            lines += [e.line() for e in errors]
            lines += [
                f"process {p.pid} {p.sm_util} {p.mem_util} {p.used_memory} {p.gpu_instance} {p.compute_instance}"
                for p in gpu.processes
            ]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        write_atomic(path, self.text())

    def energy_mj(self, index: int, t: float) -> int:
        """The fake's counter for GPU `index` at time `t` (s): the same integer arithmetic as the C."""
        nj, reloaded = since_load_nj(self.gpus[index].power, self.reloads, t)
        return nj // 1_000_000 + (0 if reloaded else self.gpus[index].energy_offset_mj)


def write_scenario(path: Path, gpus: Sequence[FakeGpu] | None = None, **kwargs: Any) -> Scenario:
    """Write a scenario with these GPUs (default: one) and other Scenario fields as keywords."""
    scenario = Scenario(gpus=list(gpus) if gpus is not None else [FakeGpu()], **kwargs)
    scenario.write(path)
    return scenario
