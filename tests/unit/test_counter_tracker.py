"""CounterTracker: hardware counter streams with glitches, judged by judge_delta; the Ledger's all-or-nothing sample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from footprint.accounting.ledger import CounterTracker, Ledger, budget_joules
from footprint.meters.base import Reading
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("ledger_path")  # the C twins and the Python ledger alike

RANGE = 1_000.0  # a small RAPL-like range (J), so wraps are frequent
CEILING = 100.0  # W


def gpu(joules: float) -> Reading:
    return Reading("gpu", "0", "nvml", joules, max_watts=400.0)


def rapl(joules: float) -> Reading:
    return Reading("cpu", "package-0", "rapl", joules, wrap_joules=RANGE, max_watts=CEILING)


def run(tracker: CounterTracker, stream: list[tuple[float, Reading]]) -> tuple[float, list[str]]:
    total, rejected = 0.0, list[str]()
    for at, r in stream:
        judged = tracker.observe(r, at)
        total += judged.joules
        rejected += judged.rejected
    return total, rejected


@pytest.mark.parametrize(("glitch", "reason"), [
    (5000.0 - 0.205, "backwards"),  # 5 mJ below the previous reading, once (firmware/driver glitch)
    (0.0, "backwards"),  # 0 once: looks like a reset until the next reading continues from 5000 J
    (1.8e16, "jump"),  # garbage 1.8e19 mJ
    (float("nan"), "non_finite"),
])
def test_a_one_off_nvml_glitch_costs_nothing_and_is_counted(glitch: float, reason: str) -> None:
    """Readings 0.1 s apart at 3 W: truth 0.3 J over the three intervals, the glitch included."""
    stream = [(0.0, gpu(5000.0 - 0.3)), (0.1, gpu(5000.0 - 0.2)), (0.2, gpu(glitch)), (0.3, gpu(5000.0))]
    total, rejected = run(CounterTracker(), stream)
    assert total == pytest.approx(0.3, rel=1e-9)  # every interval, the span over the glitch exactly
    assert rejected == [reason]


def test_rapl_going_back_without_a_wrap_loses_only_that_interval() -> None:
    """Suspend/resume or VM migration: the counter restarts from an arbitrary lower value and goes on."""
    stream = [(0.0, rapl(900.0)), (1.0, rapl(950.0)), (2.0, rapl(300.0)), (3.0, rapl(307.0))]
    total, rejected = run(CounterTracker(), stream)
    assert total == 50.0 + 7.0  # the 950 -> 300 interval is unknowable: charged nothing
    assert rejected == ["implausible_wrap"]


def test_a_dip_held_through_a_stall_longer_than_a_wrap_confirms_no_reset() -> None:
    """A 5 mJ dip read while the sampler stalls past the point where a wrap could hide: when the counter
    reads its old value again, neither a reset (0.995 J + 0.005 J) nor anything else is charged; the
    span is refused and the reading becomes the baseline (found by the glitch-stream property test)."""
    stream = [(0.0, rapl(0.0)), (1.0, rapl(1.0)), (3.0, rapl(0.995)), (4.0, rapl(0.995)), (7.0, rapl(0.995)),
              (11.0, rapl(1.0)), (12.0, rapl(3.0))]
    total, rejected = run(CounterTracker(), stream)
    assert total == 1.0 + 2.0
    assert rejected == ["implausible_wrap", "ambiguous_wrap"]


def test_rapl_one_millijoule_lower_once() -> None:
    stream = [(0.0, rapl(900.0)), (1.0, rapl(900.0 - 0.001)), (2.0, rapl(912.0))]
    assert run(CounterTracker(), stream) == (12.0, ["implausible_wrap"])


def test_a_zone_above_its_range_then_dropping() -> None:
    stream = [(0.0, rapl(990.0)), (1.0, rapl(RANGE + 5.0)), (2.0, rapl(2.0))]
    total, rejected = run(CounterTracker(), stream)
    assert total == pytest.approx(12.0, rel=1e-9)  # 990 -> wrap -> 2: 12 J, the glitch skipped
    assert rejected == ["out_of_range"]


def test_a_real_wrap_and_a_confirmed_reset() -> None:
    stream = [(0.0, rapl(995.0)), (1.0, rapl(5.0)), (2.0, rapl(6.0))]
    assert run(CounterTracker(), stream) == (pytest.approx(11.0), [])
    stream = [(0.0, gpu(9e5)), (1.0, gpu(20.0)), (2.0, gpu(30.0)), (3.0, gpu(31.0))]
    assert run(CounterTracker(), stream) == (31.0, [])  # a driver reload of the same version


def test_a_stall_longer_than_a_wrap_is_refused_then_sampling_resumes() -> None:
    """20 s at up to 100 W could hide two wraps of a 1000 J range: the reading is refused, not taken modulo."""
    stream = [(0.0, rapl(100.0)), (1.0, rapl(150.0)), (21.0, rapl(150.0 + 1500.0 - RANGE)),
              (22.0, rapl(650.0 + 40.0))]
    total, rejected = run(CounterTracker(), stream)
    assert total == 50.0 + 40.0
    assert rejected == ["ambiguous_wrap"]


def test_each_reason_is_logged_once_per_device(caplog: pytest.LogCaptureFixture) -> None:
    tracker = CounterTracker()
    stream = [(0.0, gpu(100.0))] + [(t, gpu(100.0 + t if t % 2 else 1e18)) for t in range(1, 9)]
    _, rejected = run(tracker, stream)
    assert rejected == ["jump"] * 4
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("counter reading rejected: charged nothing, baseline kept") == 1


# --- property: random counter streams with injected glitches -------------------------------------------

FAULTS = ("dip", "zero", "garbage", "nan", "above_range", "shift")


@dataclass
class Step:
    dt: float
    watts: float
    fault: str | None
    repeat: int = 1  # a one-off value read this many times in a row (a driver answering it for a while)


steps = st.lists(st.builds(Step, st.floats(0.05, 4.0), st.floats(0.0, CEILING),
                           st.none() | st.sampled_from(FAULTS), st.integers(1, 3)), min_size=2, max_size=40)


def implausible(prev: float, new: float, elapsed: float, wrap: float | None) -> bool:
    """Neither a rise, a wrap nor a reset the ceiling allows in `elapsed`."""
    budget = budget_joules(CEILING, elapsed)
    if new >= prev:
        return new - prev > budget
    return new > budget and (wrap is None or new + wrap - prev > budget)


@given(plan=steps, wraps=st.booleans(), start=st.floats(0.0, RANGE - 1.0), shift=st.floats(0.0, 1.0))
def test_glitches_never_push_energy_above_the_ceiling_nor_lose_more_than_their_intervals(
        plan: list[Step], wraps: bool, start: float, shift: float) -> None:
    """Exported <= ceiling x time (with the timing slack), and |exported - true| <= the true energy of
    the rejected intervals: a bad value (a dip, 0, garbage, NaN, above the range, read 1-3 times in a
    row) costs nothing, unless the counter could have wrapped more than once by the next good read
    (then the time from the last good read to it is lost); a lasting shift (the counter continues from
    elsewhere) loses its own interval. Faults are two good readings apart and detectable (a 0 just
    below a wrap, or a shift onto a plausible value, are indistinguishable from real readings and
    bounded by the ceiling alone)."""
    wrap = RANGE if wraps else None
    tracker = CounterTracker()
    t, true_counter, offset = 0.0, start, 0.0
    exported = true_total = allowed_error = budget = 0.0
    last_fault = -3
    previous_faulty = False
    previous_raw, good_at = start, 0.0  # the last good reading and its time: the tracker's baseline
    since_good = 0.0  # true energy since then
    stuck: tuple[str, float, int] | None = None  # a bad value being read again: (fault, value, reads left)

    def raw(counter: float) -> float:
        return (counter + offset) % RANGE if wrap else counter + offset

    tracker.observe(Reading("cpu", "0", "rapl", raw(true_counter), wrap_joules=wrap, max_watts=CEILING), t)
    for k, step in enumerate(plan, start=1):
        t += step.dt
        drawn = step.watts * step.dt
        true_counter += drawn
        true_total += drawn
        since_good += drawn
        budget += budget_joules(CEILING, step.dt)
        fault = step.fault if k - last_fault >= 3 else None
        good = raw(true_counter)
        value: float | None = good
        plausible = budget_joules(CEILING, t - good_at)
        if stuck is not None:
            fault, value = stuck[0], stuck[1]
            if fault == "zero" and wrap and previous_raw + plausible >= RANGE:
                fault, value = None, None  # by now a wrap to 0 would be plausible: end the episode
        elif fault == "dip":
            value = previous_raw - 0.005 if previous_raw >= 0.005 else None
        elif fault == "zero":
            # 0 where a wrap is plausible is a wrap for all anyone can tell; 0 after 0 is no news
            value = 0.0 if previous_raw > 0 and (not wrap or previous_raw + plausible < RANGE) else None
        elif fault == "garbage":
            value = 1.8e16
        elif fault == "nan":
            value = math.nan
        elif fault == "above_range":
            value = RANGE + 1.0 + shift * RANGE if wrap else None
        elif fault == "shift":
            moved = RANGE * shift if wrap else -good * shift
            offset += moved
            value = raw(true_counter)
            # detectable now, and still at the next reading (judged against the same held baseline)
            ahead = plan[k] if k < len(plan) else Step(0.0, 0.0, None)
            later = (value + ahead.watts * ahead.dt) % RANGE if wrap else value + ahead.watts * ahead.dt
            # and the counter moves on from there (a powered device's does; a frozen one proves nothing)
            if not (implausible(previous_raw, value, step.dt, wrap)
                    and implausible(previous_raw, later, step.dt + ahead.dt, wrap) and later != value):
                offset -= moved
                value = None
        if value is None:
            fault, value = None, good
        assert value is not None
        if fault == "shift":
            allowed_error += drawn  # the counter moved elsewhere in this interval: unknowable
        elif fault is None and previous_faulty and wrap and budget_joules(CEILING, t - good_at) >= RANGE:
            allowed_error += since_good  # more than one wrap possible since the last good read: refused
        judged = tracker.observe(Reading("cpu", "0", "rapl", value, wrap_joules=wrap, max_watts=CEILING), t)
        assert (fault is None) or judged.joules == 0.0
        exported += judged.joules
        assert exported <= budget + 1e-9
        if fault is not None:
            last_fault = k
        if stuck is not None:
            stuck = (stuck[0], stuck[1], stuck[2] - 1) if fault is not None and stuck[2] > 1 else None
        elif fault not in (None, "shift") and step.repeat > 1:
            stuck = (fault, value, step.repeat - 1)
        previous_faulty = fault is not None
        if fault in (None, "shift"):
            previous_raw, good_at, since_good = value, t, 0.0
    allowed_error += since_good  # a bad value read last: not charged yet, the next read would tell
    assert abs(exported - true_total) <= allowed_error + 1e-6 * max(true_total, 1.0)


def test_a_sample_with_one_bad_amount_adds_nothing() -> None:
    ledger = Ledger()
    ledger.add("node", (), 5.0, 0.0)
    with ledger.transaction() as tx:
        ledger.add("device", ("0",), 2.0, 1.0)
        ledger.add("node", (), float("nan"), 1.0)
        ledger.remove("node", ())
    assert tx.dropped and ledger.totals == {"node": {(): 5.0}}
    with ledger.transaction() as tx:
        ledger.add("device", ("0",), 2.0, 1.0)
        ledger.add("node", (), 2.0, 1.0)
    assert not tx.dropped and ledger.totals == {"node": {(): 7.0}, "device": {("0",): 2.0}}


def test_a_glitch_read_twice_is_still_a_glitch() -> None:
    """The same bad value on two reads (the driver answers it for a while) is not the counter moving there."""
    for glitch, reason in ((0.0, "backwards"), (1.8e16, "jump"), (4999.0, "backwards")):
        stream = [(0.0, gpu(5000.0)), (0.1, gpu(glitch)), (0.2, gpu(glitch)), (0.3, gpu(5030.0))]
        assert run(CounterTracker(), stream) == (30.0, [reason])
