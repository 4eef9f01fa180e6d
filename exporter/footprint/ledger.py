"""Monotonic totals, and the hardware counter state that makes them monotonic.

Two jobs, kept together because the checkpoint must persist both atomically:
- `CounterTracker` turns successive cumulative readings into energy deltas. It absorbs RAPL
  wraparound (via `wrap_joules`), counter resets (driver reload: a smaller value, or a new epoch)
  and never yields a negative delta.
- `Ledger` holds every counter the exporter exposes, keyed by metric name and label values. It only
  ever adds non-negative amounts, so exported counters never go backwards.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from footprint.meters.base import Reading

log = logging.getLogger("footprint.ledger")

Labels = tuple[str, ...]


@dataclass
class CounterState:
    raw: float  # last cumulative value, joules
    epoch: str
    hardware: bool


class CounterTracker:
    """Last raw counter per (component, device); yields deltas in joules."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], CounterState] = {}

    def delta(self, r: Reading) -> float:
        prev = self.states.get(r.key)
        self.states[r.key] = CounterState(r.energy_joules, r.counter_epoch, r.hardware_counter)
        if prev is None:
            return 0.0  # first sight: a baseline, nothing to count yet
        if prev.hardware != r.hardware_counter:
            return 0.0  # the source changed kind: start a new baseline, never mix counters
        if prev.epoch != r.counter_epoch:
            # The counter restarted from zero on purpose (reboot, driver load): energy since then.
            log.info("counter restarted", extra={"component": r.component, "device": r.device})
            return max(r.energy_joules, 0.0)
        if r.energy_joules >= prev.raw:
            return r.energy_joules - prev.raw
        if r.wrap_joules:
            return r.energy_joules + r.wrap_joules - prev.raw
        # Smaller without a wrap range: the counter was reset (driver reload). What it shows now is
        # the energy since the reset; what was drawn between our last read and the reset is lost
        # (at most one interval), never counted twice.
        log.warning(
            "energy counter went backwards; treating as a reset",
            extra={"component": r.component, "device": r.device},
        )
        return max(r.energy_joules, 0.0)

    def forget(self, key: tuple[str, str]) -> None:
        self.states.pop(key, None)


class Ledger:
    """Counters by metric name -> label values -> total, with the time each series was created."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, dict[Labels, float]] = {}
        self.created: dict[str, dict[Labels, float]] = {}
        self.counters = CounterTracker()

    def add(self, metric: str, labels: Labels, amount: float, now_wall: float) -> None:
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{metric}{labels}: refusing to add {amount!r} to a counter")
        series = self.totals.setdefault(metric, {})
        if labels not in series:
            series[labels] = 0.0
            self.created.setdefault(metric, {})[labels] = now_wall
        series[labels] += amount

    def get(self, metric: str, labels: Labels = ()) -> float:
        return self.totals.get(metric, {}).get(labels, 0.0)

    def series(self, metric: str) -> dict[Labels, float]:
        return self.totals.get(metric, {})

    def remove(self, metric: str, labels: Labels) -> None:
        """Drop a series that no longer exists (a deleted pod after its grace period)."""
        self.totals.get(metric, {}).pop(labels, None)
        self.created.get(metric, {}).pop(labels, None)
