"""The exposition of a fixed scenario, byte for byte (golden file), and the rendering cache."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest
from footprint import config
from footprint.accounting.accountant import NODE_ENERGY, WORKLOAD_EMISSIONS, WORKLOAD_ENERGY, Accountant
from footprint.accounting.ledger import Ledger
from footprint.exposition.catalog import CATALOG
from footprint.exposition.metrics import Exposition, FootprintCollector, GaugeRenderer, LedgerRenderer, go_float
from footprint.meters.registry import rapl_meter
from footprint.sampler import Sampler
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.utils import floatToGoString

from tests.fakes.sysfs import RaplTree
from tests.support.fixed_grid import FixedGrid

pytestmark = pytest.mark.usefixtures("ledger_path")  # the C twins and the Python ledger alike

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "rapl_two_packages.prom"


def _scenario(tmp_path: Path) -> tuple[Sampler, Exposition, RaplTree]:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True)
    settings = config.load(
        [f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path}", "--pue=1.2", "--water.wue=1.8",
         "--cost.price-per-kwh=0.25", "--cost.currency=EUR"], env={})
    ticks = iter(k / 2 for k in range(200))  # two clock reads a sample: its start, and when its meter read
    sampler = Sampler([rapl_meter(settings)], Ledger(), Accountant(settings), FixedGrid(300.0, "DE"), 1.0,
                      clock=lambda: float(next(ticks)), wall=lambda: 1_750_000_000.0)
    exposition = Exposition(FootprintCollector(sampler, settings.pue))
    sampler.on_sample = exposition.invalidate
    return sampler, exposition, tree


def _stable(text: str) -> str:
    """Drop what depends on the machine's speed (the sample duration histogram)."""
    return "".join(line for line in text.splitlines(keepends=True) if "footprint_sample_duration" not in line)


def test_golden_exposition(tmp_path: Path) -> None:
    sampler, exposition, tree = _scenario(tmp_path)
    sampler.sample()
    for uj in (12_000_000, 18_000_000):  # 12 W then 18 W on package 0
        tree.advance("intel-rapl:0", uj)
        tree.advance("intel-rapl:1", uj // 2)
        tree.advance("intel-rapl:0:1", 1_500_000)
        tree.advance("intel-rapl:1:1", 1_000_000)
        sampler.sample()
    text = _stable(exposition.render().decode())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "exposition changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_rendered_once_per_sample(tmp_path: Path) -> None:
    sampler, exposition, _ = _scenario(tmp_path)
    sampler.sample()
    first = exposition.render()
    assert exposition.render() is first  # the same bytes object: no re-rendering between samples
    sampler.sample()
    assert exposition.render() is not first


def test_every_family_is_in_the_catalog(tmp_path: Path) -> None:
    sampler, exposition, _ = _scenario(tmp_path)
    sampler.sample()
    sampler.sample()
    names = {re.sub(r"[{ ].*", "", line) for line in exposition.render().decode().splitlines() if line[0] != "#"}
    catalog = {s.name for s in CATALOG}
    for name in names:
        base = re.sub(r"_(bucket|sum|count|created)$", "", name)
        assert name in catalog or base in catalog or base + "_total" in catalog, name


def _reference(ledger: Ledger, openmetrics: bool, created: bool) -> bytes:
    """What prometheus_client's generic path writes for the same counters (without OpenMetrics' EOF), with
    or without their `_created` series."""
    from prometheus_client import CollectorRegistry

    families = []
    for spec in CATALOG:
        if spec.type == "counter" and ledger.series(spec.name):
            family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
            for labels, v in sorted(ledger.series(spec.name).items()):
                family.add_metric(labels, v, created=ledger.created[spec.name][labels] if created else None)
            families.append(family)

    class Static:
        def collect(self) -> list[CounterMetricFamily]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Static())
    body = generate_openmetrics(registry) if openmetrics else generate_latest(registry)
    return body.removesuffix(b"# EOF\n")


def test_fast_counter_rendering_is_byte_identical_to_prometheus_client() -> None:
    ledger = Ledger()
    odd = ['plain', 'with "quotes"', "back\\slash", "new\nline", "ünïcödé", ""]
    for i, name in enumerate(odd):
        ledger.add(WORKLOAD_ENERGY, ("ns", name, "c", "training", "gpu"), 1e-9 * (i + 1), 1.7e9 + i)
        ledger.add(WORKLOAD_ENERGY, ("ns", name, "c", "training", "cpu"), 123456789.5 * (i + 1), 1.7e9)
        ledger.add(WORKLOAD_EMISSIONS, ("ns", name, "c", "inference"), float(i), 1.7e9)
    ledger.add(NODE_ENERGY, (), 3.0, 1.0)
    for created in (True, False):  # --web.enable-created-series, and the default
        renderer = LedgerRenderer(created_series=created)
        for openmetrics in (False, True):
            for _ in range(2):  # the second render comes from the per-series cache
                assert renderer.render(ledger, openmetrics).encode() == _reference(ledger, openmetrics, created)
    assert b"_created" not in LedgerRenderer().render(ledger, True).encode()
    ledger.remove(WORKLOAD_EMISSIONS, ("ns", "plain", "c", "inference"))
    assert renderer.render(ledger, False).encode() == _reference(ledger, False, False)
    ledger.add(WORKLOAD_EMISSIONS, ("ns", "new", "c", "inference"), 2.5, 1.7e9)  # a new series: sorted in
    assert renderer.render(ledger, False).encode() == _reference(ledger, False, False)


@given(st.one_of(st.floats(), st.integers(min_value=-(2**70), max_value=2**70),
                 st.floats(min_value=1e5, max_value=1e8), st.floats(min_value=-1e-3, max_value=1e-3)))
