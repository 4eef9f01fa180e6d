"""The live page at `/`: HTML rendered here with every number in it, then kept fresh by static/page.js.

With JavaScript off the page is complete as served (numbers, tables and SVG charts; a <noscript>
refresh reloads it every 30 s). With it on, page.js reads /api/v1/summary and /api/v1/history and
redraws the same elements (same ids, same formats: `fmt` here and in page.js are twins, tested
against each other in the browser test). No external resources: the CSS and JS are this package's
files, served from memory, linked by relative URLs (so the page also works under a proxy's path
prefix); everything from outside (pod names, provider errors) is escaped.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from html import escape
from importlib import resources
from typing import Any

from footprint.web.api import LiveView

STATIC = ("page.css", "page.js")
CONTENT_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}
CHART_W, CHART_H = 600, 140
PROVENANCE_TEXT = {
    "measured": "measured (hardware energy counter)",
    "integrated": "integrated (measured power x time)",
    "estimated": "estimated (model, not a meter)",
    "computed": "computed (energy x PUE x grid intensity)",
    "configured": "configured",
}
EMBODIED_TEXT = "estimated (manufacturing figures amortised over the lifetime)"


def static_files() -> dict[str, tuple[bytes, str]]:
    """/static/<name> -> (body, content type), read once from the package."""
    folder = resources.files("footprint.web").joinpath("static")
    return {f"/static/{n}": (folder.joinpath(n).read_bytes(), CONTENT_TYPES[n.rsplit(".", 1)[1]]) for n in STATIC}


# The stepped units: (below this value, divide by, decimals, unit shown); the last step takes the rest.
STEPS: dict[str, tuple[tuple[float, float, int, str], ...]] = {
    "J": ((3600, 1, 1, "J"), (3.6e6, 3600, 2, "Wh"), (math.inf, 3.6e6, 3, "kWh")),
    "g": ((1, 1, 4, "gCO2e"), (1000, 1, 2, "gCO2e"), (math.inf, 1000, 3, "kgCO2e")),
    "s": ((10, 1, 1, "s"), (120, 1, 0, "s"), (7200, 60, 0, "min"), (math.inf, 3600, 1, "h")),
}


def fmt(value: float | None, unit: str) -> str:
    """A number with its unit, as the page shows it (page.js `fmt` does the same)."""
    if value is None or not math.isfinite(value):
        return "—"
    if unit == "g" and 0 < value < 0.001:
        return f"{value * 1000:.3f} mgCO2e"
    for below, scale, decimals, shown in STEPS.get(unit, ()):
        if value < below:
            return f"{value / scale:.{decimals}f} {shown}"
    if unit == "W":
        return f"{value:.1f} W"
    if unit == "gkwh":
        return f"{value:.1f} gCO2e/kWh"
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "pue":
        return f"{value:.2f}"
    raise ValueError(f"unknown unit {unit!r}")


def clock(ts: float | None, seconds: bool = True) -> str:
    if ts is None:
        return "—"
    return time.strftime("%H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def number(ident: str, value: float | None, unit: str) -> str:
    """A <data> element: the exact value for machines, the formatted one for people."""
    raw = "" if value is None else repr(float(value))
    return f'<data id="{ident}" value="{raw}" data-unit="{unit}">{escape(fmt(value, unit))}</data>'


def text(ident: str, value: object) -> str:
    return f'<span id="{ident}">{escape("—" if value is None or value == "" else str(value))}</span>'


def prov(ident: str, what: str | None, label: str = "") -> str:
    label = label or PROVENANCE_TEXT.get(what or "", what or "—")
    return f'<span class="prov prov-{escape(what or "none")}" id="{ident}">{escape(label)}</span>'


def chart(ident: str, label: str, step: float, values: Sequence[float | None]) -> str:
    """An SVG line chart of one power series over the history held (page.js `drawChart` draws the same)."""
    known = [v for v in values if v is not None]
    top = nice_ceiling(max(known, default=0.0))
    lines, dots = [], []
    segment: list[str] = []
    for i, v in enumerate([*values, None]):
        if v is not None:
            x = (i + 0.5) / len(values) * CHART_W
            y = CHART_H - v / top * CHART_H
            segment.append(f"{x:.1f},{y:.1f}")
            continue
        if len(segment) == 1:
            cx, cy = segment[0].split(",")
            dots.append(f'<circle cx="{cx}" cy="{cy}" r="3"></circle>')
        elif segment:
            lines.append(f'<polyline points="{" ".join(segment)}"></polyline>')
        segment = []
    now = fmt(known[-1], "W") if known else "no data"
    span = fmt(max(len(values), 1) * step, "s")  # the window held so far: up to `points` steps
    summary = (f"{label} over the last {span}: {len(known)} points, "
               f"highest {fmt(max(known, default=None), 'W')}, latest {now}")
    return (
        f'<svg id="{ident}" class="chart" viewBox="0 0 {CHART_W} {CHART_H}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(summary)}" data-points="{len(known)}" data-top="{top:g}">'
        f'<title>{escape(summary)}</title><line class="axis" x1="0" y1="{CHART_H}" x2="{CHART_W}" '
        f'y2="{CHART_H}"></line>{"".join(lines)}{"".join(dots)}</svg>'
        f'<div class="scale" aria-hidden="true"><span>−{span}</span>'
        f'<span>top {fmt(top, "W")}</span><span>now</span></div>'
    )


def nice_ceiling(value: float) -> float:
    """The chart's top: 1, 2 or 5 x a power of ten, at least `value` (and at least 1 W)."""
    if not math.isfinite(value) or value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for m in (1, 2, 5, 10):
        if value <= m * power:
            return float(m * power)
    return float(10 * power)


