"""`footprint-exporter report --prometheus URL --since 30d [--until T] --by namespace|workload|node|pod`.

A period's figures, from the counters Prometheus scraped: every amount is an `increase()` over the
window (resets handled the Prometheus way; never a total x the current intensity), evaluated once at
`--until`. Workload rows come from footprint_workload_* (--by namespace, workload, pod), with what no
workload used as its own "(unattributed)" row; --by node uses the node counters. Embodied emissions,
water and cost exist per node only: a row gets its node's figure in proportion to its share of the
node's IT energy (exact for water, which is linear in energy; an allocation for the others, said so).
Energy and gCO2e per 1,000 tokens come from pods that also export vllm:generation_tokens_total with
`namespace`/`pod` target labels (the vLLM rules' join), and only where they generated tokens.

Provenance and gaps: the share of scrapes per accounting-intensity provider (count_over_time), the node
energy charged while the static table was in use (per step of a range query), scrape misses
(count_over_time(up) - sum_over_time(up)), successful scrapes without footprint_build_info (something
else answered on the exporter's address), periods with failed or missing scrapes (min_over_time(up) per
step, or no `up` at all) and counter resets (resets(), a restart without --state.file), and the
footprint_build_info versions whose methodology (docs/methodology.md) produced the counters.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from footprint import numbers
from footprint.accounting.accountant import JOULES_PER_KWH
from footprint.config import ConfigError, parse_duration
from footprint.exposition import catalog

USAGE = """usage: footprint-exporter report --prometheus=URL [--since=30d] [--until=now]
                                 [--by=namespace|workload|node|pod] [--job=REGEX] [--match='cluster="prod"']
                                 [--output=FILE.csv|.json]
See docs/report.md."""

BY = ("namespace", "workload", "node", "pod")
UNATTRIBUTED = "(unattributed)"
INTENSITY = catalog.ACCOUNTING_INTENSITY
MAX_STEPS = 1000  # points per series of the range queries (Prometheus allows 11,000)


Points = list[tuple[float, float]]  # (Unix seconds, value) of one series of a range query


class ReportError(Exception):
    """Prometheus cannot answer (unreachable, a query refused): exit 1 with the reason."""


@dataclass
class Row:
    """One group's figures over the window (None: not configured, or no data for it)."""

    key: str
    energy_joules: float = 0.0
    facility_energy_joules: float = 0.0
    emissions_grams: float = 0.0
    embodied_grams: float = 0.0
    water_liters: float | None = None
    cost: float | None = None
    tokens: float | None = None
    joules_per_1k_tokens: float | None = None
    grams_per_1k_tokens: float | None = None


@dataclass
class ProviderShare:
    provider: str
    scrapes: int
    share: float  # of all accounting-intensity scrapes


@dataclass
class Gap:
    instance: str
    start: float
    end: float
    kind: str  # "scrapes failed" (up == 0) | "no data" (no up at all: target or Prometheus gone)


@dataclass
class Report:
    since: float
    until: float
    by: str
    step: float
    rows: list[Row] = field(default_factory=list)
    total: Row = field(default_factory=lambda: Row("total"))
    currency: str = ""
    providers: list[ProviderShare] = field(default_factory=list)
    static_energy_joules: float = 0.0  # node energy charged at the static table's intensity
    scrapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # instance -> (attempted, failed)
    without_build_info: dict[str, int] = field(default_factory=dict)  # successful scrapes not of an exporter
    gaps: list[Gap] = field(default_factory=list)
    resets: dict[str, int] = field(default_factory=dict)  # instance -> counter resets
    versions: list[str] = field(default_factory=list)


