"""The optional C twins of the ledger (exporter/footprint/accounting/_fastledger.c) against the Python code.

Each must give what the Python code it stands in for gives, for any input, or hand the input back where
it says so: `rule` the verdict of `_python_rule` (floats anywhere, NaN and infinities included);
`steady_deltas`, through `CounterTracker.deltas`, the same judged deltas, baselines, suspects and logs as
`delta()` reading by reading, over streams with glitches, restarts, first sights, odd ceilings and
ranges; `apply_ops`, through a transaction, the same totals, created times and dropped flag as the Python
loop; `judge_power` what `sampler.power_of` gives; `stage_energy` the additions and node joules of
`accountant.stage_devices`; `stage_shares` the additions and joules handed out of
`accountant.stage_shares`; `charge_sample`, through `Accountant.account`, the totals, created times, layout
and dropped flag of the staged transaction, for every setting that adds a node series. Everything else in
tests/unit that judges or charges runs both ways (the `ledger_path` fixture).
"""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from footprint.accounting import ledger
from footprint.accounting.ledger import CounterTracker, Ledger
from footprint.meters.base import Reading
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.ledger_twins import python_ledger
from tests.support.native import can_build

fast = ledger._fastledger


def test_the_c_twins_are_built_where_a_compiler_and_headers_exist() -> None:
    if not can_build():
        pytest.skip("no C compiler or Python headers here: the ledger runs its Python code")
    assert fast is not None, "setup.py should have built footprint.accounting._fastledger (pip install -e . again)"
    assert ledger._rule is fast.rule
    assert (fast.SLACK_RATIO, fast.SLACK_SECONDS) == (ledger.SLACK_RATIO, ledger.SLACK_SECONDS)


needs_twins = pytest.mark.skipif(fast is None, reason="the C twins are not built here")


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
NEAR = st.floats(-10.0, 2e6, allow_nan=False)  # where the branches are


@needs_twins
@settings(max_examples=1500)
@given(prev=ANY_FLOAT | NEAR, new=ANY_FLOAT | NEAR, elapsed=ANY_FLOAT | st.floats(-1.0, 3000.0),
       watts=ANY_FLOAT | st.floats(-1.0, 2000.0), wrap=st.none() | ANY_FLOAT | st.floats(-1.0, 1e6),
       restarted=st.booleans())
def test_the_c_rule_gives_the_python_rules_verdict(prev: float, new: float, elapsed: float, watts: float,
                                                   wrap: float | None, restarted: bool) -> None:
    assert fast is not None
    assert fast.rule(prev, new, elapsed, watts, wrap, restarted) == ledger._python_rule(
        prev, new, elapsed, watts, wrap, restarted)


# --- steady_deltas, through CounterTracker.deltas ------------------------------------------------------

DEVICES = (("gpu", "0"), ("gpu", "1"), ("cpu", "package-0"))


@st.composite
def samples(draw: st.DrawFn) -> list[tuple[list[Reading], list[float]]]:
    """A stream of samples: mostly steady counters, with glitches, restarts, integrated readings, odd
    bounds and ranges, devices missing from a sample, and time standing still or running back."""
    out = []
    energy = {key: draw(st.floats(0.0, 1e5)) for key in DEVICES}
    t = 0.0
    for _ in range(draw(st.integers(1, 12))):
        t += draw(st.sampled_from([1.0, 1.0, 0.5, 0.0, -0.5, 5000.0]))
        readings, read_at = [], []
        for key in draw(st.permutations(DEVICES)):
            if draw(st.integers(0, 9)) == 0:
                continue  # not read in this sample
            step = draw(st.sampled_from(["steady"] * 6 + ["glitch", "nan", "zero", "int", "back"]))
            energy[key] += draw(st.floats(0.0, 500.0))
            value: float = energy[key]
            if step == "glitch":
                value = 1.8e16
            elif step == "nan":
                value = math.nan
            elif step == "zero":
                value = 0.0
            elif step == "int":
                value = int(value)
            elif step == "back":
                value = max(value - 3.0, 0.0)
            wrap = 262_143.0 if key[0] == "cpu" else draw(st.sampled_from([None, None, math.nan, 0.0, 1e3]))
            readings.append(Reading(
                key[0], key[1], "nvml" if key[0] == "gpu" else "rapl", value,
                wrap_joules=wrap,
                max_watts=draw(st.sampled_from([None, 700.0, 400, math.nan, 0.0, math.inf, -5.0])),
                hardware_counter=draw(st.sampled_from([True] * 8 + [False])),
                counter_epoch=draw(st.sampled_from(["a"] * 8 + ["b"]))))
            read_at.append(t + draw(st.sampled_from([0.0, 0.001])))
        out.append((readings, read_at))
    return out