def forecast_chart(points: Sequence[Mapping[str, float]], greenest: Mapping[str, float] | None) -> str:
    if not points:
        return '<svg id="chart-forecast" class="chart" viewBox="0 0 600 100" role="img" ' \
               'aria-label="No forecast from the provider in use" data-points="0"></svg>'
    top = nice_ceiling(max(p["value"] for p in points))
    width = CHART_W / len(points)
    bars = []
    for i, p in enumerate(points):
        h = p["value"] / top * 100
        cls = ' class="green"' if greenest and p["start"] == greenest["start"] else ""
        bars.append(f'<rect{cls} x="{i * width:.1f}" y="{100 - h:.1f}" width="{max(width - 1, 1):.1f}" '
                    f'height="{h:.1f}"><title>{escape(clock(p["start"], False))}: '
                    f'{escape(fmt(p["value"], "gkwh"))}</title></rect>')
    label = f"Forecast, {len(points)} points; lowest {fmt(greenest['value'] if greenest else None, 'gkwh')}"
    return (f'<svg id="chart-forecast" class="chart" viewBox="0 0 {CHART_W} 100" preserveAspectRatio="none" '
            f'role="img" aria-label="{escape(label)}" data-points="{len(points)}">{"".join(bars)}</svg>')


def device_name(d: Mapping[str, Any]) -> str:
    return f"{d['component']} {d['device']}"


def series_id(d: Mapping[str, Any]) -> str:
    """component/device/source: the labels of footprint_power_watts."""
    return f"{d['component']}/{d['device']}/{d['source']}"