def test_go_float_is_floattogostring_byte_for_byte(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


class _Static:
    def __init__(self, families: list[object]) -> None:
        self.families = families

    def collect(self) -> list[object]:
        return self.families


def _families(values: list[float]) -> list[object]:
    gauge = GaugeMetricFamily("footprint_power_watts", 'help with "quotes", back\\slash\nand newline',
                              labels=("device", "component", "source"))
    odd = ['plain', 'with "quotes"', "back\\slash", "new\nline", "ünïcödé", ""]
    for i, v in enumerate(values):
        gauge.add_metric((odd[i % len(odd)], f"c{i}", "rapl"), v)
    plain = GaugeMetricFamily("footprint_node_power_watts", "node", value=values[0] if values else 0.0)
    histogram = HistogramMetricFamily("footprint_sample_duration_seconds", "duration",
                                      buckets=[("0.001", 1), ("+Inf", 3)], sum_value=0.25)
    counter = CounterMetricFamily("footprint_grid_fetch_errors", "errors", labels=("provider",), created=1.7e9)
    counter.add_metric(("fixed",), 2.0, created=1.7e9)
    info = InfoMetricFamily("footprint_thing", "info", value={"version": "1"})
    return [gauge, plain, histogram, counter, info]


@given(st.lists(st.floats(), max_size=12))
def test_gauge_rendering_is_byte_identical_to_generate_latest(values: list[float]) -> None:
    renderer = GaugeRenderer()
    for _ in range(2):  # the second render comes from the prefix cache
        families = _families(values)
        assert renderer.render(families).encode() == generate_latest(_Static(families))  # type: ignore[arg-type]


@given(st.lists(st.lists(st.sampled_from([0.0, -0.0, 1.0, 1, math.nan, math.inf, 2.5e6]), max_size=4),
                min_size=2, max_size=6))
def test_a_family_as_it_was_gives_its_last_text_and_one_that_changed_is_written_again(
        renders: list[list[float]]) -> None:
    """One renderer over a run of renders, the values changing or not between them: an unchanged family's
    text is kept, but 0.0 and -0.0 (equal, written apart), NaN (never equal) and 1 and 1.0 (equal, written
    alike) must each come out as generate_latest writes them, in both formats."""
    renderer = GaugeRenderer()
    for values in renders:
        families = _families(values)
        assert renderer.render(families).encode() == generate_latest(_Static(families))  # type: ignore[arg-type]
        openmetrics = renderer.render(families, openmetrics=True) + "# EOF\n"  # type: ignore[arg-type]
        assert openmetrics.encode() == generate_openmetrics(_Static(families))


def test_a_kept_family_with_timestamps_is_written_again_when_they_read_apart() -> None:
    """Timestamps 1 and 1.0 compare equal; OpenMetrics writes each as given, so the second is written anew."""
    renderer = GaugeRenderer()
    for timestamp in (1, 1.0, 1.0):
        gauge = GaugeMetricFamily("footprint_pue_ratio", "pue")
        gauge.add_metric([], 1.2, timestamp=timestamp)
        for openmetrics in (False, True):
            text = renderer.render([gauge], openmetrics) + ("# EOF\n" if openmetrics else "")
            want = (generate_openmetrics if openmetrics else generate_latest)(_Static([gauge]))  # type: ignore[arg-type]
            assert text.encode() == want


@given(st.lists(st.one_of(st.floats(min_value=0.0, max_value=1e20), st.floats(min_value=0.0, max_value=1e-300),
                          st.sampled_from([0.0, 999999.9999999999, 1e6, 1234567.5, 1e16 - 2.0, 1e16])),
                min_size=1, max_size=8))
def test_counter_values_render_as_prometheus_client_writes_them(values: list[float]) -> None:
    ledger = Ledger()
    for i, v in enumerate(values):
        ledger.add(WORKLOAD_ENERGY, ("ns", f"pod-{i}", "c", "training", "gpu"), v, 1.7e9)
    renderer = LedgerRenderer()
    for openmetrics in (False, True):
        assert renderer.render(ledger, openmetrics).encode() == _reference(ledger, openmetrics, False)


POD = st.sampled_from([f"pod-{i}" for i in range(6)])


@given(st.lists(st.tuples(st.sampled_from(["add", "add_all", "remove", "sample"]), POD, st.floats(0.0, 1e7)),
                max_size=25))
def test_a_renderer_follows_every_series_made_and_removed(steps: list[tuple[str, str, float]]) -> None:
    """Renders between changes reuse the sorted series and their prefixes (Ledger.layout says when series
    were made or removed); whatever the order of additions, removals (the same count of series with
    other labels included) and whole samples, each render is what prometheus_client writes."""
    ledger, renderer = Ledger(), LedgerRenderer()
    for kind, pod, amount in steps:
        labels = ("ns", pod, "c", "training")
        if kind == "add":
            ledger.add(WORKLOAD_EMISSIONS, labels, amount, 1.7e9)
        elif kind == "add_all":
            ledger.add_all([(WORKLOAD_EMISSIONS, labels, amount, 1.7e9), (WORKLOAD_EMISSIONS, ("ns", "x", "c", "t"),
                                                                           1.0, 1.7e9)])
        elif kind == "remove":
            ledger.remove(WORKLOAD_EMISSIONS, labels)
        else:
            with ledger.transaction():
                ledger.remove(WORKLOAD_EMISSIONS, ("ns", "x", "c", "t"))
                ledger.add(WORKLOAD_EMISSIONS, labels, amount, 1.7e9)
        assert renderer.render(ledger, False).encode() == _reference(ledger, False, False)
