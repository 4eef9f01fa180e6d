"""`measure --from URL`: a running exporter's counters, read before and after a run, and their increase.

The run's interval is charged by the exporter that already measures the node (its meters, grid chain
and PUE), so nothing is measured twice. A counter that is smaller after than before was reset (the
exporter restarted without --state.file): its increase is its value after, as Prometheus's increase()
takes it. Values are bounded as any outside number: a sample that is not a finite, non-negative
number is dropped (and logged), never added.
"""

from __future__ import annotations

import logging
import math
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from footprint.accounting import accountant as acct
from footprint.exposition import catalog

log = logging.getLogger("footprint.track")

# Counter -> the label names of its ledger key, in the accountant's order.
COUNTERS: dict[str, tuple[str, ...]] = {
    acct.ENERGY: ("component", "device", "source"),
    acct.EMISSIONS: ("component", "device"),
    acct.NODE_ENERGY: (),
    acct.NODE_EMISSIONS: (),
    acct.FACILITY_OVERHEAD: (),
    acct.EMBODIED: ("component", "device"),
    acct.WATER: ("scope",),
    acct.COST: ("currency",),
}
INTENSITY = catalog.ACCOUNTING_INTENSITY
PUE = catalog.PUE

Key = tuple[str, tuple[str, ...]]


@dataclass
class Counters:
    series: dict[Key, float] = field(default_factory=dict)
    intensities: list[tuple[float, str, str]] = field(default_factory=list)  # (value, provider, zone)
    pue: float | None = None


def parse(text: str) -> Counters:
    out = Counters()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not (isinstance(s.value, float) and math.isfinite(s.value) and s.value >= 0):
                log.warning("ignoring %s%s = %r from the exporter", s.name, s.labels, s.value)
                continue
            if s.name in COUNTERS:
                out.series[(s.name, tuple(s.labels.get(k, "") for k in COUNTERS[s.name]))] = s.value
            elif s.name == INTENSITY:
                out.intensities.append((s.value, s.labels.get("provider", ""), s.labels.get("grid_zone", "")))
            elif s.name == PUE:
                out.pue = s.value
    return out


def scrape(url: str, timeout: float) -> Counters:
    """GET <url>/metrics (the text format) and keep the counters a run needs."""
    req = urllib.request.Request(url + "/metrics", headers={"Accept": "text/plain"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return parse(resp.read().decode("utf-8", errors="replace"))


def increase(before: Counters, after: Counters) -> dict[Key, float]:
    """Each counter's increase between the two reads; a reset counts from zero; new series in full."""
    out = {}
    for key, value in after.series.items():
        previous = before.series.get(key, 0.0)
        out[key] = value - previous if value >= previous else value
    return out
