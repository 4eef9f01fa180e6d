"""The live page's power history: means per step, gaps, fixed memory, and the since-start/today baselines."""

from __future__ import annotations

import math
from collections import defaultdict

from footprint.web.history import PowerHistory, Totals
from hypothesis import given
from hypothesis import strategies as st

KEY = ("gpu", "0", "nvml")


def totals(at: float, joules: float = 0.0) -> Totals:
    return Totals(at, joules, joules / 1000)


def record(h: PowerHistory, at: float, watts: float, devices: dict[tuple[str, str, str], float] | None = None) -> None:
    h.record(at, watts, {KEY: watts} if devices is None else devices, totals(at))


def test_points_are_step_means_with_the_step_in_progress_last() -> None:
    h = PowerHistory(step=10.0, points=4)
    for at, watts in ((100.0, 10.0), (105.0, 20.0), (112.0, 40.0), (131.0, 7.0), (133.0, 9.0)):
        record(h, at, watts)
    snap = h.snapshot()
    # steps 100-110: mean 15; 110-120: 40; 120-130: nothing (a gap); 130-140 in progress: mean 8
    assert snap["start"] == 100.0
    assert snap["node"] == [15.0, 40.0, None, 8.0]
    assert snap["devices"] == [{"component": "gpu", "device": "0", "source": "nvml", "watts": [15.0, 40.0, None, 8.0]}]


def test_the_ring_keeps_only_the_last_points_steps() -> None:
    h = PowerHistory(step=1.0, points=5)
    for i in range(50):
        record(h, 1000.0 + i, float(i))
    snap = h.snapshot()
    assert snap["node"] == [45.0, 46.0, 47.0, 48.0, 49.0]
    assert snap["start"] == 1045.0


def test_a_pause_longer_than_the_window_leaves_only_gaps() -> None:
    h = PowerHistory(step=1.0, points=5)
    for i in range(5):
        record(h, 1000.0 + i, 3.0)
    record(h, 5000.0, 8.0)
    assert h.snapshot()["node"] == [None, None, None, None, 8.0]


def test_garbage_power_is_skipped_and_the_clock_never_rewrites_the_past() -> None:
    h = PowerHistory(step=10.0, points=3)
    record(h, 100.0, 10.0)
    record(h, 101.0, math.nan)
    record(h, 102.0, -5.0)
    record(h, 103.0, math.inf)
    record(h, 50.0, 20.0)  # the wall clock stepped back: counted in the step in progress
    record(h, math.nan, 99.0)  # no time at all: dropped
    assert h.snapshot()["node"] == [15.0]


def test_device_series_are_capped() -> None:
    h = PowerHistory(step=1.0, points=3, max_series=2)
    devices = {("gpu", str(i), "nvml"): 1.0 for i in range(5)}
    record(h, 10.0, 5.0, devices)
    record(h, 11.0, 5.0, devices)
    assert len(h.snapshot()["devices"]) == 2
    assert h.dropped_series == 6  # 3 devices refused at each of the 2 samples


def test_today_starts_at_utc_midnight_and_since_start_at_the_first_sample() -> None:
    h = PowerHistory(step=1.0)
    midnight = 20_000 * 86400.0
    for i, at in enumerate((midnight - 3, midnight - 2, midnight - 1, midnight + 0.5, midnight + 1.5)):
        h.record(at, 1.0, {}, totals(at, 100.0 * i))
    assert h.started == totals(midnight - 3, 0.0)
    assert h.day_start == totals(midnight - 1, 200.0)  # the last sample of yesterday: today's energy from there
    assert h.last == totals(midnight + 1.5, 400.0)


samples = st.lists(
    st.tuples(st.floats(0.0, 7.0), st.floats(0.0, 2000.0, allow_nan=False)), min_size=1, max_size=80
)


@given(samples, st.sampled_from([0.5, 1.0, 2.5, 10.0]), st.integers(2, 12))
def test_history_matches_a_plain_model(steps: list[tuple[float, float]], step: float, points: int) -> None:
    """Whatever the timing: at most `points` points, each the mean of the samples of its step, None where a
    step had none, and the series ends with the step of the latest sample."""
    h = PowerHistory(step=step, points=points)
    buckets: dict[int, list[float]] = defaultdict(list)
    at = 1_000_000.0
    for gap, watts in steps:
        at += gap
        record(h, at, watts)
        buckets[math.floor(at / step)].append(watts)
    snap = h.snapshot()
    last = max(buckets)
    first = max(min(buckets), last - points + 1)
    expected = [round(sum(buckets[b]) / len(buckets[b]), 3) if buckets[b] else None for b in range(first, last + 1)]
    assert snap["node"] == expected
    assert snap["devices"][0]["watts"] == expected
    assert snap["start"] == first * step
    assert len(snap["node"]) <= points