@needs_twins
@settings(max_examples=400)
@given(stream=samples())
def test_steady_readings_judged_in_c_match_delta_reading_by_reading(
        stream: list[tuple[list[Reading], list[float]]]) -> None:
    c_side, python_side = CounterTracker(), CounterTracker()
    for readings, read_at in stream:
        got = c_side.deltas(readings, read_at)
        with python_ledger():
            expected = [python_side.delta(r, at) for r, at in zip(readings, read_at, strict=True)]
        assert got == expected
        assert c_side.states == python_side.states
        assert all(type(s) is ledger.CounterState for s in c_side.states.values())
        assert c_side._suspects == python_side._suspects
        assert c_side._logged == python_side._logged


@needs_twins
def test_a_steady_sample_is_judged_in_one_c_call() -> None:
    """Nearly every sample: no reading of it reaches delta() (the C call judges them all)."""
    tracker = CounterTracker()
    first = [Reading("gpu", str(i), "nvml", 1000.0 * i, max_watts=700.0) for i in range(8)]
    tracker.deltas(first, [0.0] * 8)  # baselines
    then = [Reading("gpu", str(i), "nvml", 1000.0 * i + 350.0, max_watts=700.0) for i in range(8)]

    def no_python(r: Reading, now: float) -> tuple[float, tuple[str, ...], float]:
        raise AssertionError(f"{r.key} judged in Python")

    tracker.delta = no_python  # type: ignore[method-assign]
    assert tracker.deltas(then, [1.0] * 8) == [(350.0, (), 1.0)] * 8


# --- apply_ops, through a transaction -------------------------------------------------------------------

METRICS = ("a", "b")
LABELS = st.sampled_from([(), ("0",), ("0", "x")])
AMOUNT = st.floats(0.0, 1e6) | st.sampled_from([0.0, -0.0, 1.5, 3, -1.0, math.nan, math.inf, None])


@needs_twins
@settings(max_examples=400)
@given(start=st.dictionaries(st.sampled_from(METRICS), st.dictionaries(LABELS, st.floats(0.0, 1e6) | st.just(2)),
                             max_size=2),
       ops=st.lists(st.tuples(st.sampled_from(METRICS), LABELS, AMOUNT, st.floats(0.0, 2e9)), max_size=12))
def test_a_sample_added_in_c_matches_the_python_loop(start: dict[str, dict[tuple[str, ...], float]],
                                                     ops: list[tuple[str, tuple[str, ...], float | None, float]]
                                                     ) -> None:
    results = []
    for path in ("c", "python"):
        book = Ledger()
        for metric, series in start.items():
            for labels, value in series.items():
                book.totals.setdefault(metric, {})[labels] = value
                book.created.setdefault(metric, {})[labels] = 1.0
        with python_ledger() if path == "python" else contextlib.nullcontext(), book.transaction() as tx:
            for metric, labels, amount, wall in ops:
                if amount is None:
                    book.remove(metric, labels)
                else:
                    book.add(metric, labels, amount, wall)  # staged: judged when the transaction ends
        results.append((book.totals, book.created, tx.dropped,
                         {m: {k: type(v) for k, v in s.items()} for m, s in book.totals.items()}))
    assert results[0] == results[1]


