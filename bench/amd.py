"""Benchmark: what sampling 8 AMD MI300X costs, in CPU time of the exporter process.

The real exporter at 1 s sampling reads 8 fake MI300X through the real `amdsmi` bindings and the fake
libamd_smi.so (tests/fakes/amdsmi; its clock follows CLOCK_MONOTONIC, so the counters move), plus the
same moving RAPL fixture as the overhead benchmark, NVML off. CPU time is read over a fixed window
without scrapes, the same way overhead.py measures the NVIDIA row.
"""

from __future__ import annotations

import time

import common
from overhead import exporter, measure, sample_duration

from tests.fakes.amdsmi import SCENARIO_ENV, Scenario, build_fake_amdsmi, mi300x_node


def run(quick: bool) -> dict[str, object]:
    warmup, window = (3.0, 20.0) if quick else (10.0, 120.0)
    with common.fixture() as fx:
        scenario = fx.root / "amd-scenario"
        Scenario(gpus=mi300x_node(activity=60), time=None, epoch=time.monotonic()).write(scenario)
        flags = ["--no-meter.nvml", f"--path.rocm={build_fake_amdsmi()}"]
        fx.env = lambda: {SCENARIO_ENV: str(scenario)}  # type: ignore[method-assign]
        with exporter(fx, flags, "footprint-amd") as (_, clock, url):
            time.sleep(warmup)
            quiet = measure(clock, window)
            body = common.http_get(url).decode()
            return {
                "gpus": common.gpu_series(body),
                "no_scrape": quiet.figures(),
                "cpu_clock": clock.method,
                **sample_duration(url),
            }
