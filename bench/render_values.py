"""Micro-benchmark: one metric's 940 exposition lines, by the size of the values, C renderer vs its Python twin.

prometheus_client writes floats from 1e6 up to 1e16 with an exponent (floatToGoString), where `repr` has
none; an energy counter passes 1e6 J within hours (a 700 W GPU: 24 minutes), so a long-running exporter's
values are mostly there, while a fresh one's (and the scrape benchmark's fixtures) are mostly below.
Prints a table; nothing is asserted (bench/README.md).

    .venv/bin/python bench/render_values.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))

from footprint.accounting import _fastledger
from footprint.exposition.metrics import _python_lines
from prometheus_client.utils import floatToGoString

LINES = 940
ROUNDS = 300


def p50_us(render: object, *args: object) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        render(*args)  # type: ignore[operator]
        times.append(time.perf_counter_ns() - start)
    times.sort()
    return times[ROUNDS // 2] / 1e3


def main() -> None:
    if _fastledger is None:
        sys.exit("the C twins are not built: .venv/bin/python setup.py build_ext --inplace")
    rng = random.Random(1)
    print(f"| values | C render_lines, {LINES} lines (p50) | Python twin (p50) |")
    print("|---|---|---|")
    for label, low, high in (("1 J to 1e6 J", 1.0, 1e6), ("1e6 J to 1e9 J", 1e6, 1e9)):
        series = {(f"pod-{i}", "main"): rng.uniform(low, high) for i in range(LINES)}
        order = sorted(series)
        prefixes = {k: f'footprint_workload_energy_joules_total{{namespace="ml",pod="{k[0]}"}} ' for k in order}
        assert _fastledger.render_lines(prefixes, series, order, floatToGoString) == _python_lines(
            prefixes, series, order)
        fast = p50_us(_fastledger.render_lines, prefixes, series, order, floatToGoString)
        slow = p50_us(_python_lines, prefixes, series, order)
        print(f"| {label} | {fast:.0f} us | {slow:.0f} us |")


if __name__ == "__main__":
    main()