@needs_twins
def test_a_total_is_summed_in_place_only_where_nothing_else_holds_it() -> None:
    """A series' float is updated in place when the ledger's dict holds the only reference; one that a
    reader kept (a live-page mark, a checkpoint copy) must keep its value."""
    book = Ledger()
    book.add("a", ("0",), 1.5, 0.0)
    held = book.get("a", ("0",))  # a reader keeps this total
    with book.transaction():
        book.add("a", ("0",), 2.0, 1.0)
    assert held == 1.5 and book.get("a", ("0",)) == 3.5
    before = id(book.get("a", ("0",)))
    with book.transaction():
        book.add("a", ("0",), 1.0, 2.0)
    assert book.get("a", ("0",)) == 4.5 and id(book.get("a", ("0",))) == before  # summed in place


@needs_twins
def test_a_baseline_moves_in_place_only_where_nothing_else_holds_it() -> None:
    """A steady reading's baseline takes the new values in place when the tracker's dict holds the only
    reference; one that a mark (a rollback) or any reader holds must keep its value."""
    tracker = CounterTracker()

    def read(joules: float, at: float, counted: float = 50.0) -> Reading:
        reading = Reading("gpu", "0", "nvml", joules, hardware_counter=True, counter_epoch="a")
        assert tracker.deltas([reading], [at])[0][0] == counted
        return reading

    key = read(100.0, 0.0, counted=0.0).key  # the first sight: a baseline
    read(150.0, 1.0)
    mark = tracker.mark()
    held = tracker.states[key]
    read(200.0, 2.0)
    assert held == ledger.CounterState(150.0, "a", True, 1.0)  # the mark's and the reader's copy
    assert tracker.states[key] == ledger.CounterState(200.0, "a", True, 2.0)
    tracker.rollback(mark)
    assert tracker.states[key] == ledger.CounterState(150.0, "a", True, 1.0)
    del mark, held
    read(200.0, 2.0)
    before = id(tracker.states[key])
    read(250.0, 3.0)
    assert tracker.states[key] == ledger.CounterState(250.0, "a", True, 3.0)
    assert id(tracker.states[key]) == before  # moved in place


# --- judge_power and stage_energy: a sample's power and its per-device additions ------------------------

NUMBER = st.floats(allow_nan=True, allow_infinity=True) | st.floats(0.0, 5000.0) | st.sampled_from([0.0, -0.0])
ODD = NUMBER | st.just(3)  # an int now and then: handed back to the Python loop


@st.composite
def judged_sample(draw: st.DrawFn) -> tuple[list[Reading], list[tuple[float, tuple[str, ...], float]]]:
    """A sample's readings (some keys repeated, meters' own power or none) and what the tracker judged."""
    readings, judged = [], []
    for _ in range(draw(st.integers(0, 6))):
        component = draw(st.sampled_from(["gpu", "cpu", "dram"]))
        readings.append(Reading(component, draw(st.sampled_from(["0", "1"])),
                                draw(st.sampled_from(["nvml", "rapl", "estimate"])), 1.0,
                                power_watts=draw(st.none() | ODD), hardware_counter=draw(st.booleans()),
                                in_node_total=draw(st.booleans())))
        judged.append((draw(NUMBER), draw(st.sampled_from([(), ("jump",), ("jump", "backwards")])), draw(NUMBER)))
    return readings, judged


def plain(*numbers: object) -> bool:
    return all(type(n) is float for n in numbers)


@needs_twins
@settings(max_examples=500)
@given(sample=judged_sample(), seconds=ODD)
def test_a_samples_power_in_c_matches_the_python_loop(
        sample: tuple[list[Reading], list[tuple[float, tuple[str, ...], float]]], seconds: float) -> None:
    from footprint.sampler import power_of

    readings, judged = sample
    got = fast.judge_power(readings, judged, seconds)
    floats_only = plain(seconds, *(n for j in judged for n in (j[0], j[2])),
                        *(r.power_watts for r in readings if r.power_watts is not None))
    if got is None:  # handed back: only for a number that is not a plain float
        assert not floats_only
        return
    assert repr(got) == repr(power_of(readings, judged, seconds))  # repr: NaN equal to NaN, order kept