def render(summary: Mapping[str, Any], history: Mapping[str, Any]) -> bytes:
    """The whole page, as served to a browser with or without JavaScript."""
    power = summary.get("power") or {}
    energy = summary.get("energy") or {}
    embodied = summary.get("embodied") or {}
    grid = summary["grid"]
    sample = summary.get("sample")
    step = history["step_seconds"]
    status = f"Sample {sample['number']} at {clock(sample['at'])}" if sample else "Waiting for the first sample"

    device_rows = []
    for i, d in enumerate(power.get("devices", [])):
        down = "" if d["up"] else " (down)"
        device_rows.append(
            f'<tr data-device="{escape(series_id(d))}"><th scope="row">{escape(device_name(d))}'
            f'<span class="model">{escape(d["model"])}</span></th>'
            f'<td>{number(f"dev-{i}-watts", d["watts"], "W")}</td>'
            f'<td>{escape(d["source"])}: {prov(f"dev-{i}-prov", d["provenance"])}{down}</td></tr>')
    device_charts = []
    for i, d in enumerate(history["devices"]):
        caption = f"{device_name(d)} ({d['source']}), watts"
        device_charts.append(f'<figure data-device="{escape(series_id(d))}"><figcaption>'
                             f"{escape(caption)}</figcaption>"
                             f"{chart(f'chart-dev-{i}', device_name(d) + ' power', step, d['watts'])}</figure>")
    totals = []
    for key, label in (("since_start", "Since start"), ("today", "Today (UTC)"), ("lifetime", "All time")):
        period = energy.get(key) or {}
        since = text(f"{key}-since", clock(period.get("since"), False) if period else None)
        totals.append(
            f'<tr><th scope="row">{label} <span class="since">from {since}</span></th>'
            f'<td>{number(f"{key}-energy", period.get("energy_joules"), "J")}</td>'
            f'<td>{number(f"{key}-grams", period.get("emissions_grams"), "g")}</td></tr>')
    chain = []
    for s in grid["chain"]:
        error = f" — {s['last_error']}" if s["last_error"] else ""
        state = "up" if s["up"] else "down"
        chain.append(f"<li>{escape(str(s['provider']))} ({escape(str(s['signal']))}): {state}{escape(error)}</li>")
    forecast = grid["forecast"]
    green = forecast["greenest"]
    marginal = grid["marginal"]
    workloads = summary["workloads"]
    workload_rows = []
    for i, w in enumerate(workloads["top"]):
        name = (w["namespace"] + "/" if w["namespace"] else "") + (w["pod"] or w["workload"])
        workload_rows.append(
            f'<tr><th scope="row">{escape(name)}<span class="model">{escape(w["container"])}</span></th>'
            f'<td>{number(f"wl-{i}-energy", w["energy_joules"], "J")}</td>'
            f'<td>{number(f"wl-{i}-grams", w["emissions_grams"], "g")}</td></tr>')
    runs = summary["runs"]
    run_rows = []
    for i, r in enumerate(runs["runs"]):
        run_rows.append(
            f'<tr><th scope="row">{escape(r["run_id"])}<span class="model">{escape(r["started_at"] or "")}</span>'
            f'</th><td>{number(f"run-{i}-duration", r["duration_seconds"], "s")}</td>'
            f'<td>{number(f"run-{i}-energy", r["energy_joules"], "J")}</td>'
            f'<td>{number(f"run-{i}-grams", r["emissions_grams"], "g")}</td></tr>')
    runs_note = runs["error"] or (f"{runs['skipped']} unreadable rows skipped" if runs["skipped"] else "")
    estimated = "estimated by the source" if grid["estimated"] else "reported by the source"
    fallback = "active: not the first provider" if grid["fallback_active"] else "not active"
    window = fmt(step, "s")
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Footprint: this machine's power and emissions</title>
<link rel="stylesheet" href="static/page.css">
<link rel="icon" href="data:,">
<noscript><meta http-equiv="refresh" content="30"></noscript>
<script src="static/page.js" defer></script>
</head>
<body data-interval="{summary["exporter"]["sample_interval_seconds"]:g}" data-step="{step:g}">
<header>
<h1>Footprint</h1>
<p id="status" role="status" aria-live="polite">{escape(status)}</p>
<noscript><p>JavaScript is off: these numbers are from when the page was made; it reloads every 30 s.</p></noscript>
<nav aria-label="Endpoints"><a href="metrics">/metrics</a> <a href="api/v1/summary">/api/v1/summary</a>
<a href="api/v1/history">/api/v1/history</a> <a href="api/v1/grid">/api/v1/grid</a></nav>
</header>
<main>
<section aria-labelledby="h-power">
<h2 id="h-power">Power now</h2>
<p class="big">Node: {number("node-watts", power.get("node_watts"), "W")}
{prov("node-prov", power.get("node_provenance"))}</p>
<figure><figcaption>Node power, mean of each {escape(window)}, watts</figcaption>
{chart("chart-node", "Node power", step, history["node"])}</figure>
<table id="devices"><caption>Per device, over the last sample</caption>
<thead><tr><th scope="col">Device</th><th scope="col">Power</th><th scope="col">Source</th></tr></thead>
<tbody>{"".join(device_rows)}</tbody></table>
<div id="device-charts">{"".join(device_charts)}</div>
</section>
<section aria-labelledby="h-energy">
<h2 id="h-energy">Energy and emissions</h2>
<table id="totals"><caption>Node energy and operational CO2e,
{prov("emissions-prov", energy.get("emissions_provenance"))}</caption>
<thead><tr><th scope="col">Period</th><th scope="col">Energy</th><th scope="col">CO2e</th></tr></thead>
<tbody>{"".join(totals)}</tbody></table>
</section>
<section aria-labelledby="h-grid">
<h2 id="h-grid">Grid intensity in use</h2>
<p class="big">{number("grid-value", grid["value"], "gkwh")}</p>
<dl>
<dt>Provider</dt><dd>{text("grid-provider", grid["provider"])}</dd>
<dt>Signal</dt><dd>{text("grid-signal", grid["signal"])}</dd>
<dt>Zone</dt><dd>{text("grid-zone", grid["zone"])}</dd>
<dt>Value</dt><dd>{text("grid-estimated", estimated)}</dd>
<dt>Age</dt><dd>{number("grid-age", grid["age_seconds"], "s")}</dd>
<dt>Fallback</dt><dd>{text("grid-fallback", fallback)}</dd>
<dt>Marginal</dt><dd>{number("grid-marginal", marginal["value"] if marginal else None, "gkwh")}</dd>
</dl>
<h3>Provider chain</h3>
<ul id="grid-chain">{"".join(chain)}</ul>
</section>
<section aria-labelledby="h-forecast">
<h2 id="h-forecast">Forecast</h2>
<p>Greenest window ahead: {number("green-value", green["value"] if green else None, "gkwh")}
from {text("green-start", clock(green["start"], False) if green else None)}
({text("forecast-provider", forecast["provider"])})</p>
<figure><figcaption>Forecast intensity ahead, gCO2e/kWh; the greenest hour is highlighted</figcaption>
{forecast_chart(forecast["points"], green)}</figure>
</section>
<section aria-labelledby="h-facility">
<h2 id="h-facility">Facility and hardware</h2>
<dl>
<dt>PUE</dt><dd>{number("pue", summary["pue"]["ratio"], "pue")} {prov("pue-prov", "configured")}</dd>
<dt>Embodied CO2e</dt><dd>{number("embodied-grams", embodied.get("grams_total"), "g")}
{prov("embodied-prov", embodied.get("provenance"), EMBODIED_TEXT)}</dd>
<dt>Embodied share</dt><dd>{number("embodied-share", embodied.get("share"), "ratio")}</dd>
</dl>
</section>
<section aria-labelledby="h-workloads" id="workloads"{"" if workloads["enabled"] else " hidden"}>
<h2 id="h-workloads">Workloads</h2>
<table><caption>Top {text("wl-shown", len(workloads["top"]))} of {text("wl-count", workloads["count"])} by
energy (device energy split by use)</caption>
<thead><tr><th scope="col">Workload</th><th scope="col">Energy</th><th scope="col">CO2e</th></tr></thead>
<tbody id="wl-rows">{"".join(workload_rows)}</tbody></table>
</section>
<section aria-labelledby="h-runs" id="runs"{"" if runs["enabled"] else " hidden"}>
<h2 id="h-runs">Runs</h2>
<p class="prov" id="runs-note">{escape(runs_note)}</p>
<table><caption>Latest runs of <code>footprint-exporter measure</code>: each run's own share</caption>
<thead><tr><th scope="col">Run</th><th scope="col">Duration</th><th scope="col">Energy</th>
<th scope="col">CO2e</th></tr></thead>
<tbody id="run-rows">{"".join(run_rows)}</tbody></table>
</section>
</main>
<footer><p>Measured: read from a hardware energy counter (NVML, RAPL). Integrated: hardware power readings
multiplied by time. Estimated: a model (CPU utilisation x configured watts), not a meter. CO2e is computed:
energy x PUE x the grid intensity of each interval.</p></footer>
</body>
</html>
"""
    return html.encode()


def _json(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def pages(view: LiveView) -> dict[str, Callable[[], tuple[bytes, str]]]:
    """The routes this module and api.py add to the server (server.Routes.pages)."""
    routes: dict[str, Callable[[], tuple[bytes, str]]] = {
        "/": lambda: (render(view.summary(), view.history_payload()), "text/html; charset=utf-8"),
        "/api/v1/summary": lambda: (_json(view.summary()), "application/json"),
        "/api/v1/history": lambda: (_json(view.history_payload()), "application/json"),
    }
    for path, served in static_files().items():
        routes[path] = lambda served=served: served  # type: ignore[misc]
    return routes
