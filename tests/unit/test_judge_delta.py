"""judge_delta: the one plausibility rule for hardware counter deltas (live samples and restart gaps)."""

from __future__ import annotations

import math

import pytest
from footprint.accounting.ledger import (
    DEFAULT_MAX_WATTS,
    REJECTED,
    budget_joules,
    ceiling_watts,
    judge_delta,
    parse_max_watts,
)
from footprint.meters.base import Reading
from hypothesis import assume, given
from hypothesis import strategies as st

pytestmark = pytest.mark.usefixtures("ledger_path")  # the C twins and the Python ledger alike

RANGE = 262_143.328850  # a typical RAPL package max_energy_range_uj, in joules
anything = st.floats(allow_nan=True, allow_infinity=True)
elapsed_s = st.floats(min_value=0.0, max_value=3600.0)
watts = st.floats(min_value=1.0, max_value=5000.0)
raw = st.floats(min_value=0.0, max_value=1e13)


@given(prev=anything, new=anything, elapsed=anything, ceiling=anything,
       wrap=st.none() | anything, restarted=st.booleans())
def test_any_input_gives_a_bounded_verdict(prev: float, new: float, elapsed: float, ceiling: float,
                                           wrap: float | None, restarted: bool) -> None:
    v = judge_delta(prev, new, elapsed, ceiling, wrap, restarted)
    if v.joules is None:
        assert v.kind in REJECTED
    else:
        assert v.kind in ("ok", "wrap", "reset")
        assert math.isfinite(v.joules) and 0.0 <= v.joules <= budget_joules(ceiling, elapsed)


@given(prev=raw, drawn=st.floats(min_value=0.0, max_value=1.0), elapsed=elapsed_s, ceiling=watts)
def test_a_plausible_rise_is_charged_exactly(prev: float, drawn: float, elapsed: float, ceiling: float) -> None:
    delta = drawn * ceiling * elapsed
    new = prev + delta
    v = judge_delta(prev, new, elapsed, ceiling, None, False)
    assert v.kind == "ok" and v.joules == new - prev


@given(prev=st.floats(min_value=0.0, max_value=RANGE), fraction=st.floats(min_value=0.0, max_value=1.0),
       elapsed=st.floats(min_value=0.001, max_value=60.0), ceiling=st.floats(min_value=1.0, max_value=4000.0))
def test_a_plausible_delta_is_recovered_across_a_wrap(prev: float, fraction: float, elapsed: float,
                                                      ceiling: float) -> None:
    assume(budget_joules(ceiling, elapsed) < RANGE)
    delta = fraction * ceiling * elapsed
    new = (prev + delta) % RANGE
    v = judge_delta(prev, new, elapsed, ceiling, RANGE, False)
    assert v.joules is not None and v.kind in ("ok", "wrap")
    assert v.joules == pytest.approx(delta, rel=1e-9, abs=1e-6)


@given(prev=raw, excess=st.floats(min_value=1.0, max_value=1e12), elapsed=elapsed_s, ceiling=watts)
def test_a_rise_above_the_ceiling_is_a_jump(prev: float, excess: float, elapsed: float, ceiling: float) -> None:
    new = prev + budget_joules(ceiling, elapsed) + excess
    assume(new - prev > budget_joules(ceiling, elapsed))
    assert judge_delta(prev, new, elapsed, ceiling, None, False).kind == "jump"


@given(elapsed=st.floats(min_value=0.0, max_value=1e6), ceiling=watts, wrap=st.floats(min_value=1.0, max_value=1e7))
def test_more_than_a_range_possible_in_the_time_is_never_trusted(elapsed: float, ceiling: float, wrap: float) -> None:
    assume(budget_joules(ceiling, elapsed) >= wrap)
    assert judge_delta(0.0, wrap / 2, elapsed, ceiling, wrap, False).kind == "ambiguous_wrap"


def test_the_table_of_glitches() -> None:
    """The issue's faults, one by one, at a 1 s sample and a 400 W ceiling."""
    gpu = 5_000.0  # J since driver load
    assert judge_delta(gpu, gpu - 0.005, 1.0, 400.0, None, False).kind == "backwards"
    assert judge_delta(gpu, 1.8e16, 1.0, 400.0, None, False).kind == "jump"
    assert judge_delta(gpu, 0.0, 1.0, 400.0, None, False).kind == "reset"  # the tracker confirms it
    pkg = 200_000.0
    assert judge_delta(pkg, pkg - 0.001, 1.0, 400.0, RANGE, False).kind == "implausible_wrap"
    assert judge_delta(pkg, 7.0, 1.0, 400.0, RANGE, False).kind == "reset"  # small: a reset or a glitch
    assert judge_delta(pkg, RANGE + 1.0, 1.0, 400.0, RANGE, False).kind == "out_of_range"
    wrapped = judge_delta(RANGE - 1.0, 2.0, 1.0, 400.0, RANGE, False)
    assert wrapped.kind == "wrap" and wrapped.joules == pytest.approx(3.0, rel=1e-9)
    assert judge_delta(1.0, float("nan"), 1.0, 400.0, None, False).kind == "non_finite"
    assert judge_delta(1.0, -3.0, 1.0, 400.0, None, False).kind == "out_of_range"
    assert judge_delta(9e6, 12.0, 1.0, 400.0, None, True).joules == 12.0
    assert judge_delta(9e6, 9e6, 1.0, 400.0, None, True).kind == "implausible_reset"
    # A stall of 20 minutes at 400 W could hide two wraps of a 262 kJ range: refused, not taken modulo.
    assert judge_delta(1000.0, 3000.0, 1200.0, 400.0, RANGE, False).kind == "ambiguous_wrap"
    # The same stall on a counter that never wraps is exact.
    assert judge_delta(1000.0, 3000.0, 1200.0, 400.0, None, False).joules == 2000.0


def test_ceiling_is_the_devices_own_bound_else_the_component_default() -> None:
    assert ceiling_watts(Reading("gpu", "0", "nvml", 0.0, max_watts=770.0)) == 770.0
    assert ceiling_watts(Reading("gpu", "0", "nvml", 0.0)) == DEFAULT_MAX_WATTS["gpu"]
    assert ceiling_watts(Reading("dram", "dram-0", "rapl", 0.0, max_watts=float("nan"))) == DEFAULT_MAX_WATTS["dram"]


@given(entries=st.lists(st.text(max_size=20), max_size=4))
def test_max_watts_entries_parse_or_are_refused_with_a_reason(entries: list[str]) -> None:
    try:
        ceilings = parse_max_watts(entries)
    except ValueError as exc:
        assert str(exc)
        return
    assert all(k and k == k.strip().lower() and 1.0 <= w <= 1e6 and math.isfinite(w) for k, w in ceilings.items())


def test_max_watts_entries() -> None:
    assert parse_max_watts(["gpu=1500", " CPU = 800 "]) == {"gpu": 1500.0, "cpu": 800.0}
    for bad in ("gpu", "=5", "gpu=nan", "gpu=inf", "gpu=0", "gpu=1e7", "gpu=²"):
        with pytest.raises(ValueError):
            parse_max_watts([bad])