@needs_twins
@settings(max_examples=500)
@given(sample=judged_sample(), kg=st.sampled_from([None, 0.0, math.nan, 7, 1234.567, 150.3]) | st.floats(0.0, 1e4),
       known=st.booleans(),
       g_per_j=ODD, m_per_j=st.none() | NUMBER, seconds=NUMBER | st.sampled_from([1.0001, 0.98, 15.0]),
       lifetime=st.sampled_from([1.5e8, 3.3e7, 9.46e7, math.inf]) | st.floats(1.0, 1e9))
def test_a_samples_device_additions_in_c_match_the_python_loop(
        sample: tuple[list[Reading], list[tuple[float, tuple[str, ...], float]]], kg: float | None, known: bool,
        g_per_j: float, m_per_j: float | None, seconds: float, lifetime: float) -> None:
    from footprint.accounting.accountant import _DEVICE_METRICS, stage_devices
    from footprint.accounting.embodied import EmbodiedFigure

    readings, judged = sample
    energy = [(r, j[0]) for r, j in zip(readings, judged, strict=True)]
    figures = {r.key: None if kg is None else EmbodiedFigure(kg, "test") for r in readings if known or r.device == "0"}
    figures[("gpu", "9")] = None  # another device's: never looked at
    ops: list[tuple[str, tuple[str, ...], float | None, float]] = [("before", (), 1.0, 0.0)]
    got = fast.stage_energy(ops, energy, figures, lifetime, g_per_j, m_per_j, seconds, 5.0, _DEVICE_METRICS)
    missing = any(r.in_node_total and r.key not in figures for r in readings)
    floats_only = plain(g_per_j, seconds, *(j for _, j in energy), *([] if m_per_j is None else [m_per_j]),
                        *([] if kg is None or not any(r.in_node_total for r in readings) else [kg]))
    if got is None:  # handed back with nothing staged: a figure not looked up yet, or a number not a float
        assert ops == [("before", (), 1.0, 0.0)]
        assert missing or not floats_only
        return
    assert not missing
    expected: list[tuple[str, tuple[str, ...], float | None, float]] = [("before", (), 1.0, 0.0)]
    node = stage_devices(expected.append, energy, figures, lifetime, g_per_j, m_per_j, seconds, 5.0)
    assert repr((got, ops)) == repr((node, expected))


class Shadowed(Reading):
    """A reading type whose `in_node_total` and `power_watts` are properties, not the tuple's items: the C
    twins read fields by position only on exact Readings, and must ask this one by name."""

    __slots__ = ()

    @property
    def in_node_total(self) -> bool:
        return False

    @property
    def power_watts(self) -> float | None:
        return 42.0


def test_fields_are_read_by_position_only_where_the_descriptor_is_the_tuples() -> None:
    assert ledger.tuple_positions(Reading) == {name: i for i, name in enumerate(Reading._fields)}
    shadowed = ledger.tuple_positions(Shadowed)
    assert "in_node_total" not in shadowed and "power_watts" not in shadowed and shadowed["key"] == 12


@needs_twins
@settings(max_examples=300)
@given(sample=judged_sample(), seconds=st.floats(0.5, 20.0))
def test_a_subclass_and_a_shadowing_subclass_are_judged_by_name(
        sample: tuple[list[Reading], list[tuple[float, tuple[str, ...], float]]], seconds: float) -> None:
    """The same readings as a plain subclass give what the exact ones give; as `Shadowed`, what the Python
    loop gives from its properties (never the items underneath)."""
    from footprint.accounting.accountant import _DEVICE_METRICS
    from footprint.sampler import power_of

    class Plain(Reading):
        __slots__ = ()

    readings, judged = sample
    as_plain: list[Reading] = [Plain._make(r) for r in readings]
    shadowed: list[Reading] = [Shadowed._make(r) for r in readings]
    by_name, by_position = fast.judge_power(as_plain, judged, seconds), fast.judge_power(readings, judged, seconds)
    if by_position is None:  # handed back (a meter's power not a plain float): by name too
        assert by_name is None
        return
    assert by_name is not None
    assert [j for _, j in by_name[0]] == [j for _, j in by_position[0]]
    assert repr(by_name[1:]) == repr(by_position[1:])  # rejected, power, node watts
    got = fast.judge_power(shadowed, judged, seconds)
    if got is not None:
        assert repr(got) == repr(power_of(shadowed, judged, seconds))
        ops: list[tuple[str, tuple[str, ...], float | None, float]] = []
        energy = [(r, j[0]) for r, j in zip(shadowed, judged, strict=True)]
        node = fast.stage_energy(ops, energy, {}, 1e8, 0.05, None, seconds, 5.0, _DEVICE_METRICS)
        assert (node, len(ops)) == (0.0, len(shadowed))  # none in the node total: energy only, no figure asked