# --- Prometheus HTTP API -------------------------------------------------------------------------


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _api(self, path: str, params: Mapping[str, str]) -> Any:
        data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")[:300]
            raise ReportError(f"prometheus: {path} {params.get('query', '')!r}: HTTP {exc.code}: {text}") from None
        except (OSError, ValueError) as exc:
            raise ReportError(f"prometheus: cannot query {self.url}: {exc}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise ReportError(f"prometheus: {path}: {body.get('error') if isinstance(body, dict) else body!r}")
        return body["data"]

    def instant(self, expr: str, at: float) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of each series; values that are not finite numbers are dropped."""
        data = self._api("query", {"query": expr, "time": f"{at:.3f}"})
        out = []
        for s in data.get("result", []) if data.get("resultType") == "vector" else []:
            value = _number(s.get("value", [0, "NaN"])[1])
            if value is not None:
                out.append((dict(s.get("metric", {})), value))
        return out

    def range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], Points]]:
        data = self._api("query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                         "step": f"{step:.3f}"})
        out = []
        for s in data.get("result", []):
            points = [(float(t), v) for t, raw in s.get("values", []) if (v := _number(raw)) is not None]
            out.append((dict(s.get("metric", {})), points))
        return out


def _number(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- the figures ---------------------------------------------------------------------------------


def _node(labels: Mapping[str, str]) -> str:
    return labels.get("node") or labels.get("instance", "")


def _key(by: str, labels: Mapping[str, str]) -> str:
    if by == "pod":
        return f"{labels.get('namespace', '')}/{labels.get('pod', '')}"
    if by == "node":
        return _node(labels)
    return labels.get(by, "")


def collect(prom: Prometheus, since: float, until: float, by: str, job: str = "footprint.*", match: str = "") -> Report:
    """Every figure of the report, from instant queries at `until` over [since, until] and range queries.

    `match`: more label matchers for every series, the inference server's included (`cluster="prod"`).
    """
    window = until - since
    if window <= 0:
        raise ConfigError("since: must be before --until")
    w = f"{round(window * 1000)}ms"
    sel = f'job=~"{job}"' + (f",{match}" if match else "")
    steps = max(min(MAX_STEPS, math.floor(window)), 1)  # steps of 1 s or more that tile the window exactly
    step = window / steps
    report = Report(since, until, by, step)

    def per_instance(expr: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, value in prom.instant(expr, until):
            out[_node(labels)] += max(value, 0.0)
        return out

    def inc(metric: str, by_labels: str = "instance, node") -> str:
        return f"sum by ({by_labels}) (increase({metric}{{{sel}}}[{w}]))"

    node_energy = per_instance(inc(catalog.NODE_ENERGY))
    overhead = per_instance(inc(catalog.FACILITY_OVERHEAD))
    node_grams = per_instance(inc(catalog.NODE_EMISSIONS))
    embodied = per_instance(inc(catalog.EMBODIED))
    water_q = prom.instant(inc(catalog.WATER), until)
    water = {_node(labels): v for labels, v in water_q}
    cost_q = prom.instant(inc(catalog.COST, "instance, node, currency"), until)
    cost = {_node(labels): v for labels, v in cost_q}
    report.currency = ", ".join(sorted({labels.get("currency", "") for labels, _ in cost_q}))

    def allocate(row: Row, node: str, joules: float, grams: float) -> None:
        """Add `joules` (and `grams`) drawn on `node` to the row, with its share of the node-only figures."""
        share = joules / node_energy[node] if node_energy.get(node, 0.0) > 0 else 0.0
        pue = 1.0 + overhead.get(node, 0.0) / node_energy[node] if node_energy.get(node, 0.0) > 0 else 1.0
        row.energy_joules += joules
        row.facility_energy_joules += joules * pue
        row.emissions_grams += grams
        row.embodied_grams += embodied.get(node, 0.0) * share
        if node in water:
            row.water_liters = (row.water_liters or 0.0) + water[node] * share
        if node in cost:
            row.cost = (row.cost or 0.0) + cost[node] * share

    rows: dict[str, Row] = {}
    if by == "node":
        for node, joules in sorted(node_energy.items()):
            allocate(rows.setdefault(node, Row(node)), node, joules, node_grams.get(node, 0.0))
    else:
        labels_by = "namespace, pod, workload, instance, node"
        energy = prom.instant(inc(catalog.WORKLOAD_ENERGY, labels_by), until)
        grams = {_series(labels): v for labels, v in
                 prom.instant(inc(catalog.WORKLOAD_EMISSIONS, labels_by), until)}
        for labels, joules in energy:
            allocate(rows.setdefault(_key(by, labels), Row(_key(by, labels))), _node(labels), max(joules, 0.0),
                     max(grams.get(_series(labels), 0.0), 0.0))
        _tokens(prom, rows, by, energy, grams, f"vllm:generation_tokens_total{{{match}}}[{w}]", until)
        idle_j = per_instance(inc(catalog.UNATTRIBUTED_ENERGY))
        idle_g = per_instance(inc(catalog.UNATTRIBUTED_EMISSIONS))
        if idle_j:
            row = Row(UNATTRIBUTED)
            for node, joules in sorted(idle_j.items()):
                allocate(row, node, joules, idle_g.get(node, 0.0))
            rows[UNATTRIBUTED] = row
    report.rows = sorted(rows.values(), key=lambda r: (r.key == UNATTRIBUTED, -r.energy_joules, r.key))
    for node, joules in node_energy.items():
        allocate(report.total, node, joules, node_grams.get(node, 0.0))
    _provenance(prom, report, sel, w, node_energy)
    return report


def _series(labels: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(labels.get(k, "") for k in ("namespace", "pod", "workload", "instance", "node"))


def _tokens(prom: Prometheus, rows: dict[str, Row], by: str, energy: list[tuple[dict[str, str], float]],
            grams: Mapping[tuple[str, ...], float], selector: str, until: float) -> None:
    """Energy and grams per 1,000 generated tokens, over the pods that generated any (vLLM's counter)."""
    tokens = {(labels.get("namespace", ""), labels.get("pod", "")): v for labels, v in
              prom.instant(f"sum by (namespace, pod) (increase({selector}))", until) if v > 0}
    if not tokens:
        return
    per_row: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])  # joules, grams, tokens
    counted: set[tuple[str, str]] = set()
    for labels, joules in energy:
        pod = (labels.get("namespace", ""), labels.get("pod", ""))
        if pod not in tokens:
            continue
        acc = per_row[_key(by, labels)]
        acc[0] += max(joules, 0.0)
        acc[1] += max(grams.get(_series(labels), 0.0), 0.0)
        if pod not in counted:  # a pod's tokens once, however many components and nodes it has
            counted.add(pod)
            acc[2] += tokens[pod]
    for key, (joules, g, n) in per_row.items():
        row = rows[key]
        row.tokens = n
        row.joules_per_1k_tokens = joules / n * 1000
        row.grams_per_1k_tokens = g / n * 1000


