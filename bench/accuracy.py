"""Benchmark 4: energy and emissions error against a known ground truth, on a bursty power trace.

The fake NVML (the real pynvml loads it) plays one seeded step trace on two GPUs: GPU 0 has the
hardware energy counter, GPU 1 has none, so the real NVML meter integrates its instant power
(trapezoid, source="nvml_power"). The real sampler, ledger and accountant sample them every 0.1, 1
and 5 s on a simulated clock (the fake's clock is set before each sample, so the run takes seconds,
not the simulated half hour). Grid intensity changes every 5 minutes and PUE is 1.2.

Ground truth: the exact integral of the trace (energy) and of trace x intensity x PUE (emissions)
over the sampled window. What this measures is the pipeline's error (counter handling, interval
edges, integration between samples), not the accuracy of NVIDIA's sensors, which no fake can show.
"naive" is what total energy x the intensity at the end would give, the approach the accountant
avoids (design: never total energy x current intensity).
"""

from __future__ import annotations

import itertools
import os
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import common
from common import FakeGpu, Scenario
from footprint import config
from footprint.accounting.accountant import EMISSIONS, ENERGY, Accountant
from footprint.accounting.ledger import Ledger
from footprint.grid.base import IntensityReading
from footprint.meters.registry import nvml_meter
from footprint.sampler import Sampler

INTERVALS = (0.1, 1.0, 5.0)
INTENSITY_PERIOD = 300.0
INTENSITIES = (320.0, 455.0, 120.0, 610.0, 245.0, 380.0, 90.0)
PUE = 1.2
WALL0 = 1_795_000_000.0


def bursty_trace(duration: float, seed: int) -> list[tuple[float, float]]:
    """Idle between 70 and 130 W, bursts of 50 ms to 3 s up to 350-700 W: (start second, watts) steps."""
    rng = random.Random(seed)
    steps, t = [(0.0, 100.0)], 0.0
    while True:
        t += rng.uniform(0.2, 6.0)
        if t >= duration:
            break
        steps.append((round(t, 6), round(rng.uniform(350.0, 700.0), 3)))
        t += rng.uniform(0.05, 3.0)
        if t >= duration:
            break
        steps.append((round(t, 6), round(rng.uniform(70.0, 130.0), 3)))
    return steps


def intensity_at(t: float) -> float:
    return INTENSITIES[int(t // INTENSITY_PERIOD) % len(INTENSITIES)]


def truth(steps: Sequence[tuple[float, float]], t0: float, t1: float) -> tuple[float, float]:
    """Exact energy (J) and emissions (g) over [t0, t1]: the trace and the intensity are both steps."""
    edges = {t0, t1}
    edges.update(s for s, _ in steps if t0 < s < t1)
    k = t0 - t0 % INTENSITY_PERIOD + INTENSITY_PERIOD
    while k < t1:
        edges.add(k)
        k += INTENSITY_PERIOD
    ordered = sorted(edges)
    energy = grams = 0.0
    idx = 0
    for a, b in itertools.pairwise(ordered):
        while idx + 1 < len(steps) and steps[idx + 1][0] <= a:
            idx += 1
        joules = steps[idx][1] * (b - a)
        energy += joules
        grams += joules * PUE * intensity_at(a) / 3.6e6
    return energy, grams


class SimulatedGrid:
    """The accountant's intensity source, following the simulated clock."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock

    def accounting_intensity(self) -> IntensityReading:
        return IntensityReading(intensity_at(self.clock[0]), "average", "bench", "ZZ")


def play(steps: list[tuple[float, float]], duration: float, interval: float, scenario_path: Path) -> dict[str, float]:
    scenario = Scenario(gpus=[FakeGpu(uuid="GPU-acc-0", power=tuple(steps)),
                              FakeGpu(uuid="GPU-acc-1", power=tuple(steps), energy_counter=False)], time=0.0)
    template = scenario.text()
    clock_line = "clock manual 0\n"
    assert clock_line in template
    head, tail = template.split(clock_line, 1)

    def set_time(t: float) -> None:
        tmp = scenario_path.with_name("scenario.tmp")
        tmp.write_text(f"{head}clock manual {round(t * 1e6)}\n{tail}")
        os.replace(tmp, scenario_path)

    now = [0.0]
    set_time(0.0)
    settings = config.load([f"--pue={PUE}", f"--sample.interval={interval}"], env={})
    meter = nvml_meter(settings, clock=lambda: now[0])
    ledger = Ledger()
    sampler = Sampler([meter], ledger, Accountant(settings), SimulatedGrid(now), interval,
                      clock=lambda: now[0], wall=lambda: WALL0 + now[0])
    samples = round(duration / interval)
    for k in range(samples + 1):
        now[0] = k * interval
        set_time(now[0])
        sampler.sample()
    meter.close()
    end = samples * interval
    true_j, true_g = truth(steps, 0.0, end)
    out = {"window_seconds": end, "samples": samples + 1, "true_joules": true_j, "true_grams": true_g}
    for label, device, source in (("counter", "0", "nvml"), ("integration", "1", "nvml_power")):
        joules = ledger.get(ENERGY, ("gpu", device, source))
        grams = ledger.get(EMISSIONS, ("gpu", device))
        out[f"{label}_energy_error_percent"] = (joules - true_j) / true_j * 100
        out[f"{label}_emissions_error_percent"] = (grams - true_g) / true_g * 100
        if label == "counter":
            naive = joules * PUE * intensity_at(end) / 3.6e6
            out["naive_emissions_error_percent"] = (naive - true_g) / true_g * 100
    return out


def run(quick: bool) -> dict[str, object]:
    duration = 600.0 if quick else 1800.0
    seeds = (1,) if quick else (1, 2, 3)
    common.preload_nvml()  # this process's pynvml now talks to the fake
    per_interval: dict[str, object] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="footprint-bench-accuracy-") as tmp:
        path = Path(tmp) / "scenario"
        os.environ[common.fake_nvml.SCENARIO_ENV] = str(path)  # the fake reads it on every call
        traces = {seed: bursty_trace(duration, seed) for seed in seeds}
        for interval in INTERVALS:
            runs = [play(traces[seed], duration, interval, path) for seed in seeds]
            summary: dict[str, object] = {"runs": len(runs), "samples_per_run": runs[0]["samples"]}
            for key in ("counter_energy_error_percent", "counter_emissions_error_percent",
                        "integration_energy_error_percent", "integration_emissions_error_percent",
                        "naive_emissions_error_percent"):
                values = [r[key] for r in runs]
                summary[key] = {"max_abs": round(max(abs(v) for v in values), 6),
                                "mean": round(statistics.fmean(values), 6),
                                "values": [round(v, 6) for v in values]}
            per_interval[f"{interval:g}s"] = summary
            common.log(f"accuracy: {interval:g}s done")
    steps = traces[seeds[0]]
    return {
        "simulated_seconds": duration,
        "seeds": list(seeds),
        "trace_steps": len(steps),
        "intensity_period_seconds": INTENSITY_PERIOD,
        "pue": PUE,
        "intervals": per_interval,
        "elapsed_seconds": round(time.monotonic() - started, 1),
    }
