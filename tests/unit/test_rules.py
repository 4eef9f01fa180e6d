"""The Prometheus rules: valid (promtool), unit-tested (promtool test rules), covered, generated, documented.

The alert thresholds have one source of truth (prometheus/thresholds.yaml, rendered by
scripts/gen_rules.py), so these tests also prove that the plain rule files are up to date and that the
Helm chart's named template renders exactly the same rules, with defaults and with every value changed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.exporter import REPO
from tests.support.tools import tool

PROM = REPO / "prometheus"
RULE_FILES = [PROM / "rules" / "recording.yml", PROM / "rules" / "alerts.yml"]
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))
THRESHOLDS = yaml.safe_load((PROM / "thresholds.yaml").read_text())
RUNBOOK = REPO / "docs" / "runbook.md"
GEN_RULES = REPO / "scripts" / "gen_rules.py"


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def groups(path: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load(path.read_text())["groups"])


def rules(kind: str) -> list[dict[str, Any]]:
    return [r for path in RULE_FILES for g in groups(path) for r in g["rules"] if kind in r]


def test_generated_rule_files_are_up_to_date() -> None:
    result = run([sys.executable, str(GEN_RULES), "--check"])
    assert result.returncode == 0, result.stderr


def test_promtool_check_rules() -> None:
    result = run([tool("promtool"), "check", "rules", *map(str, RULE_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_fails_on_a_broken_rule(tmp_path: Path) -> None:
    """The check above means something: promtool rejects a rule file with bad PromQL."""
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [{"record": "a:b:c", "expr": "sum by (("}]}]}))
    result = run([tool("promtool"), "check", "rules", str(broken)])
    assert result.returncode != 0


def test_promtool_unit_tests_pass() -> None:
    result = run([tool("promtool"), "test", "rules", *map(str, UNIT_TESTS)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_example_config_is_valid() -> None:
    result = run([tool("promtool"), "check", "config", str(PROM / "prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_example_is_valid(tmp_path: Path) -> None:
    """Debian's Prometheus is built without Kubernetes discovery, so promtool checks everything but the
    `kubernetes_sd_configs` block (replaced by a static target); the block itself is checked here."""
    config = yaml.safe_load((PROM / "kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}], job["job_name"]
        job["static_configs"] = [{"targets": ["127.0.0.1:10180"]}]
    config["rule_files"] = [str(PROM / f) for f in config["rule_files"]]
    (tmp_path / "kubernetes.yml").write_text(yaml.safe_dump(config))
    result = run([tool("promtool"), "check", "config", str(tmp_path / "kubernetes.yml")])
    assert result.returncode == 0, result.stdout + result.stderr

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    job_regex = re.compile(THRESHOLDS["exporterJobRegex"])
    footprint = [name for name in jobs if job_regex.fullmatch(name)]
    assert footprint, "no job matches exporterJobRegex: FootprintExporterDown would watch nothing"
    for name in footprint:  # target labels namespace/pod would clobber the workload series' labels
        targets = {r.get("target_label") for r in jobs[name]["relabel_configs"]}
        assert not targets & {"namespace", "pod", "container"}, name
    vllm = {r.get("target_label") for r in jobs["vllm"]["relabel_configs"]}
    assert {"namespace", "pod"} <= vllm  # the efficiency rules join on them


def unit_test_cases() -> list[dict[str, Any]]:
    return [case for path in UNIT_TESTS for case in yaml.safe_load(path.read_text())["tests"]]


def test_every_recording_rule_has_its_value_tested() -> None:
    tested = " ".join(t["expr"] for case in unit_test_cases() for t in case.get("promql_expr_test", [])
                      if t.get("exp_samples"))
    missing = [r["record"] for r in rules("record")
               if not re.search(rf"(?<![\w:]){re.escape(r['record'])}(?![\w:])", tested)]
    assert not missing, f"recording rules without a promtool value test: {missing}"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in unit_test_cases():
        for t in case.get("alert_rule_test", []):
            (firing if t.get("exp_alerts") else quiet).add(t["alertname"])
    names = {r["alert"] for r in rules("alert")}
    assert names == firing, f"alerts never tested firing: {names - firing}"
    assert names == quiet, f"alerts never tested quiet: {names - quiet}"
    assert names >= {
        "FootprintEmissionsRateHigh", "FootprintCarbonBudgetBurn", "FootprintGridIntensityHigh",
        "FootprintGPUIdleDrawingPower", "FootprintGridIntensityStale", "FootprintMeterDown",
        "FootprintExporterDown",
    }


def runbook_anchors() -> set[str]:
    """GitHub's anchors for the runbook's headings (lowercase, punctuation dropped, spaces to dashes)."""
    headings = re.findall(r"^#{1,6} (.+)$", RUNBOOK.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", rules("alert"), ids=lambda r: f"{r['alert']}-{'-'.join(sorted(r['labels'].values()))}")
def test_alert_is_documented(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"Footprint[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    if re.search(r" [<>] ", rule["expr"]):  # a threshold, not a state (== 0, absent): say the value
        assert "$value" in annotations["description"]
    base, _, anchor = annotations["runbook_url"].partition("#")
    assert base == THRESHOLDS["runbookUrl"] and base.endswith("/docs/runbook.md")
    assert anchor == rule["alert"].lower()
    assert anchor in runbook_anchors(), f"docs/runbook.md has no section for {rule['alert']}"


def alt_value(key: str, value: Any) -> Any:
    """A different, still valid, value for every setting: numbers halved, durations and names changed."""
    if isinstance(value, int | float):
        half = value / 2
        return int(half) if half.is_integer() else half
    if re.fullmatch(r"\d+[smhd]", value):
        return "7m"
    if key == "runbookUrl":
        return "https://runbooks.example.org/footprint.md"
    return value + "_x" if ":" in value else "other-" + value


def helm_rules(tmp_path: Path, thresholds: dict[str, Any]) -> list[dict[str, Any]]:
    """Render the generated named template with real helm in a throwaway chart with these values."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: rules-probe\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(yaml.safe_dump({"prometheusRule": {"thresholds": thresholds}}))
    tpl = REPO / "helm" / "footprint" / "templates" / "_rules.tpl"
    (chart / "templates" / "_rules.tpl").write_text(tpl.read_text())
    (chart / "templates" / "rules.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: rules\ndata:\n  rules.yaml: |\n'
        '    {{- include "footprint.rules" . | nindent 4 }}\n'
    )
    result = run([tool("helm"), "template", "probe", str(chart)])
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load(yaml.safe_load(result.stdout)["data"]["rules.yaml"])["groups"])


