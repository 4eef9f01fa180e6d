"""The live page's memory: node and device power over the last POINTS steps, and the day's baselines.

Fed after every sample (app.py's on_sample hook), read by /api/v1/history and /api/v1/summary. Memory is
fixed: each series is one ring of POINTS doubles (240 x 8 B, under 2 KiB a device), whatever the sample
rate or uptime, and at most MAX_SERIES device series are kept (the rest are dropped and counted). A
point is the mean power over its step (wall clock, aligned to the step); the step in progress is shown
too, so the chart moves at every sample. A missed step (the exporter was paused) stays a gap (None).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Mapping
from typing import Any, NamedTuple

POINTS = 240  # 1 hour at the default 15 s step (--web.history-step)
MAX_SERIES = 64  # device series; a node has a handful (8 GPUs + RAPL zones)
SECONDS_PER_DAY = 86400.0

SeriesKey = tuple[str, str, str]  # component, device, source


class Totals(NamedTuple):
    """Node energy (J) and operational emissions (g) at one moment, from the ledger (a tuple: one is
    made every sample, and a frozen dataclass sets each field through object.__setattr__)."""

    at: float  # Unix seconds
    energy_joules: float
    emissions_grams: float


class _Ring:
    """Means of one series per step; NaN where a step has no sample."""

    __slots__ = ("count", "sum", "values")

    def __init__(self, points: int) -> None:
        self.values = array("d", [math.nan]) * points
        self.sum = 0.0
        self.count = 0

    def close(self, slot: int) -> None:
        self.values[slot] = self.sum / self.count if self.count else math.nan
        self.sum, self.count = 0.0, 0


class PowerHistory:
    """Fixed-size power history plus the since-start and since-midnight (UTC) energy baselines."""

    def __init__(self, step: float, points: int = POINTS, max_series: int = MAX_SERIES) -> None:
        if not (step > 0 and math.isfinite(step)):
            raise ValueError(f"history step must be a positive number of seconds, not {step!r}")
        self.step = step
        self.points = points
        self.max_series = max_series
        self.dropped_series = 0
        self._lock = threading.Lock()
        self._node = _Ring(points)
        self._devices: dict[SeriesKey, _Ring] = {}
        self._bucket: int | None = None  # the step in progress, as an absolute step number
        self._closed = 0  # steps closed so far (the ring is full once this reaches `points`)
        self.started: Totals | None = None
        self.day_start: Totals | None = None
        self.last: Totals | None = None

    def record(self, wall: float, node_watts: float | None, devices: Mapping[SeriesKey, float], totals: Totals) -> None:
        """One sample: add its power to the step in progress (closing finished steps), move the baselines.

        A value that is not a finite, non-negative number is skipped: the chart never shows garbage.
        """
        if not math.isfinite(wall):
            return
        bucket = math.floor(wall / self.step)
        with self._lock:
            if self._bucket is None:
                self._bucket = bucket
            elif bucket > self._bucket:
                self._advance(bucket)
            # A wall clock stepped backwards: keep adding to the step in progress, never rewrite the past.
            if node_watts is not None:
                self._add(self._node, node_watts)
            rings, finite = self._devices, math.isfinite
            for key, watts in devices.items():
                if not (finite(watts) and watts >= 0):  # _add's rule, first: garbage never makes a series
                    continue
                ring = rings.get(key)
                if ring is None:
                    if len(rings) >= self.max_series:
                        self.dropped_series += 1
                        continue
                    ring = rings[key] = _Ring(self.points)
                ring.sum += watts  # _add, inlined: once per device per sample
                ring.count += 1
            self._baselines(totals)

    @staticmethod
    def _add(ring: _Ring, watts: float) -> None:
        if math.isfinite(watts) and watts >= 0:
            ring.sum += watts
            ring.count += 1

    def _advance(self, bucket: int) -> None:
        assert self._bucket is not None
        rings = [self._node, *self._devices.values()]
        for ring in rings:
            ring.close(self._bucket % self.points)
        self._closed += 1
        # Steps with no sample at all (paused, suspended) become gaps; past a whole ring, all of it.
        for missed in range(self._bucket + 1, min(bucket, self._bucket + 1 + self.points)):
            for ring in rings:
                ring.values[missed % self.points] = math.nan
            self._closed += 1
        self._bucket = bucket

    def _baselines(self, totals: Totals) -> None:
        if self.started is None:
            self.started = self.day_start = totals
        elif self.last is not None and (
            math.floor(totals.at / SECONDS_PER_DAY) > math.floor(self.last.at / SECONDS_PER_DAY)
        ):
            self.day_start = self.last  # the last sample before midnight: today starts from there
        self.last = totals

    def snapshot(self) -> dict[str, Any]:
        """Oldest first: the closed steps still in the ring, then the step in progress."""
        with self._lock:
            if self._bucket is None:
                return {"step_seconds": self.step, "points": self.points, "start": None, "node": [], "devices": []}
            held = min(self._closed, self.points - 1)
            first = self._bucket - held
            slots = [b % self.points for b in range(first, self._bucket)]

            def series(ring: _Ring) -> list[float | None]:
                values = [ring.values[s] for s in slots]
                values.append(ring.sum / ring.count if ring.count else math.nan)
                return [None if math.isnan(v) else round(v, 3) for v in values]

            return {
                "step_seconds": self.step,
                "points": self.points,
                "start": first * self.step,
                "node": series(self._node),
                "devices": [
                    {"component": k[0], "device": k[1], "source": k[2], "watts": series(ring)}
                    for k, ring in sorted(self._devices.items())
                ],
            }