def _provenance(prom: Prometheus, report: Report, sel: str, w: str, node_energy: Mapping[str, float]) -> None:
    until, since, step = report.until, report.since, report.step
    counts = prom.instant(f"sum by (provider) (count_over_time({INTENSITY}{{{sel}}}[{w}]))", until)
    total = sum(v for _, v in counts)
    report.providers = sorted((ProviderShare(labels.get("provider", ""), round(v), v / total if total else 0.0)
                               for labels, v in counts), key=lambda p: -p.scrapes)
    # Energy charged at the static table: each step's node energy, in the proportion of its scrapes at static.
    s = f"{round(step * 1000)}ms"
    static = {_node(lbl): _by_time(pts) for lbl, pts in prom.range(
        f'sum by (instance, node) (count_over_time({INTENSITY}{{{sel},provider="static"}}[{s}]))', since + step,
        until, step)}
    if static:
        every = {_node(lbl): _by_time(pts) for lbl, pts in prom.range(
            f"sum by (instance, node) (count_over_time({INTENSITY}{{{sel}}}[{s}]))", since + step, until, step)}
        energy = prom.range(f"sum by (instance, node) (increase(footprint_node_energy_joules_total{{{sel}}}[{s}]))",
                            since + step, until, step)
        for lbl, pts in energy:
            node = _node(lbl)
            for t, joules in pts:
                n = every.get(node, {}).get(round(t, 3), 0.0)
                if n > 0:
                    report.static_energy_joules += max(joules, 0.0) * static.get(node, {}).get(round(t, 3), 0.0) / n
    attempted = {_node(lbl): v for lbl, v in prom.instant(f"count_over_time(up{{{sel}}}[{w}])", until)}
    ok = {_node(lbl): v for lbl, v in prom.instant(f"sum_over_time(up{{{sel}}}[{w}])", until)}
    report.scrapes = {node: (round(n), round(n - ok.get(node, 0.0))) for node, n in sorted(attempted.items())}
    info = {_node(lbl): v for lbl, v in prom.instant(
        f"sum by (instance, node) (count_over_time(footprint_build_info{{{sel}}}[{w}]))", until)}
    report.without_build_info = {node: round(n - info.get(node, 0.0)) for node, n in sorted(ok.items())
                                 if n - info.get(node, 0.0) >= 1}
    report.resets = {_node(lbl): round(v) for lbl, v in
                     prom.instant(f"resets(footprint_node_energy_joules_total{{{sel}}}[{w}])", until) if v > 0}
    up = prom.range(f"min_over_time(up{{{sel}}}[{s}])", since + step, until, step)
    for lbl, pts in up:
        report.gaps += _gaps(_node(lbl), pts, since, until, step)
    for node in node_energy:
        if node not in {_node(lbl) for lbl, _ in up}:
            report.gaps.append(Gap(node, since, until, "no data"))
    report.gaps.sort(key=lambda g: (g.start, g.instance))
    report.versions = sorted(lbl.get("version", "") for lbl, _ in prom.instant(
        f"count by (version) (count_over_time(footprint_build_info{{{sel}}}[{w}]))", until))