# --- stage_shares: an attribution pass's additions for one device ---------------------------------------


@needs_twins
@settings(max_examples=300)
@given(picks=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["cpu", "dram", "gpu"]), ODD), max_size=12),
       scale=ODD, g_per_j=ODD, fresh=st.booleans())
def test_a_devices_share_additions_in_c_match_the_python_loop(
        picks: list[tuple[int, str, float]], scale: float, g_per_j: float, fresh: bool) -> None:
    """Containers and process groups alike, each consumer met more than once (its energy labels made on
    first sight, in either loop, then reused), joules and factors of any float or an int now and then."""
    from footprint.accounting.accountant import stage_shares
    from footprint.attribution.base import Consumer, ProcessGroup, WorkloadShare

    def consumers() -> list[Consumer | ProcessGroup]:
        return [Consumer("ml", "bert-0", "pytorch", "training"), Consumer("ml", "bert-0", "logger", "unknown"),
                Consumer("serve", "llm-0", "vllm", "inference"), ProcessGroup("slurm-job-7")]

    def shares(made: list[Consumer | ProcessGroup]) -> list[WorkloadShare]:
        return [WorkloadShare(made[i], component, "0", joules) for i, component, joules in picks]

    ops: list[tuple[str, tuple[str, ...], float, float]] = [("before", (), 1.0, 0.0)]
    mine = consumers()
    if not fresh:
        for consumer in mine:
            consumer.energy_labels("cpu")
    got = fast.stage_shares(ops, shares(mine), scale, g_per_j, 5.0)
    floats_only = plain(scale, g_per_j, *(j for _, _, j in picks))
    if got is None:  # handed back with nothing staged: a number that is not a plain float
        assert ops == [("before", (), 1.0, 0.0)]
        assert not floats_only
        return
    expected: list[tuple[str, tuple[str, ...], float, float]] = [("before", (), 1.0, 0.0)]
    attributed = stage_shares(expected.append, shares(consumers()), scale, g_per_j, 5.0)
    assert repr((got, ops)) == repr((attributed, expected))


# --- render_lines: a metric's exposition lines --------------------------------------------------------

VALUES = (st.floats(allow_nan=True, allow_infinity=True) | st.floats(1e5, 1e17) | st.floats(-1e17, -1e5)
          | st.sampled_from([0.0, -0.0, 1e6, 1e16, 999999.9999999999, 9999999999999998.0, 3, True]) | st.integers())


@needs_twins
@settings(max_examples=500)
@given(series=st.dictionaries(st.tuples(st.text(max_size=6)), VALUES, max_size=12),
       prefix=st.text(max_size=30))
def test_a_metrics_lines_in_c_match_the_python_lines(series: dict[tuple[str, ...], float], prefix: str) -> None:
    """The bytes prometheus_client's floatToGoString would write for every value (repr where that is the
    same text: floats below 1e6 or from 1e16; floatToGoString for the rest, ints, NaN and infinities),
    prefixes with any text (non-ASCII labels included)."""
    from footprint.exposition.metrics import _python_lines
    from prometheus_client.utils import floatToGoString

    order = sorted(series)
    prefixes = {labels: f"{prefix}{{x=\"{labels[0]}\"}} " for labels in order}
    assert fast.render_lines(prefixes, series, order, floatToGoString) == _python_lines(prefixes, series, order)


