"""The fake libamd_smi.so (fake_amdsmi.c): build it, write its scenarios, know its ground truth.

The real `amdsmi` bindings bind every one of their C functions when `amdsmi_wrapper` is imported, so
the builder reads the installed wrapper and adds a weak stub (answering AMDSMI_STATUS_NOT_SUPPORTED)
for every symbol; the ones fake_amdsmi.c implements override them. The library lands in
`<dir>/lib/libamd_smi.so`, so `ROCM_HOME=<dir>` (what `--path.rocm` sets) makes the bindings load it.

Time is the fake's own: `Scenario.time` fixes it (seconds), or `time=None` makes it follow
CLOCK_MONOTONIC from `Scenario.epoch`. The energy counter is the exact integral of the step power
trace in 15.3 µJ ticks; `Scenario.ticks()` computes the same integer in Python and `joules()` turns
it into joules the way the meter does (ticks x the float32 resolution / 1e6).

The real behaviour copied, and its sources (ROCm/amdsmi amdsmi.h and rocm_smi.cc, amd_smi_system.cc,
ROCm/rocm-systems and k8s-gpu-dra-driver issues), are in fake_amdsmi.c's header. The ugly cases a
scenario sets: `reloads` (every counter restarts from 0), `offset_ticks` (a counter already large
from an earlier load), `unloaded` (the driver goes under a live library: reads answer FILE_ERROR,
init DRIVER_NOT_LOADED), `lost` (a GPU off the bus: FILE_ERROR), `init_error`, `counter=False`
(NOT_SUPPORTED), and partitions whose secondaries answer N/A (0xFFFF power) or, with
`secondary_same`, the whole package's energy again.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.cfake import build_library, since_load_nj, timeline_lines, trace_lines, watts_at, write_atomic
from tests.fakes.cfake import us as _us

SOURCE = Path(__file__).with_name("fake_amdsmi.c")
CACHE = Path(__file__).resolve().parents[3] / ".cache" / "fake-amdsmi"
SCENARIO_ENV = "FAKE_AMDSMI_SCENARIO"
NJ_PER_TICK = 15_300
RESOLUTION_UJ = float(ctypes.c_float(15.3).value)  # what the C float 15.3F reads back as in Python

FILE_ERROR = 14
NOT_INIT = 32
DRIVER_NOT_LOADED = 34


def _wrapper_source() -> str:
    spec = importlib.util.find_spec("amdsmi")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the amdsmi bindings are not installed (pip install -e '.[dev]')")
    return (Path(next(iter(spec.submodule_search_locations))) / "amdsmi_wrapper.py").read_text()


def _stubs(wrapper: str) -> str:
    names = sorted(set(re.findall(r"_libraries\['libamd_smi\.so'\]\.(\w+)", wrapper)))
    body = "\n".join(f"__attribute__((weak)) int {name}(void) {{ return 2; }}" for name in names)
    return "/* generated: every symbol the amdsmi bindings bind, answering NOT_SUPPORTED */\n" + body + "\n"


def build_fake_amdsmi() -> Path:
    """Compile the fake (once per source and bindings version); return the ROCm root holding lib/."""
    return build_library("libamd_smi.so", CACHE, SOURCE, "lib/libamd_smi.so", "libamd_smi.so",
                         generated=_stubs(_wrapper_source()))


def fake_env(scenario: Path) -> dict[str, str]:
    """Environment for an exporter that should load the fake with `scenario` (with --path.rocm=root)."""
    return {SCENARIO_ENV: str(scenario)}


@dataclass
class FakeProcess:
    pid: int
    partition: int = 0  # the logical GPU (compute partition) it runs on
    gfx_pct: int = 0  # share of wall time its GFX engine time grows by
    vram_bytes: int = 1 << 30
    name: str = "python3"


@dataclass
class FakeGpu:
    """One physical AMD GPU (a socket in amdsmi's terms), with `partitions` logical GPUs."""

    name: str = "AMD Instinct MI300X"
    serial: str = ""  # default: derived from the index
    uuid: str = ""
    bus: int | None = None  # PCI bus; default 0x0c + 0x20 x index
    cap_watts: float = 750.0
    activity: int = 0  # gfx_activity %
    counter: bool = True  # False: amdsmi_get_energy_count answers NOT_SUPPORTED
    offset_ticks: int = 0  # counter at time 0 (energy since an earlier driver load)
    partitions: int = 1
    compute: str = "SPX"
    memory: str = "NPS1"
    secondary_same: bool = False  # secondaries answer the package's energy/power too
    power: Sequence[tuple[float, float]] = ((0.0, 300.0),)  # (from second, watts) steps, ascending
    lost: Sequence[tuple[float, float]] = ()
    processes: Sequence[FakeProcess] = ()

    def watts_at(self, t: float) -> float:
        return watts_at(self.power, t)


@dataclass
class Scenario:
    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu()])
    time: float | None = 0.0
    epoch: float = 0.0
    driver_version: str = "6.10.5"
    init_error: int = 0
    reloads: Sequence[float] = ()
    unloaded: Sequence[tuple[float, float]] = ()  # driver unloaded in [start, end): GPUs fail, init too

    def text(self) -> str:
        if len(self.gpus) > 8:
            raise ValueError("the fake holds at most 8 GPUs")
        lines = [f"driver_version {self.driver_version}", f"init_error {self.init_error}",
                 *timeline_lines(self.time, self.epoch, self.reloads)]
        lines += [f"unloaded {_us(a)} {_us(b)}" for a, b in self.unloaded]
        for i, gpu in enumerate(self.gpus):
            lines += [
                f"gpu {i}",
                f"name {gpu.name}",
                f"cap_uw {round(gpu.cap_watts * 1e6)}",
                f"activity {gpu.activity}",
                f"counter {int(gpu.counter)}",
                f"offset_ticks {gpu.offset_ticks}",
                f"partitions {gpu.partitions}",
                f"compute {gpu.compute}",
                f"memory {gpu.memory}",
                f"secondary {'same' if gpu.secondary_same else 'na'}",
            ]
            lines += [f"serial {gpu.serial}"] if gpu.serial else []
            lines += [f"uuid {gpu.uuid}"] if gpu.uuid else []
            lines += [f"bus {gpu.bus}"] if gpu.bus is not None else []
            lines += trace_lines(gpu.power, gpu.lost)
            lines += [f"process {p.partition} {p.pid} {p.gfx_pct} {p.vram_bytes} {p.name}" for p in gpu.processes]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        write_atomic(path, self.text())

    def ticks(self, index: int, t: float) -> int:
        """The fake's accumulator for GPU `index` at `t` seconds: the same integer arithmetic as the C."""
        nj, reloaded = since_load_nj(self.gpus[index].power, self.reloads, t)
        return nj // NJ_PER_TICK + (0 if reloaded else self.gpus[index].offset_ticks)

    def joules(self, index: int, t: float) -> float:
        """The counter as the meter reports it: ticks x resolution (µJ) / 1e6."""
        return self.ticks(index, t) * RESOLUTION_UJ / 1e6


def write_scenario(path: Path, gpus: Sequence[FakeGpu] | None = None, **kwargs: Any) -> Scenario:
    scenario = Scenario(gpus=list(gpus) if gpus is not None else [FakeGpu()], **kwargs)
    scenario.write(path)
    return scenario


def mi300x_node(**kwargs: Any) -> list[FakeGpu]:
    """Eight MI300X at different steady powers (the benchmark's and the exporter tests' node)."""
    return [FakeGpu(power=((0.0, 200.0 + 50.0 * i),), **kwargs) for i in range(8)]
