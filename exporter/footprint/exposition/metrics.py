"""Exposition: a custom collector over the catalog (catalog.py), and bytes rendered at most once per sample.

The sampler calls `invalidate()` after each sample; the first scrape after that renders (text format
and OpenMetrics, each on demand) and every other scrape serves the cached bytes. No scrape, no
rendering; a scrape never touches hardware or the network.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from footprint import __version__
from footprint.accounting.ledger import Labels, Ledger, _fastledger
from footprint.exposition.catalog import CATALOG, SPECS, MetricSpec
from footprint.sampler import DURATION_BUCKETS, Sampler

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


Families = Callable[[], Iterable[Metric]]  # a part's families, built at each render (grid, attribution...)


def _gauge(name: str, labels: tuple[str, ...] | None = None) -> GaugeMetricFamily:
    spec = SPECS[name]
    return GaugeMetricFamily(name, spec.help, labels=spec.labels if labels is None else labels)


def family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    """An empty family with the catalog's type, HELP and labels: the one way a family gets its text."""
    spec = SPECS[name]
    kind = CounterMetricFamily if spec.type == "counter" else GaugeMetricFamily
    return kind(name, spec.help, labels=spec.labels)


class FootprintCollector:
    """Yields the gauges of the last sample and the pluggable sources' families (grid, attribution,
    checkpoint). The ledger's counters are rendered apart, by LedgerRenderer."""

    def __init__(self, sampler: Sampler, pue: float, extra: Iterable[Families] = ()) -> None:
        self.sampler = sampler
        self.pue = pue
        self.extra = list(extra)

    def collect(self) -> Iterator[Metric]:
        state = self.sampler.state  # the published Sample: immutable, read without a lock
        power = _gauge("footprint_power_watts")
        for (component, device, source), watts in sorted(state.power.items()):
            power.add_metric((component, device, source), watts)
        yield power
        node = _gauge("footprint_node_power_watts")
        node.add_metric((), state.node_watts or 0.0)
        yield node

        info = GaugeMetricFamily("footprint_device_info", SPECS["footprint_device_info"].help)
        up = _gauge("footprint_device_up")
        gauges: dict[str, GaugeMetricFamily] = {}
        current = {r.key: r for r in state.readings}
        for key, r in sorted(state.known_devices.items()):
            info.add_sample("footprint_device_info", {"component": r.component, "device": r.device, **r.info}, 1.0)
            is_up = key in current and key not in state.device_down
            up.add_metric(key, 1.0 if is_up else 0.0)
            if is_up:
                for gauge_name, value in sorted(r.gauges.items()):
                    metric = f"footprint_{r.component}_{gauge_name}"
                    if metric not in gauges:
                        help_text = SPECS[metric].help if metric in SPECS else gauge_name.replace("_", " ")
                        gauges[metric] = GaugeMetricFamily(metric, help_text, labels=("device",))
                    gauges[metric].add_metric((r.device,), value)
        for key in sorted(set(state.device_down) - set(state.known_devices)):
            up.add_metric(key, 0.0)
        yield info
        yield up
        yield from gauges.values()

        meter_up = _gauge("footprint_meter_up")
        for name, ok in sorted(state.meter_up.items()):
            meter_up.add_metric((name,), 1.0 if ok else 0.0)
        yield meter_up

        pue = _gauge("footprint_pue_ratio")
        pue.add_metric((), self.pue)
        yield pue
        if state.intensity is not None:
            i = state.intensity
            acc = _gauge("footprint_grid_accounting_intensity_grams_per_kilowatt_hour")
            acc.add_metric((i.zone, i.provider, i.signal), i.value)
            yield acc

        cumulative, buckets = 0, []
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), state.duration_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        yield HistogramMetricFamily(
            "footprint_sample_duration_seconds", SPECS["footprint_sample_duration_seconds"].help,
            buckets=buckets, sum_value=state.duration_total,
        )
        for produce in self.extra:
            yield from produce()
        build = _gauge("footprint_build_info")
        build.add_metric((__version__,), 1.0)
        yield build


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