def test_helm_template_renders_the_same_rules_with_defaults(tmp_path: Path) -> None:
    plain = [g for path in RULE_FILES for g in groups(path)]
    assert helm_rules(tmp_path, THRESHOLDS) == plain


def test_helm_template_takes_every_threshold_from_values(tmp_path: Path) -> None:
    changed = {key: alt_value(key, value) for key, value in THRESHOLDS.items()}
    out = tmp_path / "plain"
    result = run([sys.executable, str(GEN_RULES), "--out", str(out), *[f"--set={k}={v}" for k, v in changed.items()]])
    assert result.returncode == 0, result.stderr
    plain = [g for name in ("recording.yml", "alerts.yml") for g in groups(out / name)]
    assert helm_rules(tmp_path, changed) == plain
    defaults = [g for path in RULE_FILES for g in groups(path)]
    for key, value in changed.items():  # each changed value really reached the rules
        assert str(value) in yaml.safe_dump(plain, width=10_000), key
    assert plain != defaults
    check = run([tool("promtool"), "check", "rules", str(out / "recording.yml"), str(out / "alerts.yml")])
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--out", "{tmp}", "--set=emisionsRateFor=1m"], "unknown key(s) emisionsRateFor"),
    (["--set=emissionsRateFor=1m"], "--set only with --out"),
    (["--out", "{tmp}", "--set=emissionsRateFor"], "expected key=value"),
])
def test_gen_rules_rejects_bad_overrides(tmp_path: Path, args: list[str], message: str) -> None:
    result = run([sys.executable, str(GEN_RULES), *[a.format(tmp=tmp_path) for a in args]])
    assert result.returncode != 0
    assert message in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-written