def _by_time(points: Sequence[tuple[float, float]]) -> dict[float, float]:
    return {round(t, 3): v for t, v in points}


def _gaps(node: str, points: Sequence[tuple[float, float]], since: float, until: float, step: float) -> list[Gap]:
    """Runs of steps whose scrapes failed (up 0) or that hold no scrape at all, as (start, end) periods."""
    value = _by_time(points)
    out: list[Gap] = []
    for k in range(1, round((until - since) / step) + 1):
        t = since + k * step
        v = value.get(round(t, 3))
        kind = "no data" if v is None else ("scrapes failed" if v < 1 else "")
        if kind:
            start = t - step
            if out and out[-1].kind == kind and abs(out[-1].end - start) < 1e-6:
                out[-1].end = t
            else:
                out.append(Gap(node, start, t, kind))
    return out


# --- output --------------------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value == 0:
        return "0"
    return f"{value:,.{digits}f}" if abs(value) >= 10 ** -digits else f"{value:.{digits}g}"


COLUMNS = (("energy (kWh)", lambda r: r.energy_joules / JOULES_PER_KWH, 4),
           ("facility (kWh)", lambda r: r.facility_energy_joules / JOULES_PER_KWH, 4),
           ("operational gCO2e", lambda r: r.emissions_grams, 1),
           ("embodied gCO2e (Scope 3)", lambda r: r.embodied_grams, 1),
           ("water (L)", lambda r: r.water_liters, 2),
           ("cost", lambda r: r.cost, 2),
           ("kWh / 1k tokens", lambda r: None if r.joules_per_1k_tokens is None
            else r.joules_per_1k_tokens / JOULES_PER_KWH, 6),
           ("gCO2e / 1k tokens", lambda r: r.grams_per_1k_tokens, 3))


def render_markdown(report: Report) -> str:
    """The report as Markdown (golden-tested on a fixed Report)."""
    hours = (report.until - report.since) / 3600
    lines = [f"# Footprint report: {_iso(report.since)} to {_iso(report.until)} ({hours:,.1f} h), by {report.by}",
             "",
             "Operational emissions are location-based (grid average intensity of each interval, x PUE); "
             "embodied emissions (Scope 3) are apart. Every figure is an increase() of the exported counters.",
             ""]
    cost_title = f"cost ({report.currency})" if report.currency else "cost"
    titles = [report.by, *(cost_title if t == "cost" else t for t, _, _ in COLUMNS)]
    lines.append("| " + " | ".join(titles) + " |")
    lines.append("|---" + "|---:" * len(COLUMNS) + "|")
    for row in [*report.rows, report.total]:
        name = "**total (node counters)**" if row is report.total else row.key or "(none)"
        lines.append("| " + " | ".join([name, *(_num(get(row), d) for _, get, d in COLUMNS)]) + " |")
    attributed = sum(r.energy_joules for r in report.rows)
    if report.by != "node" and report.total.energy_joules > 0:
        lines += ["", f"Rows sum to {100 * attributed / report.total.energy_joules:.2f} % of the nodes' IT energy "
                  "(the rest was pending attribution at the window's edges)."]
    lines += ["", "Embodied, water and cost are per node; a row has its node's figure in proportion to its share "
              "of the node's IT energy. Per 1,000 tokens: pods that exported vllm:generation_tokens_total.", "",
              "## Grid intensity", ""]
    if report.providers:
        lines.append("| provider | scrapes | share of intervals |")
        lines.append("|---|---:|---:|")
        lines += [f"| {p.provider} | {p.scrapes} | {100 * p.share:.1f} % |" for p in report.providers]
        share = report.static_energy_joules / report.total.energy_joules if report.total.energy_joules else 0.0
        lines += ["", f"Charged at the static table's annual average (fallback or configured): "
                  f"{_num(report.static_energy_joules / JOULES_PER_KWH, 4)} kWh, {100 * share:.1f} % of the IT "
                  f"energy (per {report.step:g} s step)."]
    else:
        lines.append("No intensity data in the window.")
    lines += ["", "## Gaps in the data", ""]
    for node, (attempted, failed) in report.scrapes.items():
        lines.append(f"- {node}: {failed} of {attempted} scrapes failed")
    for node, n in report.without_build_info.items():
        lines.append(f"- {node}: {n} successful scrapes without footprint_build_info (not the exporter answering)")
    for node, n in report.resets.items():
        lines.append(f"- {node}: counters reset {n} time(s) (an exporter restart without --state.file); "
                     "increase() counts from zero after each")
    for gap in report.gaps:
        lines.append(f"- {gap.instance}: {gap.kind} from {_iso(gap.start)} to {_iso(gap.end)} "
                     f"({gap.end - gap.start:,.0f} s)")
    if not (report.gaps or report.resets or report.without_build_info or any(f for _, f in report.scrapes.values())):
        lines.append("None: every scrape in the window succeeded.")
    versions = ", ".join(report.versions) or "unknown"
    lines += ["", f"Methodology: docs/methodology.md of footprint {versions} (footprint_build_info in the window).", ""]
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return asdict(report)