@needs_twins
@settings(max_examples=500)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.floats(1e6, 1e16)
                       | st.sampled_from([1e6, 1e16, 1234567.0, 1000000.5, 9999999999999998.0]), max_size=12))
def test_every_float_is_written_in_c_as_floattogostring_does(values: list[float]) -> None:
    """Floats never go back to Python, not even the 1e6 to 1e16 that floatToGoString writes with an exponent
    (every energy counter of a long-running exporter): the callback here fails if called."""
    from prometheus_client.utils import floatToGoString

    def called(value: float) -> str:
        raise AssertionError(f"{value!r} went to the Python formatter")

    series = {(str(i),): v for i, v in enumerate(values)}
    order = sorted(series)
    prefixes = {labels: "m " for labels in order}
    want = "".join(f"m {floatToGoString(series[labels])}\n" for labels in order)
    assert fast.render_lines(prefixes, series, order, called) == want


def _c_written(values: list[float]) -> list[str]:
    """Each value as render_lines writes it, every float in C (the callback fails if called)."""
    def called(value: float) -> str:
        raise AssertionError(f"{value!r} went to the Python formatter")

    series = {(str(i),): v for i, v in enumerate(values)}
    order = list(series)
    return fast.render_lines({labels: "" for labels in order}, series, order, called).split("\n")[:-1]


def _bits_to_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


@needs_twins
@settings(max_examples=1000)
@given(values=st.lists(st.integers(0, 2**64 - 1).map(_bits_to_float)
                       | st.integers(-115 + 52, 60 + 52).map(lambda p: math.ldexp(1.0, p))
                       | st.builds(lambda m, j: float(m * 10**j + 5 * 10 ** (j - 1)), st.integers(2**53, 2**60),
                                   st.integers(1, 12))
                       | st.builds(lambda n, d: round(n, d), st.floats(0, 1e7), st.integers(0, 12)), max_size=16))
def test_c_shortest_digits_are_reprs_for_any_bits(values: list[float]) -> None:
    """put_go_float's own digits (Steele & White in 128 bits) against repr's dtoa: any bit pattern (the
    ranges it hands to dtoa, subnormals, NaN payloads included), powers of two (their lower gap is half),
    integers past 2^53 on a decimal midpoint (ties go to an even digit), short decimals."""
    from prometheus_client.utils import floatToGoString

    assert _c_written(values) == [floatToGoString(v) for v in values]


@needs_twins
def test_c_shortest_digits_at_every_binary_and_decimal_edge() -> None:
    """Every power of two and of ten with both neighbours, from the least subnormal to the largest float:
    where the gaps change, the exponent switches and the 128-bit range ends (about 1.1e-19 and 1.3e34)."""
    from prometheus_client.utils import floatToGoString

    edges = [math.ldexp(1.0, p) for p in range(-1074, 1024)] + [float(f"1e{k}") for k in range(-323, 309)]
    edges += [5e-324, 1.7976931348623157e308, 1e6 - 1e-10, 1e16 - 2, 1e-4, 9.999999999999999e-05]
    values = [w for v in edges for w in (v, math.nextafter(v, 0), math.nextafter(v, math.inf), -v)]
    assert _c_written(values) == [floatToGoString(v) for v in values]


@needs_twins
def test_render_lines_raises_as_the_python_lines_do() -> None:
    from footprint.exposition.metrics import _python_lines
    from prometheus_client.utils import floatToGoString

    cases: list[tuple[dict[tuple[str, ...], str], dict[tuple[str, ...], float]]] = [({("a",): "x "}, {}),
                                                                                     ({}, {("a",): 1.0})]
    for prefixes, series in cases:
        with pytest.raises(KeyError):
            _python_lines(prefixes, series, [("a",)])
        with pytest.raises(KeyError):
            fast.render_lines(prefixes, series, [("a",)], floatToGoString)


# --- charge_sample: a sample alone in its transaction, added at once -------------------------------------


