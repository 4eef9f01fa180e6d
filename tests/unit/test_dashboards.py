"""Structure of the Grafana dashboards: what a dashboard linter and Grafana itself would reject.

The end-to-end proof that every query returns data is tests/integration/test_dashboards_e2e.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROVISIONED = REPO / "grafana" / "dashboards"
IMPORTABLE = REPO / "grafana" / "import"
DS = {"type": "prometheus", "uid": "${datasource}"}

# uids are what links, bookmarks and the Helm chart's ConfigMaps refer to: changing one breaks them.
UIDS = {
    "overview.json": "footprint-overview",
    "nodes-gpus.json": "footprint-nodes",
    "workloads.json": "footprint-workloads",
    "grid.json": "footprint-grid",
}
# Grafana unit ids the dashboards may use (a typo renders as a bare number), plus custom units.
KNOWN_UNITS = {"watt", "kwatth", "joule", "masskg", "massg", "lengthkm", "percentunit", "short", "s",
               "dateTimeFromNow", "bool_yes_no"}
CUSTOM_UNIT = re.compile(r"^(suffix|si):\S.*$")
BUILTIN_VARIABLES = {"__rate_interval", "__range", "__interval"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def boards(folder: Path = PROVISIONED) -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, load(p)) for p in sorted(folder.glob("*.json"))]


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in board["panels"]:
        if p["type"] == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def all_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [*board["panels"], *(c for p in board["panels"] if p["type"] == "row" for c in p.get("panels", []))]


def exprs(board: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in data_panels(board) for t in p["targets"]]


def test_four_dashboards_with_stable_uids() -> None:
    assert {name: b["uid"] for name, b in boards()} == UIDS
    assert {name: b["uid"] for name, b in boards(IMPORTABLE)} == UIDS


def test_committed_json_matches_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("gen_dashboards", REPO / "scripts" / "gen_dashboards.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rendered = gen.render()
    on_disk = {p: p.read_text(encoding="utf-8") for folder in (PROVISIONED, IMPORTABLE) for p in folder.glob("*.json")}
    assert set(rendered) == set(on_disk), "run: python scripts/gen_dashboards.py"
    stale = [str(p.relative_to(REPO)) for p, text in rendered.items() if on_disk[p] != text]
    assert not stale, f"out of date, run python scripts/gen_dashboards.py: {stale}"


@pytest.mark.parametrize(("name", "board"), boards())
def test_schema_and_provisioning_shape(name: str, board: dict[str, Any]) -> None:
    assert board["schemaVersion"] == 39
    assert "__inputs" not in board and "__requires" not in board, "provisioned copies carry no __inputs"
    assert board["id"] is None
    assert board["title"].startswith("Footprint / ")


@pytest.mark.parametrize(("name", "board"), boards())
def test_panel_ids_unique_and_grid_positions_do_not_overlap(name: str, board: dict[str, Any]) -> None:
    panels = all_panels(board)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {sorted(ids)}"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0
        assert g["x"] + g["w"] <= 24, f"{p['title']!r} runs past column 24"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r} at {(x, y)}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize(("name", "board"), boards())
def test_one_prometheus_datasource_variable_used_by_every_panel_and_target(name: str, board: dict[str, Any]) -> None:
    ds_vars = [v for v in board["templating"]["list"] if v["type"] == "datasource"]
    assert len(ds_vars) == 1
    assert ds_vars[0]["name"] == "datasource" and ds_vars[0]["query"] == "prometheus"
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            assert v["datasource"] == DS, v["name"]
    for p in data_panels(board):
        assert p["datasource"] == DS, p["title"]
        assert p["targets"], f"{p['title']!r} has no query"
        for t in p["targets"]:
            assert t["datasource"] == DS, p["title"]
    # A mixed or hard-coded data source anywhere (e.g. an annotation) would show up as another uid.
    uids = set(re.findall(r'"uid": "([^"]*)"', json.dumps(board["panels"])))
    assert uids == {"${datasource}"}


@pytest.mark.parametrize(("name", "board"), boards())
def test_every_panel_has_a_known_unit_and_a_description(name: str, board: dict[str, Any]) -> None:
    for p in data_panels(board):
        unit = p["fieldConfig"]["defaults"].get("unit", "")
        assert unit in KNOWN_UNITS or CUSTOM_UNIT.match(unit), f"{p['title']!r}: unit {unit!r}"
        assert p["description"].strip(), f"{p['title']!r} has no description"


@pytest.mark.parametrize(("name", "board"), boards())
def test_ranges_are_rate_interval_or_range_for_window_totals(name: str, board: dict[str, Any]) -> None:
    """Fixed windows ([5m]) belong in recording rules; $__range only for a total over the panel's window."""
    for p, t in exprs(board):
        expr = t["expr"]
        for window in re.findall(r"\[([^\]]*)\]", expr):
            assert window in ("$__rate_interval", "$__range"), f"{p['title']!r}: [{window}] in {expr}"
        for fn, window in re.findall(r"\b(rate|irate|increase)\((?:[^()\[]|\([^()]*\))*\[([^\]]*)\]", expr):
            if fn in ("rate", "irate"):
                assert window == "$__rate_interval", f"{p['title']!r}: {fn} over [{window}]"
        if "$__range" in expr:
            assert t["instant"] and not t["range"], f"{p['title']!r}: $__range totals must be instant queries"
            assert re.search(r"\bincrease\([^\[]*\[\$__range\]", expr), f"{p['title']!r}: $__range outside increase"


