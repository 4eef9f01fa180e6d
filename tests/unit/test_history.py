"""The live page's power history: mean power between step-final samples, gaps, fixed memory, and the
since-start/today baselines."""

from __future__ import annotations

import math
from collections import defaultdict

from footprint.web.history import Mark, PowerHistory, Totals
from hypothesis import given
from hypothesis import strategies as st

KEY: tuple[str, ...] = ("gpu", "0", "nvml")


def totals(at: float, joules: float = 0.0) -> Totals:
    return Totals(at, joules, joules / 1000)


def record(h: PowerHistory, at: float, joules: float, devices: dict[tuple[str, ...], float] | None = None,
           up: set[tuple[str, ...]] | None = None) -> None:
    """One sample: the node's energy total and each device's (by default one device with the node's)."""
    devices = {KEY: joules} if devices is None else devices
    h.record(Mark(totals(at, joules), devices, set(devices) if up is None else up))


def test_a_point_is_the_energy_between_the_last_samples_of_two_steps_over_their_time() -> None:
    h = PowerHistory(step=10.0, points=4)
    for at, joules in ((100.0, 0.0), (105.0, 50.0), (112.0, 190.0), (131.0, 260.0), (134.0, 290.0)):
        record(h, at, joules)
    snap = h.snapshot()
    # 100-110: 50 J over 100-105; 110-120: 140 J over 105-112; 120-130: no sample (a gap); 130-140 in
    # progress, after the gap: from its own first sample, 30 J over 131-134.
    assert snap["start"] == 100.0
    assert snap["node"] == [10.0, 20.0, None, 10.0]
    assert snap["devices"] == [{"component": "gpu", "device": "0", "source": "nvml", "watts": [10.0, 20.0, None, 10.0]}]


def test_the_ring_keeps_only_the_last_points_steps() -> None:
    h = PowerHistory(step=1.0, points=5)
    for i in range(50):
        record(h, 1000.0 + i, float(i * i))  # 2i - 1 W over the second before sample i
    snap = h.snapshot()
    assert snap["node"] == [89.0, 91.0, 93.0, 95.0, 97.0]
    assert snap["start"] == 1045.0


def test_a_pause_longer_than_the_window_leaves_only_gaps_and_the_energy_it_spans_is_not_drawn() -> None:
    h = PowerHistory(step=1.0, points=5)
    for i in range(5):
        record(h, 1000.0 + i, 3.0 * i)
    record(h, 5000.0, 9000.0)  # the counters charged the pause: no step can show it
    assert h.snapshot()["node"] == [None] * 5
    record(h, 5000.5, 9004.0)
    assert h.snapshot()["node"] == [None, None, None, None, 8.0]


def test_a_point_over_less_than_a_quarter_of_a_step_is_not_told() -> None:
    """The two samples at start-up are a millisecond apart: the lag between a sample's reads and its mark
    would be most of that span, so no power is told over it."""
    h = PowerHistory(step=4.0, points=3)
    record(h, 100.0, 0.0)
    record(h, 100.001, 0.01)
    assert h.snapshot()["node"] == [None]
    record(h, 101.0, 10.0)
    assert h.snapshot()["node"] == [10.0]


def test_a_clock_stepped_back_never_rewrites_the_past_and_a_time_of_nan_is_dropped() -> None:
    h = PowerHistory(step=10.0, points=3)
    record(h, 95.0, 0.0)
    record(h, 100.0, 50.0)
    record(h, 101.0, 60.0)
    assert h.snapshot()["node"] == [None, 10.0]  # one sample in 90-100: no time to tell a power over
    record(h, 50.0, 70.0)  # the wall clock stepped back: the step in progress cannot tell a power
    assert h.snapshot()["node"] == [None, None]
    record(h, math.nan, 99.0)  # no time at all: dropped
    record(h, 102.0, 80.0)
    assert h.snapshot()["node"] == [None, round(80.0 / 7, 3)]  # from the last sample of 90-100, at 95


def test_a_device_down_or_new_at_the_end_of_a_step_is_a_gap_there() -> None:
    h = PowerHistory(step=1.0, points=4)
    a: tuple[str, ...] = ("gpu", "0", "nvml")
    b: tuple[str, ...] = ("gpu", "1", "nvml")
    record(h, 10.0, 0.0, {a: 0.0})
    record(h, 11.0, 100.0, {a: 100.0, b: 5.0})  # b new: nothing to measure it from yet
    record(h, 12.0, 300.0, {a: 200.0, b: 105.0}, up={a})  # b rejected in this sample: no power figure
    record(h, 13.0, 500.0, {a: 300.0, b: 205.0})
    devices = {tuple(d[k] for k in ("component", "device", "source")): d["watts"] for d in h.snapshot()["devices"]}
    assert devices == {a: [None, 100.0, 100.0, 100.0], b: [None, None, None, 100.0]}
    assert h.snapshot()["node"] == [None, 100.0, 200.0, 200.0]


def test_device_series_are_capped_and_each_refused_one_counted_once() -> None:
    h = PowerHistory(step=1.0, points=3, max_series=2)
    for i in range(4):
        record(h, 10.0 + i, float(i), {("gpu", str(d), "nvml"): float(i) for d in range(5)})
    assert len(h.snapshot()["devices"]) == 2
    assert h.dropped_series == 3


def test_today_starts_at_utc_midnight_and_since_start_at_the_first_sample() -> None:
    h = PowerHistory(step=1.0)
    midnight = 20_000 * 86400.0
    for i, at in enumerate((midnight - 3, midnight - 2, midnight - 1, midnight + 0.5, midnight + 1.5)):
        record(h, at, 100.0 * i, {})
    assert h.started == totals(midnight - 3, 0.0)
    assert h.day_start == totals(midnight - 1, 200.0)  # the last sample of yesterday: today's energy from there
    assert h.last == totals(midnight + 1.5, 400.0)


samples = st.lists(
    st.tuples(st.floats(0.0, 7.0), st.floats(0.0, 2000.0, allow_nan=False)), min_size=1, max_size=80
)


@given(samples, st.sampled_from([0.5, 1.0, 2.5, 10.0]), st.integers(2, 12))
def test_history_matches_a_plain_model(steps: list[tuple[float, float]], step: float, points: int) -> None:
    """Whatever the timing: at most `points` points; a step's point is the energy from the last sample of
    the step before (the step's own first one after a gap or at the start) to its own last sample, over
    the time between them (None for less than a quarter of a step), None for a step with no sample, and the
    series ends with the step of the latest sample."""
    h = PowerHistory(step=step, points=points)
    marks: dict[int, list[tuple[float, float]]] = defaultdict(list)
    at, joules = 1_000_000.0, 0.0
    for gap, added in steps:
        at += gap
        joules += added
        record(h, at, joules)
        marks[math.floor(at / step)].append((at, joules))
    snap = h.snapshot()
    last = max(marks)
    first = max(min(marks), last - points + 1)

    def point(b: int) -> float | None:
        if not marks[b]:
            return None
        start = marks[b - 1][-1] if marks.get(b - 1) else marks[b][0]
        end = marks[b][-1]
        seconds = end[0] - start[0]
        return round((end[1] - start[1]) / seconds, 3) if seconds >= step / 4 and seconds > 0 else None

    expected = [point(b) for b in range(first, last + 1)]
    assert snap["node"] == expected
    assert snap["devices"][0]["watts"] == expected
    assert snap["start"] == first * step
    assert len(snap["node"]) <= points
