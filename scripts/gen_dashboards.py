"""Build Footprint's Grafana dashboards as JSON (the source of truth; the JSON is committed).

Why a generator: four dashboards share one datasource variable, the same label filters, units and
layout rules; writing them by hand invites drift between panels. Plain Python, no dependencies.

    python scripts/gen_dashboards.py          # write grafana/dashboards/*.json and grafana/import/*.json
    python scripts/gen_dashboards.py --check  # exit 1 if the committed JSON differs from what this builds

Targets Grafana 10.x/11.x (schemaVersion 39). Provisioned copies (grafana/dashboards/) carry no
`__inputs`; the importable copies (grafana/import/) carry `__inputs` for grafana.com users.

Query conventions (tests/unit/test_dashboards.py enforces them):
- every `rate`/`irate` range is `$__rate_interval`; every `increase` range is `$__rate_interval`, or
  `$__range` in an instant query that shows a total over the panel's time window ("today", "this month");
- recording rules from prometheus/rules/recording.yml where one exists (they use fixed 5m windows);
- energy is shown in kWh (joules / 3.6e6), emissions totals in kg CO2e (grams / 1000), rates in gCO2e/h.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROVISIONED_DIR = REPO / "grafana" / "dashboards"
IMPORT_DIR = REPO / "grafana" / "import"

SCHEMA_VERSION = 39
DS = {"type": "prometheus", "uid": "${datasource}"}

# Equivalents. Factors are approximations for orientation, named in the panel descriptions.
CAR_GRAMS_PER_KM = 170  # UK DESNZ GHG conversion factors 2023: average car, unknown fuel ~0.17 kgCO2e/km
FLIGHT_KM = 5550  # London Heathrow - New York JFK, great-circle distance
FLIGHT_GRAMS_PER_PKM = 150  # UK DESNZ 2023: long-haul, economy, with radiative forcing ~0.15 kgCO2e/pkm
FLIGHT_GRAMS = FLIGHT_KM * FLIGHT_GRAMS_PER_PKM  # ~833 kgCO2e per one-way economy seat

# Threshold steps: (colour, lower bound); the first step has no lower bound.
Steps = list[tuple[str, float | None]]

# Thresholds shared with prometheus/thresholds.yaml (alerts) so colours and alerts agree.
INTENSITY_STEPS: Steps = [("green", None), ("yellow", 200), ("orange", 300), ("red", 400)]
GPU_LIMIT_STEPS: Steps = [("green", None), ("yellow", 0.8), ("red", 0.95)]
AGE_STEPS: Steps = [("green", None), ("orange", 3600), ("red", 7200)]
IDLE_UTILISATION = 0.05

# Label filters. `cluster` is a target label (absent on one-node setups: the All value .* matches that).
NODE = 'cluster=~"$cluster", instance=~"$instance"'
CLUSTER = 'cluster=~"$cluster"'
WORKLOAD = 'cluster=~"$cluster", namespace=~"$namespace", workload=~"$workload"'
ZONE = 'cluster=~"$cluster", grid_zone=~"$grid_zone"'

KWH = "/ 3.6e6"
KG = "/ 1000"


# --- building blocks -------------------------------------------------------------------------------


def steps(pairs: Steps) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


def target(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> dict[str, Any]:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": "table" if table else "time_series",
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "refId": ref,
    }


UP_MAPPINGS = [
    {"type": "value", "options": {"0": {"text": "Down", "color": "red", "index": 0},
                                  "1": {"text": "Up", "color": "green", "index": 1}}},
]


def panel(
    kind: str,
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    *,
    w: int,
    h: int,
    thresholds: Steps | None = None,
    decimals: int | None = None,
    mappings: list[dict[str, Any]] | None = None,
    custom: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    color: str | None = None,
    min_value: float | None = None,
    max_value: float | None = None,
    time_from: str | None = None,
    transformations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One panel; `w`/`h` are its size, the layout pass adds id and position."""
    defaults: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": color or ("thresholds" if kind in ("stat", "bargauge", "gauge") else "palette-classic")},
        "thresholds": steps(thresholds or [("green", None)]),
        "mappings": mappings or [],
    }
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_value is not None:
        defaults["min"] = min_value
    if max_value is not None:
        defaults["max"] = max_value
    if custom:
        defaults["custom"] = custom
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "_size": (w, h),
    }
    if time_from:
        out["timeFrom"] = time_from
        out["hideTimeOverride"] = False
    if transformations:
        out["transformations"] = transformations
    return out


REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}
LEGEND_TABLE = {"displayMode": "table", "placement": "right", "showLegend": True, "calcs": ["lastNotNull", "max"]}
TOOLTIP = {"mode": "multi", "sort": "desc"}


def stat(title: str, description: str, expr: str, unit: str, *, w: int = 4, h: int = 4, legend: str = "",
         instant: bool = False, sparkline: bool = True, **kw: Any) -> dict[str, Any]:
    options = {
        "reduceOptions": REDUCE_LAST,
        "colorMode": "value",
        "graphMode": "area" if sparkline and not instant else "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": "auto",
        "wideLayout": True,
        "showPercentChange": False,
    }
    return panel("stat", title, description, [target(expr, legend, instant=instant)], unit, w=w, h=h,
                 options=options, **kw)


