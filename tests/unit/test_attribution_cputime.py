"""The CPU-time counter rules (cputime.py): carried over when unreadable, bounded, counted. The same
rules through the attributors are in test_attribution_kubernetes.py and test_attribution_processes.py."""

from __future__ import annotations

from footprint.attribution.cputime import KEEP_ABSENT_PASSES, SLACK_RATIO, SLACK_SECONDS, CpuTimeBook
from hypothesis import given
from hypothesis import strategies as st

RATE = 1_000_000  # usec per CPU-second


def test_first_pass_is_a_baseline_and_a_new_key_counts_from_zero() -> None:
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    assert book.deltas({"a": 5_000_000}, 0.0, 4) == {}
    assert book.deltas({"a": 6_000_000, "b": 300_000}, 1.0, 4) == {"a": 1_000_000, "b": 300_000}


def test_unreadable_carries_the_last_good_value_over() -> None:
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    book.deltas({"a": 10_000_000}, 0.0, 4)
    assert book.deltas({"a": None}, 1.0, 4) == {}
    assert book.deltas({"a": 12_000_000}, 1.0, 4) == {"a": 2_000_000}  # the two windows since, not a lifetime
    assert book.rejected["unreadable"] == 1


def test_first_seen_unreadable_has_no_baseline_until_read() -> None:
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    book.deltas({}, 0.0, 4)
    assert book.deltas({"a": None}, 1.0, 4) == {}
    assert book.deltas({"a": 9_000_000}, 1.0, 4) == {}  # the baseline: its past is not this window's
    assert book.deltas({"a": 9_500_000}, 1.0, 4) == {"a": 500_000}


def test_a_key_missing_from_a_scan_for_a_moment_is_not_new_when_it_returns() -> None:
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    book.deltas({"a": 50_000_000}, 0.0, 4)
    book.deltas({}, 1.0, 4)
    assert book.deltas({"a": 51_000_000}, 1.0, 4) == {"a": 1_000_000}
    for _ in range(KEEP_ABSENT_PASSES + 1):
        book.deltas({}, 1.0, 4)
    assert book.remembered() == []


def test_backwards_and_jumps_are_refused_counted_and_measuring_restarts() -> None:
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    book.deltas({"a": 10_000_000}, 0.0, 2)
    assert book.deltas({"a": 9_000_000}, 1.0, 2) == {}
    assert book.deltas({"a": 9_500_000}, 1.0, 2) == {"a": 500_000}
    limit = 2 * (1.0 * SLACK_RATIO + SLACK_SECONDS) * RATE
    assert book.deltas({"a": 9_500_000 + int(limit) + 1}, 1.0, 2) == {}
    assert book.deltas({"a": 9_500_000 + int(limit) + 1 + 700_000}, 1.0, 2) == {"a": 700_000}
    assert book.deltas({"a": 10**15}, 1.0, 2) == {}  # a new key past the bound too
    assert dict(book.rejected) == {"unreadable": 0, "backwards": 1, "jump": 2}


reads = st.lists(st.one_of(st.none(), st.integers(min_value=-(10**18), max_value=10**18)), min_size=1, max_size=30)


@given(values=reads, seconds=st.lists(st.floats(min_value=0.0, max_value=100.0), min_size=30, max_size=30),
       cpus=st.integers(min_value=1, max_value=256), present=st.lists(st.booleans(), min_size=30, max_size=30))
def test_any_stream_charges_only_positive_deltas_within_cpus_times_elapsed(
        values: list[int | None], seconds: list[float], cpus: int, present: list[bool]) -> None:
    """Whatever a counter reads (garbage, gaps, glitches): every charged delta is positive and at most
    all CPUs for the time since the value it is measured from (with the slack), and never above the
    counter's own rise since then."""
    book: CpuTimeBook[str] = CpuTimeBook(RATE)
    since = 0.0
    last_good: int | None = None
    absent = 0
    for i, value in enumerate(values):
        since += seconds[i]
        absent = 0 if present[i] else absent + 1
        if absent > KEEP_ABSENT_PASSES:
            last_good = None  # forgotten: if it comes back, it is new and counted from 0
        got = book.deltas({"a": value} if present[i] else {}, seconds[i], cpus)
        if "a" in got:
            assert got["a"] > 0
            assert got["a"] <= cpus * (since * SLACK_RATIO + SLACK_SECONDS) * RATE
            assert value is not None and got["a"] == value - (last_good or 0)
        if present[i] and value is not None:
            last_good, since = value, 0.0