INF = float("inf")
# floatToGoString differs from `repr` only for inf and nan, non-floats, and positive floats with more than 6
# digits before the point that repr still writes without an exponent: 1e6 <= v < 1e16 (Go: 1.234567e+06).
_REPR_BELOW, _REPR_FROM = 1e6, 1e16


def go_float(value: float) -> str:
    """prometheus_client's floatToGoString, byte for byte, with `repr` wherever that is the same text.

    Every value of every series is formatted on each render; the renderers inline the same test.
    """
    if type(value) is float and (-INF < value < _REPR_BELOW or _REPR_FROM <= value < INF):
        return repr(value)
    return floatToGoString(value)


def _python_lines(prefixes: Mapping[Labels, str], series: Mapping[Labels, float], order: list[Labels]) -> str:
    """`prefix value` lines of `order`, joined, go_float inlined (a call per value was a third of a render).
    Twin of _fastledger.render_lines, which `_lines` calls where it is built."""
    return "".join([f"{prefixes[labels]}{repr(v) if type(v := series[labels]) is float and (-INF < v < _REPR_BELOW or _REPR_FROM <= v < INF) else floatToGoString(v)}\n"  # noqa: E501
                    for labels in order])


def _lines(prefixes: dict[Labels, str], series: Mapping[Labels, float], order: list[Labels]) -> str:
    """The lines of one metric: in one C call where the ledger's C twins are built (series in a dict)."""
    if _fastledger is not None and type(series) is dict:
        return _fastledger.render_lines(prefixes, series, order, floatToGoString)
    return _python_lines(prefixes, series, order)


class SortedKeys:
    """The sorted label sets of each metric, sorted again only when the set of series changed.

    Sorting thousands of label tuples on every render was a sixth of a render. The ledger says when its
    series changed (`Ledger.layout`, bumped at every series made or removed): then nothing is compared;
    other series (gauges) are compared with the last key set, a C-level set comparison.
    """

    def __init__(self) -> None:
        self._seen: dict[str, tuple[frozenset[Labels], list[Labels], int | None]] = {}

    def of(self, name: str, series: Mapping[Labels, float], layout: int | None = None) -> list[Labels]:
        found = self._seen.get(name)
        if found is not None and layout is not None and found[2] == layout and len(found[1]) == len(series):
            return found[1]
        keys = series.keys()
        if found is None or found[0] != keys:
            found = (frozenset(keys), sorted(keys), layout)
        else:
            found = (found[0], found[1], layout)
        self._seen[name] = found
        return found[1]