def timeseries(title: str, description: str, exprs: list[tuple[str, str]], unit: str, *, w: int = 12,
               h: int = 8, stack: bool = False, **kw: Any) -> dict[str, Any]:
    targets = [target(e, legend, ref=chr(ord("A") + i)) for i, (e, legend) in enumerate(exprs)]
    custom = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 25 if stack else 10,
        "gradientMode": "none",
        "showPoints": "never",
        "spanNulls": False,
        "axisSoftMin": 0,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    options = {"legend": LEGEND_TABLE, "tooltip": TOOLTIP}
    return panel("timeseries", title, description, targets, unit, w=w, h=h, custom=custom, options=options, **kw)


def bargauge(title: str, description: str, expr: str, unit: str, legend: str, *, w: int = 8, h: int = 8,
             instant: bool = True, **kw: Any) -> dict[str, Any]:
    options = {
        "displayMode": "gradient",
        "orientation": "horizontal",
        "reduceOptions": REDUCE_LAST,
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
    }
    return panel("bargauge", title, description, [target(expr, legend, instant=instant)], unit, w=w, h=h,
                 options=options, **kw)


def piechart(title: str, description: str, expr: str, unit: str, legend: str, *, w: int = 8, h: int = 8,
             **kw: Any) -> dict[str, Any]:
    options = {
        "pieType": "donut",
        "displayLabels": ["percent"],
        "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"]},
        "reduceOptions": REDUCE_LAST,
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel("piechart", title, description, [target(expr, legend, instant=True)], unit, w=w, h=h,
                 options=options, **kw)


def table(title: str, description: str, expr: str, unit: str, value_name: str, *, w: int = 24, h: int = 8,
          hide: tuple[str, ...] = ("Time",), **kw: Any) -> dict[str, Any]:
    options = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    organize = {"id": "organize", "options": {"excludeByName": dict.fromkeys(hide, True),
                                              "renameByName": {"Value": value_name}}}
    return panel("table", title, description, [target(expr, instant=True, table=True)], unit, w=w, h=h,
                 options=options, transformations=[organize], **kw)


def timeline(title: str, description: str, expr: str, legend: str, *, w: int = 12, h: int = 6,
             mappings: list[dict[str, Any]] | None = None, unit: str = "bool_yes_no",
             thresholds: Steps | None = None) -> dict[str, Any]:
    options = {
        "mergeValues": True,
        "showValue": "auto",
        "alignValue": "left",
        "rowHeight": 0.9,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "single", "sort": "none"},
    }
    return panel("state-timeline", title, description, [target(expr, legend)], unit, w=w, h=h,
                 mappings=mappings if mappings is not None else UP_MAPPINGS, color="thresholds",
                 thresholds=thresholds or [("red", None), ("green", 1)],
                 custom={"fillOpacity": 70, "lineWidth": 0}, options=options)


def forecast_barchart(title: str, description: str, *, w: int = 12, h: int = 8) -> dict[str, Any]:
    """Forecast by hours ahead: one bar group per hour, one bar per zone (table -> matrix -> sorted)."""
    expr = (f'min by (grid_zone, hours_ahead) (footprint_grid_forecast_grams_per_kilowatt_hour'
            f'{{{ZONE}, signal="average"}})')
    transformations = [
        {"id": "groupingToMatrix", "options": {"columnField": "grid_zone", "rowField": "hours_ahead",
                                               "valueField": "Value", "emptyValue": "null"}},
        {"id": "organize", "options": {"renameByName": {"hours_ahead\\grid_zone": "hours_ahead"}}},
        # Sort numerically (labels are strings: "10" < "2"), then back to a string x axis.
        {"id": "convertFieldType", "options": {"fields": {}, "conversions": [
            {"targetField": "hours_ahead", "destinationType": "number"}]}},
        {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "hours_ahead", "desc": False}]}},
        {"id": "convertFieldType", "options": {"fields": {}, "conversions": [
            {"targetField": "hours_ahead", "destinationType": "string"}]}},
    ]
    options = {
        "xField": "hours_ahead",
        "orientation": "vertical",
        "showValue": "never",
        "stacking": "none",
        "groupWidth": 0.7,
        "barWidth": 0.9,
        "barRadius": 0,
        "fullHighlight": False,
        "xTickLabelRotation": 0,
        "xTickLabelSpacing": 0,
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
        "tooltip": {"mode": "multi", "sort": "none"},
    }
    return panel("barchart", title, description, [target(expr, instant=True, table=True)],
                 "suffix:gCO2e/kWh", w=w, h=h, thresholds=INTENSITY_STEPS, options=options,
                 custom={"axisLabel": "hours ahead", "fillOpacity": 80, "lineWidth": 1, "axisSoftMin": 0},
                 transformations=transformations)


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_size": (24, 1)}