def write_output(report: Report, path: str) -> None:
    if path.lower().endswith(".csv"):
        fields = list(asdict(Row("")))
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[report.by, *fields[1:]], lineterminator="\n")
            writer.writeheader()
            for row in [*report.rows, report.total]:
                d = asdict(row)
                d[report.by] = d.pop("key")
                writer.writerow({k: "" if v is None else v for k, v in d.items()})
    else:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(as_json(report), fh, indent=1)
            fh.write("\n")


MAX_UNIX_SECONDS = 1e11  # year 5138: a --since/--until beyond it is a typo


def parse_time(text: str, now: float, key: str) -> float:
    """`now`, a duration before now (`30d`), Unix seconds, or RFC 3339 (`2026-11-01T00:00:00Z`)."""
    text = text.strip()
    if text == "now":
        return now
    try:
        float(text)
    except ValueError:
        pass
    else:  # Unix seconds: the one number rule (nan, inf and years past 5000 are refused)
        try:
            return numbers.bounded(text, 0.0, MAX_UNIX_SECONDS)
        except numbers.NumberError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not now, a duration (30d), Unix seconds or RFC 3339") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_args(argv: Sequence[str], now: float) -> dict[str, Any]:
    opts: dict[str, str] = {"since": "30d", "until": "now", "by": "namespace", "job": "footprint.*", "output": "",
                            "prometheus": "", "timeout": "30s", "match": ""}
    args = list(argv)
    i = 0
    while i < len(args):
        name, eq, value = args[i].partition("=")
        key = name[2:]
        if not name.startswith("--") or key not in opts:
            raise ConfigError(f"{name.lstrip('-') or name}: unknown report option (see --help)")
        if not eq:
            if i + 1 >= len(args):
                raise ConfigError(f"{key}: missing value")
            i += 1
            value = args[i]
        opts[key] = value
        i += 1
    if not opts["prometheus"].startswith(("http://", "https://")):
        raise ConfigError("prometheus: required, Prometheus's http:// or https:// URL")
    if opts["by"] not in BY:
        raise ConfigError(f"by: {opts['by']!r} is not one of {', '.join(BY)}")
    until = parse_time(opts["until"], now, "until")
    # A duration in --since counts back from --until.
    since = parse_time(opts["since"], until, "since")
    if since >= until:
        raise ConfigError("since: must be before --until")
    try:
        timeout = parse_duration(opts["timeout"])
    except ValueError as exc:
        raise ConfigError(f"timeout: {exc}") from None
    return {"prometheus": opts["prometheus"], "since": since, "until": until, "by": opts["by"], "job": opts["job"],
            "match": opts["match"], "output": opts["output"], "timeout": timeout}


def main(argv: Sequence[str]) -> int:
    if "--help" in argv or "-h" in argv:
        print(USAGE)
        return 0
    try:
        opts = parse_args(argv, time.time())
    except ConfigError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    try:
        report = collect(Prometheus(opts["prometheus"], opts["timeout"]), opts["since"], opts["until"], opts["by"],
                         opts["job"], opts["match"])
    except ReportError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render_markdown(report))
    if opts["output"]:
        try:
            write_output(report, opts["output"])
        except OSError as exc:
            print(f"footprint-exporter: output: cannot write {opts['output']}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0