class LedgerRenderer:
    """The ledger's counters as exposition text, the same bytes prometheus_client would write.

    Counters are most of the payload (thousands of workload series) and their label sets live for
    hours, so each series' `name{labels} ` prefix and its `_created` line are built once and reused;
    a render only formats the values. prometheus_client's generic path re-validates and re-escapes
    every label of every sample on every scrape (measured in bench/: ~15x slower at 1,000 series).

    `_created` lines only with `created_series` (--web.enable-created-series), in both formats: each is one
    more series per counter in Prometheus (OpenMetrics included, which Prometheus negotiates first and
    whose `_created` lines it stores as series unless created-timestamp ingestion is on), and Go exporters
    never emit them. OpenMetrics makes them optional (a counter "SHOULD" have one), so both formats stay valid.
    """

    def __init__(self, created_series: bool = False) -> None:
        self.created_series = created_series
        # (metric, labels, created, openmetrics) -> (total prefix, created line)
        self._lines: dict[tuple[str, Labels, float | None, bool], tuple[str, str]] = {}
        # (metric, openmetrics) -> labels -> `name{labels} ` (no created line: the common case)
        self._prefixes: dict[tuple[str, bool], dict[Labels, str]] = {}
        self._complete: dict[tuple[str, bool], list[Labels]] = {}  # the order each prefix table holds all of
        self._sorted = SortedKeys()
        self._order = {s.name: tuple(sorted(range(len(s.labels)), key=lambda i: s.labels[i])) for s in CATALOG}

    def _prefix_table(self, spec: MetricSpec, om: bool, order: list[Labels]) -> dict[Labels, str]:
        """labels -> `name{labels} ` for every series of `order`, built once per series; looked over only
        when `order` is another list than last time (SortedKeys keeps one while the series stand)."""
        key = (spec.name, om)
        table = self._prefixes.setdefault(key, {})
        if self._complete.get(key) is not order:
            for labels in order:
                if labels not in table:
                    table[labels] = self._series(spec, labels, None, om)[0]
            self._complete[key] = order
        return table

    def _series(self, spec: MetricSpec, labels: Labels, created: float | None, om: bool) -> tuple[str, str]:
        key = (spec.name, labels, created, om)  # created: a series removed and made again is a new one
        found = self._lines.get(key)
        if found is None:
            base = spec.name[: -len("_total")]
            block = ",".join(f'{spec.labels[i]}="{_escape(labels[i])}"' for i in self._order[spec.name])
            block = f"{{{block}}}" if block else ""
            created_line = f"{base}_created{block} {floatToGoString(created)}\n" if created is not None else ""
            found = (f"{spec.name}{block} ", created_line)
            self._lines[key] = found
        return found

    def render(self, ledger: Ledger, openmetrics: bool,
               gauges: Callable[[], Mapping[str, Mapping[Labels, float]]] = dict) -> str:
        """Counters, then `gauges` (read under the same lock: attribution's pending energy, which must
        add up with the counters of the same moment)."""
        out: list[str] = []
        live = 0
        with ledger.lock:
            for spec in CATALOG:
                series = ledger.series(spec.name)
                if spec.type != "counter" or not series:
                    continue
                live += len(series)
                base = spec.name[: -len("_total")]
                created = ledger.created_series(spec.name) if self.created_series else {}
                if not created:  # the common case: prefixes built once, keys sorted on change only
                    name = spec.name if not openmetrics else base
                    out.append(f"# HELP {name} {spec.help}\n# TYPE {name} counter\n")
                    order = self._sorted.of(spec.name, series, ledger.layout)
                    prefixes = self._prefix_table(spec, openmetrics, order)
                    out.append(_lines(prefixes, series, order))
                    continue
                if openmetrics:
                    out.append(f"# HELP {base} {spec.help}\n# TYPE {base} counter\n")
                    for labels, value in sorted(series.items()):
                        prefix, created_line = self._series(spec, labels, created.get(labels), True)
                        out.append(f"{prefix}{go_float(value)}\n{created_line}")
                else:
                    out.append(f"# HELP {spec.name} {spec.help}\n# TYPE {spec.name} counter\n")
                    created_lines = []
                    for labels, value in sorted(series.items()):
                        prefix, created_line = self._series(spec, labels, created.get(labels), False)
                        out.append(f"{prefix}{go_float(value)}\n")
                        created_lines.append(created_line)
                    if any(created_lines):
                        out.append(f"# HELP {base}_created {spec.help}\n# TYPE {base}_created gauge\n")
                        out.extend(created_lines)
            for name, gauge in gauges().items():
                live += len(gauge)
                spec = SPECS[name]
                out.append(f"# HELP {name} {spec.help}\n# TYPE {name} gauge\n")
                order = self._sorted.of(name, gauge)
                prefixes = self._prefix_table(spec, openmetrics, order)
                out.append(_lines(prefixes, gauge, order))
        if len(self._lines) > 4 * live + 64:  # series left (pods deleted): drop their cached lines
            self._lines.clear()
            self._prefixes.clear()
            self._complete.clear()
        return "".join(out)


class _Families:
    """A collector of given families, so prometheus_client renders one family its own way."""

    def __init__(self, *families: Metric) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


_OM_ONLY = ("_created", "_gsum", "_gcount")  # samples generate_latest moves into gauges of their own
_EOF = "# EOF\n"  # how generate_openmetrics ends every exposition