def layout(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place panels left to right on the 24-column grid, wrapping lines; ids follow the order."""
    placed = []
    x = y = line_h = 0
    for pid, item in enumerate(items, start=1):
        p = dict(item)
        w, h = p.pop("_size")
        if x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        p["id"] = pid
        p["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        placed.append(p)
        x += w
        line_h = max(line_h, h)
        if x == 24:
            x, y, line_h = 0, y + line_h, 0
    return placed


def datasource_variable() -> dict[str, Any]:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(name: str, label: str, query: str, *, multi: bool = True) -> dict[str, Any]:
    """A label_values() variable; multi ones have All = .*, which also matches series without the label."""
    out = {
        "current": {},
        "datasource": DS,
        "definition": query,
        "hide": 0,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if multi:
        out["allValue"] = ".*"
        out["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return out


CLUSTER_VAR = query_variable("cluster", "Cluster", "label_values(footprint_build_info, cluster)")
INSTANCE_VAR = query_variable(
    "instance", "Node", 'label_values(footprint_node_power_watts{cluster=~"$cluster"}, instance)'
)


def dashboard(uid: str, title: str, description: str, variables: list[dict[str, Any]],
              items: list[dict[str, Any]], time_from: str = "now-6h") -> dict[str, Any]:
    return {
        "annotations": {"list": [{
            "builtIn": 1,
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts",
            "type": "dashboard",
        }]},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [{
            "asDropdown": True,
            "icon": "external link",
            "includeVars": False,
            "keepTime": True,
            "tags": ["footprint"],
            "targetBlank": False,
            "title": "Footprint dashboards",
            "tooltip": "",
            "type": "dashboards",
            "url": "",
        }],
        "panels": layout(items),
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["footprint", "energy", "carbon"],
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# --- Overview -------------------------------------------------------------------------------------


def increase_range(metric: str, selector: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (increase({metric}{{{selector}}}[$__range]))"


def overview() -> dict[str, Any]:
    node_g = increase_range("footprint_node_emissions_grams_total", NODE)
    embodied_g = increase_range("footprint_embodied_emissions_grams_total", NODE)
    total_g = f"({node_g} + ({embodied_g} or vector(0)))"
    today = "Today so far (midnight in the dashboard's time zone until now)."
    month = "This calendar month so far."
    items = [
        row("Now"),
        stat("Power now", "IT power drawn by the selected nodes (GPUs, CPU packages, DRAM; RAPL psys and core "
             "are never added twice).", f"sum(instance:footprint_node_power_watts:sum{{{NODE}}})", "watt"),
        stat("Facility power now", "IT power times PUE: what the facility draws from the grid for these nodes.",
             f"sum(instance:footprint_facility_power_watts:sum{{{NODE}}})", "watt"),
        stat("Operational emissions rate", "Operational CO2e per hour over the last 5 minutes: energy x PUE x the "
             "grid intensity valid when the energy was drawn.",
             f"sum(instance:footprint_node_emissions_grams:rate1h{{{NODE}}})", "si:gCO2e/h"),
        stat("Embodied emissions rate", "Manufacturing CO2e of the hardware, amortised over its lifetime, per hour.",
             f"sum(instance:footprint_embodied_emissions_grams:rate1h{{{NODE}}})", "si:gCO2e/h"),
        stat("Grid intensity now", "Carbon intensity the emissions counters use now, per grid zone "
             "(location-based average unless marginal accounting was chosen). Red from 400 gCO2e/kWh, "
             "the FootprintGridIntensityHigh default.",
             f"max by (grid_zone) (footprint_grid_accounting_intensity_grams_per_kilowatt_hour{{{NODE}}})",
             "suffix:gCO2e/kWh", legend="{{grid_zone}}", thresholds=INTENSITY_STEPS),
        stat("Greenest window ahead", "Lowest forecast intensity (average signal) in the forecast horizon, per "
             "zone: what waiting for the cleanest hour would give.",
             f'min by (grid_zone) (footprint_grid_forecast_min_grams_per_kilowatt_hour{{{ZONE}, signal="average"}})',
             "suffix:gCO2e/kWh", legend="{{grid_zone}}", thresholds=INTENSITY_STEPS),
        row("Today and this month"),
        stat("Energy today", f"IT energy of the selected nodes. {today}",
             f"{increase_range('footprint_node_energy_joules_total', NODE)} {KWH}", "kwatth",
             instant=True, time_from="now/d"),
        stat("Operational CO2e today", f"Operational emissions (PUE and grid intensity included). {today}",
             f"{node_g} {KG}", "masskg", instant=True, time_from="now/d"),
        stat("Embodied CO2e today", f"Manufacturing emissions amortised over the hardware lifetime. {today}",
             f"{embodied_g} {KG}", "masskg", instant=True, time_from="now/d"),
        stat("Energy this month", f"IT energy of the selected nodes. {month}",
             f"{increase_range('footprint_node_energy_joules_total', NODE)} {KWH}", "kwatth",
             instant=True, time_from="now/M"),
        stat("Operational CO2e this month", f"Operational emissions. {month}", f"{node_g} {KG}", "masskg",
             instant=True, time_from="now/M"),
        stat("Embodied CO2e this month", f"Amortised manufacturing emissions. {month}", f"{embodied_g} {KG}",
             "masskg", instant=True, time_from="now/M"),
        stat("Total CO2e this month", f"Operational plus embodied emissions. {month}", f"{total_g} {KG}",
             "masskg", w=8, instant=True, time_from="now/M"),
        stat("Like driving a car", f"Operational plus embodied CO2e this month as kilometres driven in an average "
             f"passenger car, at {CAR_GRAMS_PER_KM} gCO2e per km (UK DESNZ greenhouse gas conversion factors "
             "2023, 'average car, unknown fuel', about 0.17 kgCO2e per vehicle-km). An order of magnitude, "
             "not an offset.", f"{total_g} / {CAR_GRAMS_PER_KM}", "lengthkm", w=8, instant=True,
             time_from="now/M"),
        stat("Like flying London - New York", "Operational plus embodied CO2e this month as one-way economy "
             f"seats London Heathrow - New York JFK: {FLIGHT_KM} km x {FLIGHT_GRAMS_PER_PKM} gCO2e per "
             f"passenger-km = {FLIGHT_GRAMS / 1000:.0f} kgCO2e per seat (UK DESNZ greenhouse gas conversion "
             "factors 2023, long-haul economy including radiative forcing, about 0.15 kgCO2e/pkm). An order "
             "of magnitude, not an offset.", f"{total_g} / {FLIGHT_GRAMS}", "suffix:flights", w=8,
             instant=True, decimals=2, time_from="now/M"),
        row("Over time"),
        timeseries("Power by node", "IT power per node (exporter instance).",
                   [(f"instance:footprint_node_power_watts:sum{{{NODE}}}", "{{instance}}")], "watt"),
        timeseries("Emissions rate", "Operational and embodied CO2e per hour, all selected nodes.",
                   [(f"sum(instance:footprint_node_emissions_grams:rate1h{{{NODE}}})", "operational"),
                    (f"sum(instance:footprint_embodied_emissions_grams:rate1h{{{NODE}}})", "embodied")],
                   "si:gCO2e/h", stack=True),
        timeseries("Grid intensity", "Intensity the emissions counters use, per zone and provider. Red from "
                   "400 gCO2e/kWh.",
                   [(f"max by (grid_zone, provider, signal) "
                     f"(footprint_grid_accounting_intensity_grams_per_kilowatt_hour{{{NODE}}})",
                     "{{grid_zone}} {{provider}} ({{signal}})")],
                   "suffix:gCO2e/kWh", thresholds=INTENSITY_STEPS),
        forecast_barchart("Grid intensity forecast", "Forecast average intensity for each hour ahead, per zone "
                          "(from providers that publish a forecast). Shift flexible work to the lowest bars."),
        row("Who emits"),
        bargauge("Top namespaces by emissions", "Attributed operational CO2e over the dashboard's time range, "
                 "ten largest namespaces.",
                 f"topk(10, {increase_range('footprint_workload_emissions_grams_total', CLUSTER, 'namespace')}) {KG}",
                 "masskg", "{{namespace}}"),
        bargauge("Top pods by emissions", "Attributed operational CO2e over the dashboard's time range, ten "
                 "largest pods.",
                 f"topk(10, {increase_range('footprint_workload_emissions_grams_total', CLUSTER, 'namespace, pod')})"
                 f" {KG}", "masskg", "{{namespace}}/{{pod}}"),
        piechart("Training vs inference", "Attributed operational CO2e over the dashboard's time range by "
                 "workload kind (pod label, or recognised operators; unknown otherwise).",
                 f"{increase_range('footprint_workload_emissions_grams_total', CLUSTER, 'workload')} {KG}",
                 "masskg", "{{workload}}"),
        timeseries("Power by workload kind", "Attributed power by workload kind (5-minute average).",
                   [(f"sum by (workload) (cluster_workload:footprint_workload_power_watts:sum{{{CLUSTER}}})",
                     "{{workload}}")], "watt", stack=True),
        timeseries("Emissions rate by workload kind", "Attributed operational CO2e per hour by workload kind.",
                   [(f"sum by (workload) (cluster_workload:footprint_workload_emissions_grams:rate1h{{{CLUSTER}}})",
                     "{{workload}}")], "si:gCO2e/h", stack=True),
    ]
    return dashboard("footprint-overview", "Footprint / Overview",
                     "Power, energy and CO2e of ML machines now, today and this month; the grid; who emits.",
                     [CLUSTER_VAR, INSTANCE_VAR, query_variable(
                         "grid_zone", "Grid zone",
                         'label_values(footprint_grid_carbon_intensity_grams_per_kilowatt_hour{cluster=~"$cluster"}, '
                         "grid_zone)")], items)


# --- Nodes and GPUs -------------------------------------------------------------------------------


def nodes() -> dict[str, Any]:
    dev = f'{NODE}, component=~"$component"'
    gpu = f'{NODE}, component="gpu"'
    items = [
        row("Fleet"),
        stat("Nodes reporting", "Exporters scraped now.", f"count(footprint_build_info{{{NODE}}})", "short",
             sparkline=False),
        stat("GPUs", "GPUs seen by NVML on the selected nodes.",
             f'count(footprint_device_info{{{NODE}, component="gpu"}})', "short", sparkline=False),
        stat("IT power now", "Sum of node power (no double counting).",
             f"sum(instance:footprint_node_power_watts:sum{{{NODE}}})", "watt"),
        stat("Facility power now", "IT power times PUE.",
             f"sum(instance:footprint_facility_power_watts:sum{{{NODE}}})", "watt"),
        stat("PUE", "Configured power usage effectiveness of the facility (1.0 = no overhead counted).",
             f"max(footprint_pue_ratio{{{NODE}}})", "suffix:×", decimals=2, sparkline=False,
             thresholds=[("green", None), ("yellow", 1.4), ("orange", 1.6)]),
        stat("GPU power vs limit", "GPU power as a share of the summed power limits, per node.",
             f"instance:footprint_gpu_power_limit:ratio{{{NODE}}}", "percentunit", legend="{{instance}}",
             thresholds=GPU_LIMIT_STEPS, min_value=0, max_value=1),
        row("Power"),
        timeseries("Power by node", "IT power per node.",
                   [(f"instance:footprint_node_power_watts:sum{{{NODE}}}", "{{instance}}")], "watt"),
        timeseries("Power by component", "IT power per node and component (psys, which overlaps cpu and dram, "
                   "is left out).",
                   [(f'instance_component:footprint_power_watts:sum{{{NODE}, component=~"$component"}}',
                     "{{instance}} {{component}}")], "watt", stack=True),
        timeseries("Power by device", "Power per device with its measurement source: nvml (hardware energy "
                   "counter), nvml_power (integrated power), rapl, or estimate (modelled from utilisation).",
                   [(f"footprint_power_watts{{{dev}}}", "{{instance}} {{component}} {{device}} ({{source}})")],
                   "watt"),
        bargauge("GPU power vs limit by device", "Each GPU's power as a share of its power limit now.",
                 f"instance_device:footprint_gpu_power_limit:ratio{{{NODE}}}", "percentunit",
                 "{{instance}} GPU {{device}}", w=12, instant=False, thresholds=GPU_LIMIT_STEPS,
                 min_value=0, max_value=1),
        row("GPUs"),
        timeseries("GPU utilisation", "Share of time a kernel ran on each GPU (NVML).",
                   [(f"footprint_gpu_utilization_ratio{{{NODE}}}", "{{instance}} GPU {{device}}")],
                   "percentunit", w=8, min_value=0, max_value=1),
        timeseries("GPU power limit", "Enforced power limit of each GPU (NVML).",
                   [(f"footprint_gpu_power_limit_watts{{{NODE}}}", "{{instance}} GPU {{device}}")], "watt", w=8),
        timeseries("GPU power while idle", f"Power of each GPU while its utilisation is below "
                   f"{IDLE_UTILISATION:.0%} (0 while busy): energy spent doing nothing.",
                   [(f"sum by (cluster, job, instance, device) (footprint_power_watts{{{gpu}}}) "
                     f"* on (cluster, job, instance, device) "
                     f"(footprint_gpu_utilization_ratio{{{NODE}}} < bool {IDLE_UTILISATION})",
                     "{{instance}} GPU {{device}}")], "watt", w=8),
        row("Energy and emissions"),
        bargauge("Energy by device", "Energy per device over the dashboard's time range.",
                 f"{increase_range('footprint_energy_joules_total', dev, 'instance, component, device')} {KWH}",
                 "kwatth", "{{instance}} {{component}} {{device}}"),
        timeseries("Operational emissions rate by device", "Operational CO2e per hour per device (only devices "
                   "counted in the node total).",
                   [(f"sum by (instance, component, device) "
                     f"(rate(footprint_emissions_grams_total{{{dev}}}[$__rate_interval])) * 3600",
                     "{{instance}} {{component}} {{device}}")], "si:gCO2e/h", w=8),
        timeseries("Embodied emissions rate by device", "Manufacturing CO2e amortised over the hardware "
                   "lifetime, per hour.",
                   [(f"sum by (instance, component, device) "
                     f"(rate(footprint_embodied_emissions_grams_total{{{dev}}}[$__rate_interval])) * 3600",
                     "{{instance}} {{component}} {{device}}")], "si:gCO2e/h", w=8),
        timeseries("Facility overhead power", "Power the facility spends beyond IT load (node power x (PUE - 1)): "
                   "cooling, power distribution.",
                   [(f"sum by (instance) (rate(footprint_facility_overhead_energy_joules_total{{{NODE}}}"
                     f"[$__rate_interval]))", "{{instance}}")], "watt"),
        bargauge("Energy by node", "IT energy per node over the dashboard's time range.",
                 f"{increase_range('footprint_node_energy_joules_total', NODE, 'instance')} {KWH}", "kwatth",
                 "{{instance}}", w=12),
        timeseries("Power by process group", "Bare metal (--attribution.processes): attributed power per "
                   "process group (process name or Slurm job id), 5-minute average. Pods are on the Workloads "
                   "dashboard; process groups never carry namespace or pod.",
                   [(f"sum by (instance, process_group) "
                     f"(instance_process_group:footprint_process_group_power_watts:sum{{{NODE}}})",
                     "{{instance}} {{process_group}}")], "watt", w=24, stack=True),
        row("Devices and meters"),
        table("Devices", "Every metered device with its vendor, model, identifiers, driver, AMD "
              "partition mode and measurement source; the value is its power now.",
              f"footprint_power_watts{{{dev}}} * on (cluster, job, instance, component, device) "
              f"group_left (vendor, model, uuid, index, driver_version, compute_partition) "
              f"footprint_device_info{{{NODE}}}",
              "watt", "Power", hide=("Time", "__name__")),
        piechart("Devices by measurement source", "How each device's energy is measured: hardware counters "
                 "(nvml, amdsmi, rapl), integrated power (*_power) or an estimate.",
                 f"count by (source) (footprint_power_watts{{{dev}}})", "short", "{{source}}", w=6),
        timeline("Meters up", "Whether each meter's last read succeeded.",
                 f"footprint_meter_up{{{NODE}}}", "{{instance}} {{meter}}", w=9),
        timeline("Devices up", "Whether each device could be read in the last sample.",
                 f"footprint_device_up{{{dev}}}", "{{instance}} {{component}} {{device}}", w=9),
        timeseries("Sample duration (p99)", "Time one sample of all meters takes; red near the sample interval "
                   "(1 s by default).",
                   [(f"histogram_quantile(0.99, sum by (instance, le) "
                     f"(rate(footprint_sample_duration_seconds_bucket{{{NODE}}}[$__rate_interval])))",
                     "{{instance}}")], "s", w=24, thresholds=[("green", None), ("orange", 0.5), ("red", 1)]),
    ]
    component_var = query_variable(
        "component", "Component",
        'label_values(footprint_power_watts{cluster=~"$cluster", instance=~"$instance"}, component)',
    )
    return dashboard("footprint-nodes", "Footprint / Nodes and GPUs",
                     "Per node and device: power, energy, utilisation, power limits, measurement source and "
                     "meter health.", [CLUSTER_VAR, INSTANCE_VAR, component_var], items)


# --- Workloads ------------------------------------------------------------------------------------


def workloads() -> dict[str, Any]:
    ns = 'cluster=~"$cluster", namespace=~"$namespace"'
    wl = WORKLOAD
    idle_gpu = f'{CLUSTER}, component="gpu"'
    items = [
        row("Attribution"),
        stat("Attributed share of energy", "Share of node energy attributed to pods over the last interval; the "
             "rest is idle or system energy (unattributed).",
             f"sum(rate(footprint_workload_energy_joules_total{{{CLUSTER}}}[$__rate_interval])) / "
             f"sum(rate(footprint_node_energy_joules_total{{{CLUSTER}}}[$__rate_interval]))", "percentunit",
             w=6, thresholds=[("orange", None), ("green", 0.5)], min_value=0, max_value=1),
        stat("Attributed energy", "Energy attributed to the selected pods over the dashboard's time range.",
             f"{increase_range('footprint_workload_energy_joules_total', wl)} {KWH}", "kwatth", w=6,
             instant=True),
        stat("Attributed CO2e", "Operational CO2e attributed to the selected pods over the dashboard's time range.",
             f"{increase_range('footprint_workload_emissions_grams_total', wl)} {KG}", "masskg", w=6,
             instant=True),
        stat("Unattributed (idle) CO2e", "Operational CO2e of energy no pod used (idle GPUs, system) over the "
             "dashboard's time range.",
             f"{increase_range('footprint_unattributed_emissions_grams_total', CLUSTER)} {KG}", "masskg", w=6,
             instant=True),
        row("Namespaces"),
        timeseries("Power by namespace", "Attributed power per namespace (5-minute average).",
                   [(f"sum by (namespace) (namespace:footprint_workload_power_watts:sum{{{ns}}})", "{{namespace}}")],
                   "watt", stack=True),
        timeseries("Emissions rate by namespace", "Attributed operational CO2e per hour per namespace.",
                   [(f"sum by (namespace) (namespace:footprint_workload_emissions_grams:rate1h{{{ns}}})",
                     "{{namespace}}")], "si:gCO2e/h", stack=True),
        timeseries("Power by workload kind", "Attributed power by namespace and workload kind.",
                   [(f"namespace_workload:footprint_workload_power_watts:sum{{{wl}}}",
                     "{{namespace}} {{workload}}")], "watt", stack=True),
        timeseries("Power by component", "Attributed power per namespace and component (gpu, cpu, dram).",
                   [(f"sum by (namespace, component) "
                     f"(rate(footprint_workload_energy_joules_total{{{wl}}}[$__rate_interval]))",
                     "{{namespace}} {{component}}")], "watt", stack=True),
        row("Pods"),
        table("Energy by pod", "Attributed energy per pod over the dashboard's time range.",
              f"sort_desc({increase_range('footprint_workload_energy_joules_total', wl, 'namespace, pod, workload')}"
              f" {KWH})", "kwatth", "Energy", w=12),
        table("CO2e by pod", "Attributed operational CO2e per pod over the dashboard's time range.",
              f"sort_desc({increase_range('footprint_workload_emissions_grams_total', wl, 'namespace, pod, workload')}"
              f" {KG})", "masskg", "CO2e", w=12),
        timeseries("Emissions rate by pod", "Attributed operational CO2e per hour per pod.",
                   [(f"namespace_pod:footprint_workload_emissions_grams:rate1h{{{ns}}}", "{{namespace}}/{{pod}}")],
                   "si:gCO2e/h", w=24),
        row("Inference efficiency"),
        timeseries("Energy per generated token", "Attributed energy of each serving pod divided by the tokens "
                   "it generated (vLLM vllm:generation_tokens_total), 5-minute windows.",
                   [(f"namespace_pod:footprint_inference_joules_per_token:ratio{{{ns}}}", "{{namespace}}/{{pod}}")],
                   "joule", w=8),
        timeseries("CO2e per 1,000 tokens", "Attributed operational CO2e of each serving pod per 1,000 "
                   "generated tokens.",
                   [(f"namespace_pod:footprint_inference_grams_per_1k_tokens:ratio{{{ns}}}",
                     "{{namespace}}/{{pod}}")], "massg", w=8),
        timeseries("Generated tokens", "Token generation rate of each serving pod (vLLM), 5-minute windows.",
                   [(f"namespace_pod:vllm_generation_tokens:rate5m{{{ns}}}", "{{namespace}}/{{pod}}")],
                   "suffix:tokens/s", w=8),
        timeseries("Energy per request", "Attributed energy per successful request (vLLM "
                   "vllm:request_success_total).",
                   [(f"namespace_pod:footprint_inference_joules_per_request:ratio{{{ns}}}",
                     "{{namespace}}/{{pod}}")], "joule"),
        timeseries("CO2e per request", "Attributed operational CO2e per successful request.",
                   [(f"namespace_pod:footprint_inference_grams_per_request:ratio{{{ns}}}",
                     "{{namespace}}/{{pod}}")], "massg"),
        row("Idle-GPU waste"),
        timeseries("GPU power while idle", f"Power of each GPU while its utilisation is below "
                   f"{IDLE_UTILISATION:.0%} (0 while busy). Scale idle replicas down or power-cap.",
                   [(f'sum by (cluster, job, instance, device) (footprint_power_watts{{{CLUSTER}, component="gpu"}}) '
                     f"* on (cluster, job, instance, device) "
                     f"(footprint_gpu_utilization_ratio{{{CLUSTER}}} < bool {IDLE_UTILISATION})",
                     "{{instance}} GPU {{device}}")], "watt"),
        timeseries("Unattributed GPU power", "GPU power no pod used (idle or unallocated GPUs).",
                   [(f"sum by (instance, device) (rate(footprint_unattributed_energy_joules_total"
                     f'{{{CLUSTER}, component="gpu"}}[$__rate_interval]))', "{{instance}} GPU {{device}}")], "watt"),
        bargauge("Unattributed GPU energy", "GPU energy no pod used over the dashboard's time range.",
                 f"{increase_range('footprint_unattributed_energy_joules_total', idle_gpu, 'instance, device')} {KWH}",
                 "kwatth", "{{instance}} GPU {{device}}", w=12),
        bargauge("Unattributed GPU CO2e", "Operational CO2e of GPU energy no pod used over the dashboard's "
                 "time range.",
                 f"{increase_range('footprint_unattributed_emissions_grams_total', idle_gpu, 'instance, device')} {KG}",
                 "masskg", "{{instance}} GPU {{device}}", w=12),
    ]
    wl_query = "label_values(footprint_workload_energy_joules_total{{cluster=~\"$cluster\"{extra}}}, {label})"
    variables = [
        CLUSTER_VAR,
        query_variable("namespace", "Namespace", wl_query.format(extra="", label="namespace")),
        query_variable("workload", "Workload kind",
                       wl_query.format(extra=', namespace=~"$namespace"', label="workload")),
    ]
    return dashboard("footprint-workloads", "Footprint / Workloads",
                     "Energy and CO2e per namespace, pod and workload kind; inference efficiency per token; "
                     "idle-GPU waste.", variables, items)


# --- Grid -----------------------------------------------------------------------------------------


def grid() -> dict[str, Any]:
    items = [
        row("Now"),
        stat("Intensity in use", "The value the emissions counters use now, per zone.",
             f"max by (grid_zone) (footprint_grid_accounting_intensity_grams_per_kilowatt_hour{{{ZONE}}})",
             "suffix:gCO2e/kWh", w=6, legend="{{grid_zone}}", thresholds=INTENSITY_STEPS),
        stat("Effective intensity", "Operational CO2e per IT kWh actually drawn over the last 5 minutes, PUE "
             "included: the intensity the cluster paid, weighted by where the power went.",
             f"cluster:footprint_effective_intensity_grams_per_kilowatt_hour:ratio{{{CLUSTER}}}",
             "suffix:gCO2e/kWh", w=6, thresholds=INTENSITY_STEPS),
        stat("Greenest window", "Lowest forecast intensity ahead, per zone and signal.",
             f"min by (grid_zone, signal) (footprint_grid_forecast_min_grams_per_kilowatt_hour{{{ZONE}}})",
             "suffix:gCO2e/kWh", w=6, legend="{{grid_zone}} ({{signal}})", thresholds=INTENSITY_STEPS),
        stat("Greenest window starts", "When the lowest forecast intensity begins, per zone and signal.",
             f"min by (grid_zone, signal) (footprint_grid_forecast_min_start_timestamp_seconds{{{ZONE}}}) * 1000",
             "dateTimeFromNow", w=6, legend="{{grid_zone}} ({{signal}})", sparkline=False),
        stat("Saving by waiting", "How much lower the greenest forecast window is than the intensity now, per "
             "zone and signal: the share of operational CO2e that shifting flexible work would avoid.",
             f"1 - min by (grid_zone, signal) (footprint_grid_forecast_min_grams_per_kilowatt_hour{{{ZONE}}}) "
             f"/ on (grid_zone, signal) "
             f"min by (grid_zone, signal) (footprint_grid_carbon_intensity_grams_per_kilowatt_hour{{{ZONE}}} > 0)",
             "percentunit", w=6, legend="{{grid_zone}} ({{signal}})",
             thresholds=[("text", None), ("green", 0.2)]),
        stat("Fallback in use", "Nodes whose intensity comes from a provider other than the first in the chain "
             "(the primary failed or went stale).",
             f"sum(footprint_grid_fallback_active{{{NODE}}})", "short", w=6, sparkline=False,
             thresholds=[("green", None), ("orange", 1)]),
        stat("Providers down", "Providers whose last fetch failed, across the selected nodes.",
             f"count(footprint_grid_provider_up{{{NODE}}} == 0) or vector(0)", "short", w=6, sparkline=False,
             thresholds=[("green", None), ("orange", 1)]),
        stat("Age of value in use", "Oldest intensity in use across nodes; red at the default grid.max-age (2 h), "
             "after which the next provider in the chain takes over.",
             f"max(footprint_grid_intensity_age_seconds{{{NODE}}})", "s", w=6, thresholds=AGE_STEPS),
        row("Over time"),
        timeseries("Intensity by provider and signal", "Every provider's latest value per zone: average "
                   "(location-based, drives the counters) and marginal (for scheduling decisions; never summed "
                   "with average).",
                   [(f"max by (grid_zone, provider, signal) "
                     f"(footprint_grid_carbon_intensity_grams_per_kilowatt_hour{{{ZONE}}})",
                     "{{grid_zone}} {{provider}} ({{signal}})")],
                   "suffix:gCO2e/kWh", w=24, h=9, thresholds=INTENSITY_STEPS),
        timeseries("Intensity in use vs greenest window", "The value in use and the lowest forecast value ahead.",
                   [(f"max by (grid_zone) (footprint_grid_accounting_intensity_grams_per_kilowatt_hour{{{ZONE}}})",
                     "{{grid_zone}} in use"),
                    (f'min by (grid_zone) (footprint_grid_forecast_min_grams_per_kilowatt_hour{{{ZONE}, '
                     f'signal="average"}})', "{{grid_zone}} greenest ahead")],
                   "suffix:gCO2e/kWh", thresholds=INTENSITY_STEPS),
        forecast_barchart("Forecast", "Forecast average intensity for each hour ahead, per zone."),
        row("Health"),
        timeline("Provider up", "Whether each provider's last fetch succeeded.",
                 f"max by (instance, provider) (footprint_grid_provider_up{{{NODE}}})", "{{instance}} {{provider}}"),
        timeline("Fallback active", "1 while a node uses a provider other than the first in its chain.",
                 f"max by (instance) (footprint_grid_fallback_active{{{NODE}}})", "{{instance}}",
                 mappings=[{"type": "value", "options": {
                     "0": {"text": "Primary", "color": "green", "index": 0},
                     "1": {"text": "Fallback", "color": "orange", "index": 1}}}],
                 thresholds=[("green", None), ("orange", 1)]),
        timeseries("Age of value in use", "Seconds since the intensity in use was published or fetched; red at "
                   "the default grid.max-age.",
                   [(f"max by (instance, provider) (footprint_grid_intensity_age_seconds{{{NODE}}})",
                     "{{instance}} {{provider}}")], "s", thresholds=AGE_STEPS),
        timeseries("Time since provider published", "Seconds since each provider says its latest value holds.",
                   [(f"time() - max by (provider) (footprint_grid_intensity_updated_timestamp_seconds{{{NODE}}})",
                     "{{provider}}")], "s", thresholds=AGE_STEPS),
        timeseries("Fetch errors", "Failed provider fetches within each rate window, by provider and reason "
                   "(http_5xx, rate_limited, timeout, connection, malformed, ...).",
                   [(f"sum by (provider, reason) "
                     f"(increase(footprint_grid_fetch_errors_total{{{NODE}}}[$__rate_interval]))",
                     "{{provider}} {{reason}}")], "short", w=24),
    ]
    return dashboard("footprint-grid", "Footprint / Grid",
                     "Grid carbon intensity by provider and signal, forecast and greenest window, staleness "
                     "and fallback.",
                     [CLUSTER_VAR, INSTANCE_VAR, query_variable(
                         "grid_zone", "Grid zone",
                         'label_values(footprint_grid_carbon_intensity_grams_per_kilowatt_hour{cluster=~"$cluster"}, '
                         "grid_zone)")], items, time_from="now-24h")


# --- output ---------------------------------------------------------------------------------------

DASHBOARDS = {"overview": overview, "nodes-gpus": nodes, "workloads": workloads, "grid": grid}


def importable(board: dict[str, Any]) -> dict[str, Any]:
    """The grafana.com copy: Grafana asks for a Prometheus data source on import (`${DS_PROMETHEUS}`)."""
    out = copy.deepcopy(board)
    for var in out["templating"]["list"]:
        if var["type"] == "datasource":
            var["current"] = {"selected": False, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"}
    inputs = {
        "__inputs": [{
            "name": "DS_PROMETHEUS",
            "label": "Prometheus",
            "description": "Prometheus that scrapes the Footprint exporter and loads its recording rules",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            *({"type": "panel", "id": kind, "name": kind, "version": ""}
              for kind in sorted({p["type"] for p in board["panels"] if p["type"] != "row"})),
        ],
    }
    return {**inputs, **out}


def render() -> dict[Path, str]:
    """Every output file and its exact text."""
    files = {}
    for name, build in DASHBOARDS.items():
        board = build()
        files[PROVISIONED_DIR / f"{name}.json"] = json.dumps(board, indent=2, ensure_ascii=False) + "\n"
        files[IMPORT_DIR / f"{name}.json"] = json.dumps(importable(board), indent=2, ensure_ascii=False) + "\n"
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in render().items():
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.relative_to(REPO))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date (run python scripts/gen_dashboards.py): " + ", ".join(map(str, stale)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
