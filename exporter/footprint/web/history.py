"""The live page's memory: node and device power over the last POINTS steps, and the day's baselines.

Fed by the live page (web/api.py): after the samples that may be the last of their step or of the UTC
day, and with the latest sample when a page asks; read by /api/v1/history and /api/v1/summary. Memory is
fixed: each series is one ring of POINTS doubles (240 x 8 B, under 2 KiB a device), whatever the sample
rate or uptime, and at most MAX_SERIES device series are kept (the rest are refused and counted).

A point is the mean power over its step (wall clock, aligned to the step): the energy the ledger charged
between the last sample of the step before and the last sample of this one, over the time between them,
so the steps tile time and what the chart shows is what was counted. Each recorded mark only keeps its
cumulative figures (one dict copy); the division happens once per step, when the next step's first mark
closes it, or when a page asks for the step in progress. A mark recorded more than once counts once. A
step without samples (the exporter was paused) is a gap (None), and so is the step after a pause, whose
energy spans the pause, a stall at the end of a step (its last sample came too early to be taken for
its last, so no mark of the step ends it: the time is shown nowhere rather than over the wrong span), a
point over less than a quarter of a step (the first one after start-up, mostly), and a device that had
no power figure in the step's last sample (down, or rejected) or was first seen in it.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

POINTS = 240  # 1 hour at the default 15 s step (--web.history-step)
MAX_SERIES = 64  # device series; a node has a handful (8 GPUs + RAPL zones)
SECONDS_PER_DAY = 86400.0

SeriesKey = tuple[str, ...]  # (component, device, source): the energy series' labels


class Totals(NamedTuple):
    """Node energy (J) and operational emissions (g) at one moment, from the ledger (a tuple: one is
    made every sample, and a frozen dataclass sets each field through object.__setattr__)."""

    at: float  # Unix seconds
    energy_joules: float
    emissions_grams: float


class Mark(NamedTuple):
    """One sample's cumulative figures: where a step's energy is measured from and to."""

    totals: Totals
    devices: Mapping[SeriesKey, float]  # each device's energy counter total (J), a copy
    up: Collection[SeriesKey]  # the devices that had a power figure in that sample


def _watts(joules: float, seconds: float, shortest: float) -> float:
    """Mean power, NaN where it cannot be told: marks less than `shortest` apart (a mark is taken when a
    sample is recorded, a little after its reads: over a millisecond, as between the two samples at
    start-up, that lag is most of the span), a clock that went back, a count that is not one."""
    if seconds >= shortest and seconds > 0 and math.isfinite(joules) and joules >= 0:
        return joules / seconds
    return math.nan


class PowerHistory:
    """Fixed-size power history plus the since-start and since-midnight (UTC) energy baselines."""

    def __init__(self, step: float, points: int = POINTS, max_series: int = MAX_SERIES) -> None:
        if not (step > 0 and math.isfinite(step)):
            raise ValueError(f"history step must be a positive number of seconds, not {step!r}")
        self.step = step
        self.shortest = step / 4  # the least time a point is told over
        self.points = points
        self.max_series = max_series
        self._refused: set[SeriesKey] = set()
        self._lock = threading.Lock()
        self._node = array("d", [math.nan]) * points
        self._devices: dict[SeriesKey, array[float]] = {}
        self._bucket: int | None = None  # the step in progress, as an absolute step number
        self._closed = 0  # steps closed so far (the ring is full once this reaches `points`)
        self._opened: Mark | None = None  # the last sample of the step before the one in progress
        self._latest: Mark | None = None  # the last sample of the step in progress
        self.started: Totals | None = None
        self.day_start: Totals | None = None
        self.last: Totals | None = None

    @property
    def dropped_series(self) -> int:
        """Device series refused because MAX_SERIES were held."""
        return len(self._refused)

    def record(self, mark: Mark) -> tuple[Totals | None, Totals | None]:
        """One sample (at mark.totals.at): the step in progress ends at it for now; closing the step
        before when it is the first of a new one. A sample without a finite time is dropped; a wall
        clock stepped backwards keeps adding to the step in progress, never rewriting the past.
        Returns the since-start and since-midnight baselines after it."""
        wall = mark.totals.at
        if not math.isfinite(wall):
            return self.started, self.day_start
        bucket = math.floor(wall / self.step)
        with self._lock:
            if self._bucket is None:
                self._bucket, self._opened = bucket, mark
            elif bucket > self._bucket:
                self._advance(bucket, mark)
            self._latest = mark
            self._baselines(mark.totals)
        return self.started, self.day_start

    def _advance(self, bucket: int, mark: Mark) -> None:
        assert self._bucket is not None and self._opened is not None
        latest = self._latest or self._opened
        self._close(self._bucket % self.points, self._opened, latest)
        self._closed += 1
        missed = range(self._bucket + 1, min(bucket, self._bucket + 1 + self.points))
        rings = [self._node, *self._devices.values()]
        for step in missed:  # steps with no sample at all (paused, suspended) become gaps
            for ring in rings:
                ring[step % self.points] = math.nan
            self._closed += 1
        # After a gap the step in progress is measured from its own first sample: the energy since the
        # last mark spans the pause, which no step can show.
        self._opened = latest if not missed else mark
        self._bucket = bucket

    def _close(self, slot: int, opened: Mark, latest: Mark) -> None:
        self._node[slot] = self._node_watts(opened, latest)
        for key, joules in self._points(opened, latest).items():
            ring = self._devices.get(key)
            if ring is None:
                if len(self._devices) >= self.max_series:
                    self._refused.add(key)
                    continue
                ring = self._devices[key] = array("d", [math.nan]) * self.points
            ring[slot] = joules
        for key, ring in self._devices.items():
            if key not in latest.devices:
                ring[slot] = math.nan

    def _node_watts(self, opened: Mark, latest: Mark) -> float:
        """The node's mean power between two marks."""
        return _watts(latest.totals.energy_joules - opened.totals.energy_joules, latest.totals.at - opened.totals.at,
                      self.shortest)

    def _points(self, opened: Mark, latest: Mark) -> dict[SeriesKey, float]:
        """Each device's mean power between two marks (NaN: not up at the later one, or new since)."""
        seconds, before, shortest = latest.totals.at - opened.totals.at, opened.devices, self.shortest
        return {key: _watts(joules - before[key], seconds, shortest) if key in before and key in latest.up
                else math.nan for key, joules in latest.devices.items()}

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
            if self._bucket is None or self._opened is None or self._latest is None:
                return {"step_seconds": self.step, "points": self.points, "start": None, "node": [], "devices": []}
            held = min(self._closed, self.points - 1)
            first = self._bucket - held
            slots = [b % self.points for b in range(first, self._bucket)]
            opened, latest = self._opened, self._latest
            now = self._points(opened, latest)

            def series(ring: array[float], current: float) -> list[float | None]:
                values = [ring[s] for s in slots]
                values.append(current)
                return [None if math.isnan(v) else round(v, 3) for v in values]

            node = self._node_watts(opened, latest)
            rings = dict(self._devices)
            for key in now:  # seen only in the step in progress: no closed point yet
                if key not in rings and len(rings) < self.max_series:
                    rings[key] = array("d", [math.nan]) * self.points
            return {
                "step_seconds": self.step,
                "points": self.points,
                "start": first * self.step,
                "node": series(self._node, node),
                "devices": [
                    {"component": k[0], "device": k[1], "source": k[2], "watts": series(ring, now.get(k, math.nan))}
                    for k, ring in sorted(rings.items())
                ],
            }