class GaugeRenderer:
    """The collector's families (gauges, mostly) in the text format or OpenMetrics, the same bytes
    generate_latest writes (the `# EOF` that OpenMetrics ends with is the caller's).

    generate_latest validates and escapes every label name and value of every sample on every scrape;
    here each text-format sample's `name{labels} ` is built once per label set and kept, as LedgerRenderer
    does for counters. Families of other types (counters with `_created`, info, ...) and every family in
    OpenMetrics are written by prometheus_client, one family at a time, and only when they changed.
    """

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
        self._help: dict[tuple[str, str, str], str] = {}
        # openmetrics -> family name -> (its header fields and samples, its text) at the last render
        self._texts: dict[bool, dict[str, tuple[tuple[str, str, str, list[Sample]], str]]] = {False: {}, True: {}}

    def _header(self, name: str, mtype: str, documentation: str) -> str:
        key = (name, mtype, documentation)
        found = self._help.get(key)
        if found is None:
            doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
            found = self._help[key] = f"# HELP {name} {doc}\n# TYPE {name} {mtype}\n"
        return found

    def _prefix(self, name: str, labels: Mapping[str, str]) -> str:
        key = (name, tuple(labels.items()))
        found = self._prefixes.get(key)
        if found is None:
            block = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            found = self._prefixes[key] = f"{name}{{{block}}} " if block else f"{name} "
        return found

    def render(self, families: Iterable[Metric], openmetrics: bool = False) -> str:
        """Most families are as they were at the last render (device info and up, meter up, PUE, the grid's
        and the checkpoint's health): one C-level comparison of their samples gives back the same text."""
        out: list[str] = []
        lines = 0
        texts: dict[str, tuple[tuple[str, str, str, list[Sample]], str]] = {}
        last = self._texts[openmetrics]
        for family in families:
            lines += len(family.samples)
            fields = (family.type, family.documentation, family.unit, family.samples)
            kept = last.get(family.name)
            if kept is not None and kept[0] == fields and _written_alike(kept[0][3], family.samples):
                text = kept[1]
            elif openmetrics:
                text = generate_openmetrics(_Families(family)).decode()[:-len(_EOF)]
            else:
                text = self._text(family)
            texts[family.name] = (fields, text)
            out.append(text)
        self._texts[openmetrics] = texts
        if len(self._prefixes) > 4 * lines + 256:  # label sets gone (devices, providers): drop their lines
            self._prefixes.clear()
        return "".join(out)

    def _text(self, family: Metric) -> str:
        if family.type not in ("gauge", "histogram") or any(
                s.timestamp is not None or s.name.endswith(_OM_ONLY) for s in family.samples):
            return generate_latest(_Families(family)).decode()
        prefix = self._prefix
        return self._header(family.name, family.type, family.documentation) + "".join(
            [f"{prefix(s.name, s.labels)}{go_float(s.value)}\n" for s in family.samples])


def _written_alike(before: list[Sample], now: list[Sample]) -> bool:
    """Equal samples are written alike, except 0.0 and -0.0 (equal, written apart) and timestamps such as 1
    and 1.0 (OpenMetrics writes a timestamp as given). NaN is never equal, so never kept."""
    return all(math.copysign(1.0, a.value) == math.copysign(1.0, b.value) and repr(a.timestamp) == repr(b.timestamp)
               for a, b in zip(before, now, strict=True) if a.value == 0 or a.timestamp is not None)


class Exposition:
    """Cached renderings, invalidated by each sample."""

    def __init__(self, collector: FootprintCollector, created_series: bool = False) -> None:
        self.ledger = collector.sampler.ledger
        self.pending = collector.sampler.pending
        self.counters = LedgerRenderer(created_series)
        self.gauges = GaugeRenderer()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._lock = threading.Lock()
        self._version = 0
        self._cache: dict[bool, tuple[int, bytes]] = {}

    def invalidate(self) -> None:
        self._version += 1

    def render(self, openmetrics: bool = False) -> bytes:
        version = self._version
        cached = self._cache.get(openmetrics)
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._lock:
            cached = self._cache.get(openmetrics)
            if cached is not None and cached[0] == version:
                return cached[1]
            counters = self.counters.render(self.ledger, openmetrics, self.pending).encode()
            rest = self.gauges.render(self.registry.collect(), openmetrics) + (_EOF if openmetrics else "")
            body = counters + rest.encode()
            self._cache[openmetrics] = (version, body)
            return body