@st.composite
def charged_sample(draw: st.DrawFn) -> list[tuple[Reading, float]]:
    """A sample's readings (distinct devices, some outside the node total) with their judged joules: now and
    then a NaN, a negative or an int, which the C path hands back and the transaction drops or adds."""
    keys = draw(st.lists(st.tuples(st.sampled_from(["gpu", "cpu", "dram"]), st.sampled_from(["0", "1", "2"])),
                         unique=True, max_size=6))
    return [(Reading(c, d, "nvml" if c == "gpu" else "rapl", 1.0, in_node_total=draw(st.booleans())),
             draw(PLAIN_JOULES if draw(st.integers(0, 19)) else NUMBER | st.just(3))) for c, d in keys]


PLAIN_JOULES = st.floats(0.0, 5000.0) | st.sampled_from([0.0, -0.0, 1e-300, 700.25])
# A setting that adds a node series: absent, a plain float, and one time in ten NaN or an int.
OPTIONAL = st.integers(0, 9).flatmap(
    lambda n: st.none() | st.floats(0.0, 10.0) if n else st.sampled_from([math.nan, 2]))


@needs_twins
@settings(max_examples=400)
@given(energy=charged_sample(), pue=st.sampled_from([1.0, 1.1, 1.58, 5.0]), wue=OPTIONAL, grid_water=OPTIONAL,
       price=OPTIONAL, server=st.none() | st.floats(1.0, 5000.0), gpu_kg=st.none() | st.floats(1.0, 5000.0),
       signal=st.sampled_from(["average", "marginal"]), marginal=st.none() | st.floats(0.0, 2000.0),
       intensity=st.integers(0, 19).flatmap(lambda n: st.floats(0.0, 3000.0) if n else st.just(math.inf)),
       seconds=st.sampled_from([0.0, 0.5, 1.0, 30.0]),
       seen=st.booleans(), start=st.booleans())
def test_a_sample_charged_in_c_matches_the_transaction(
        energy: list[tuple[Reading, float]], pue: float, wue: float | None, grid_water: float | None,
        price: float | None, server: float | None, gpu_kg: float | None, signal: str, marginal: float | None,
        intensity: float, seconds: float, seen: bool, start: bool) -> None:
    """Accountant.account of a sample alone in its transaction, through charge_sample and through the staged
    transaction (the Python loops): the same totals, created times, layout and dropped flag, for every
    setting that adds a node series (marginal on or off, water, price, server embodied), devices whose
    figure is known or not yet looked up (`seen`), series that exist or not (`start`), and amounts the
    transaction must drop (NaN, negative, infinite intensity). Numbers that are not plain floats (an int
    wue or price, or joules) go the Python way in both."""
    from dataclasses import replace

    from footprint.accounting.accountant import Accountant
    from footprint.config import Settings
    from footprint.grid.base import IntensityReading

    settings = replace(Settings(), pue=pue, water_wue=wue, water_grid_intensity=grid_water, cost_price_per_kwh=price,
                       embodied_server_kgco2e=server, embodied_gpu_kgco2e=gpu_kg, grid_accounting_signal=signal)
    reading = IntensityReading(intensity, "average", "test", "DE")
    fresh = None if marginal is None else IntensityReading(marginal, "marginal", "test", "DE")
    results = []
    for path in ("c", "python"):
        book = Ledger()
        if start:
            book.add("footprint_energy_joules_total", ("gpu", "0", "nvml"), 10.0, 1.0)
            book.add("footprint_node_energy_joules_total", (), 10.0, 1.0)
        accountant = Accountant(settings, marginal=lambda: fresh)
        if seen:
            for r, _ in energy:
                accountant.embodied_figure(r.component, r.device, "")
        with python_ledger() if path == "python" else contextlib.nullcontext(), book.transaction() as tx:
            accountant.account(book, list(energy), seconds, reading, 2.0)
        results.append((book.totals, book.created, book.layout, tx.dropped,
                        {m: {k: type(v) for k, v in s.items()} for m, s in book.totals.items()}))
    assert repr(results[0]) == repr(results[1])