@pytest.mark.parametrize(("name", "board"), boards())
def test_every_variable_used_is_defined(name: str, board: dict[str, Any]) -> None:
    defined = {v["name"] for v in board["templating"]["list"]}
    texts = [t["expr"] for _, t in exprs(board)]
    texts += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    for text in texts:
        for var in re.findall(r"\$\{?(\w+)", text):
            assert var in defined | BUILTIN_VARIABLES, f"${var} undefined in {text}"


@pytest.mark.parametrize(("name", "board"), boards())
def test_window_totals_have_a_matching_relative_time(name: str, board: dict[str, Any]) -> None:
    for p in data_panels(board):
        title = p["title"].lower()
        if "today" in title:
            assert p.get("timeFrom") == "now/d", p["title"]
        if "this month" in title:
            assert p.get("timeFrom") == "now/M", p["title"]


def test_recording_rule_names_exist() -> None:
    rules_file = REPO / "prometheus" / "rules" / "recording.yml"
    recorded = {r["record"] for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]}
    used = {m for _, b in boards() for _, t in exprs(b) for m in re.findall(r"\b[a-z_]+:[a-z0-9_:]+\b", t["expr"])}
    assert used, "the dashboards should use the recording rules"
    assert used <= recorded, f"not recorded in {rules_file.name}: {sorted(used - recorded)}"


def test_equivalents_name_their_factors() -> None:
    overview = load(PROVISIONED / "overview.json")
    by_title = {p["title"]: p for p in data_panels(overview)}
    car, flight = by_title["Like driving a car"], by_title["Like flying London - New York"]
    assert "/ 170" in car["targets"][0]["expr"] and "170 gCO2e per km" in car["description"]
    assert "DESNZ" in car["description"] and "DESNZ" in flight["description"]
    assert "/ 832500" in flight["targets"][0]["expr"] and "5550 km x 150 gCO2e" in flight["description"]


def test_importable_copies_differ_only_by_inputs() -> None:
    for name, board in boards(IMPORTABLE):
        assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
        assert board["__inputs"][0]["pluginId"] == "prometheus"
        provisioned = load(PROVISIONED / name)
        stripped = {k: v for k, v in board.items() if k not in ("__inputs", "__requires")}
        ds_var = next(v for v in stripped["templating"]["list"] if v["type"] == "datasource")
        assert ds_var["current"]["value"] == "${DS_PROMETHEUS}"
        ds_var["current"] = {}
        assert stripped == provisioned, name


def test_provisioning_files() -> None:
    sources = yaml.safe_load((REPO / "grafana/provisioning/datasources/footprint.yaml").read_text())
    assert sources["apiVersion"] == 1
    [ds] = sources["datasources"]
    assert ds["type"] == "prometheus" and ds["access"] == "proxy"
    # Grafana's $__rate_interval is at least 4 x this: it must be the exporter job's scrape interval.
    example = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in example["scrape_configs"]}
    scrape = jobs["footprint"].get("scrape_interval", example["global"]["scrape_interval"])
    assert ds["jsonData"]["timeInterval"] == scrape
    providers = yaml.safe_load((REPO / "grafana/provisioning/dashboards/footprint.yaml").read_text())
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
