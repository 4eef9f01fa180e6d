"""`footprint-exporter report` against a real Prometheus that scraped the real exporter: a fake cluster
with a training and an inference namespace (tests/fakes/workloads.py), intensity from a fake Electricity
Maps server that changes value and then fails (the exporter falls back to the static table), and one
exporter restart with --state.file. The report's per-namespace figures must be the increases of the
counters Prometheus holds, computed here from the raw samples with Prometheus's reset rule."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.grid_servers import ElectricityMapsFake, Fault, serving
from tests.fakes.vllm_server import serve_vllm
from tests.fakes.workloads import INFERENCE, TRAINING, start_fake_cluster
from tests.support.exporter import REPO, free_port, start_exporter
from tests.support.prometheus import start_prometheus, static_job

pytestmark = pytest.mark.slow

TOKEN = "em-token-report-5c1d"
ACC = "footprint_grid_accounting_intensity_grams_per_kilowatt_hour"


def raw_increase(values: list[float]) -> float:
    """Prometheus's counter rule without extrapolation: every rise counts; after a drop, the new value."""
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def samples(prom: Any, expr: str, at: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    return [(s["metric"], [(float(t), float(v)) for t, v in s["values"]]) for s in prom.query(expr, at=at)]


def test_report_by_namespace_is_the_counters_increase_with_the_restart_and_fallback_stated(tmp_path: Path) -> None:
    args, env, cleanup = start_fake_cluster(tmp_path)
    port = free_port()
    token = tmp_path / "em-token"
    token.write_text(TOKEN + "\n")
    em = ElectricityMapsFake(TOKEN)
    em.state.intensity = 300
    with serving(em), serve_vllm() as vllm:
        run = [*args, "--sample.interval=100ms", "--attribution.interval=300ms", "--no-meter.nvml", "--no-meter.rapl",
               f"--path.sysfs={tmp_path / 'sys'}", f"--state.file={tmp_path / 'state.json'}",
               "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
               f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.refresh-interval=1s",
               "--grid.max-age=3s", "--grid.timeout=500ms", "--pue=1.25", "--water.wue=1.8"]
        try:
            # vLLM's own counters, with the namespace/pod target labels the inference rules join on.
            jobs = [static_job("footprint", [port], labels={"node": "node-1"}),
                    static_job("vllm", [vllm.port], labels={"namespace": INFERENCE[0], "pod": INFERENCE[1]})]
            with start_prometheus(jobs) as prom:
                with start_exporter(run, env=env, port=port):
                    prom.wait_for_query(f'count(footprint_workload_energy_joules_total{{namespace="{INFERENCE[0]}"}}'
                                        f') and count({ACC}{{provider="electricitymaps"}})', timeout=60)
                    em.state.intensity = 450  # the grid changes
                    prom.wait_for_query(f'{ACC}{{provider="electricitymaps"}} == 450', timeout=30)
                    em.fault = Fault(status=503)  # the API fails: past max-age the static table takes over
                    prom.wait_for_query(f'{ACC}{{provider="static"}}', timeout=30)
                em.fault = None
                prom.wait_for_query('up{job="footprint"} == 0', timeout=30)  # Prometheus saw it down
                with start_exporter(run, env=env, port=port):
                    prom.wait_for_query('count_over_time(up{job="footprint"}[3s]) >= 3 and up == 1', timeout=30)
                now = float(prom.query("time()")[0]["value"][1])
                energy = samples(prom, "footprint_workload_energy_joules_total[10m]", now)
                grams = samples(prom, "footprint_workload_emissions_grams_total[10m]", now)
                # The window: from the first scrape holding every workload series to the last scrape.
                since = max(points[0][0] for _, points in energy)
                until = min(points[-1][0] for _, points in energy)
                out = tmp_path / "report.json"
                proc = subprocess.run(
                    [sys.executable, "-m", "footprint", "report", f"--prometheus={prom.url}", f"--since={since:.3f}",
                     f"--until={until:.3f}", "--by=namespace", f"--output={out}"],
                    capture_output=True, text=True, timeout=60, cwd=REPO)
                csv_out = tmp_path / "report.csv"
                by_node = subprocess.run(
                    [sys.executable, "-m", "footprint", "report", f"--prometheus={prom.url}", f"--since={since:.3f}",
                     f"--until={until:.3f}", "--by=node", f"--output={csv_out}"],
                    capture_output=True, text=True, timeout=60, cwd=REPO)
                by_workload = subprocess.run(
                    [sys.executable, "-m", "footprint", "report", f"--prometheus={prom.url}", f"--since={since:.3f}",
                     f"--until={until:.3f}", "--by=workload", f"--output={tmp_path / 'workload.json'}"],
                    capture_output=True, text=True, timeout=60, cwd=REPO)
                node_energy = samples(prom, "footprint_node_energy_joules_total[10m]", until)
        finally:
            cleanup()
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    rows = {r["key"]: r for r in report["rows"]}

    def expected(series: list[tuple[dict[str, str], list[tuple[float, float]]]]) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, points in series:
            out[labels["namespace"]] += raw_increase([v for t, v in points if since <= t <= until])
        return out

    want_j, want_g = expected(energy), expected(grams)
    assert set(want_j) == {TRAINING[0], INFERENCE[0]}
    for namespace in want_j:
        assert rows[namespace]["energy_joules"] == pytest.approx(want_j[namespace], rel=1e-6)
        assert rows[namespace]["emissions_grams"] == pytest.approx(want_g[namespace], rel=1e-6)
        assert rows[namespace]["facility_energy_joules"] == pytest.approx(1.25 * want_j[namespace], rel=1e-6)
        assert rows[namespace]["water_liters"] == pytest.approx(want_j[namespace] / 3.6e6 * 1.8, rel=1e-6)
    assert "(unattributed)" in rows
    # Per 1,000 tokens where vLLM has data (the serving pod), nowhere else.
    inference = rows[INFERENCE[0]]
    assert inference["tokens"] > 0 and rows[TRAINING[0]]["tokens"] is None
    assert inference["joules_per_1k_tokens"] == pytest.approx(inference["energy_joules"] / inference["tokens"] * 1000)
    assert inference["grams_per_1k_tokens"] == pytest.approx(inference["emissions_grams"] / inference["tokens"] * 1000)
    total = report["total"]
    (node_points,) = [p for _, p in node_energy]
    assert total["energy_joules"] == pytest.approx(raw_increase([v for t, v in node_points if since <= t <= until]),
                                                   rel=1e-6)
    # Provenance: both providers' intervals, some energy charged at the static table, the restart's gap.
    providers = {p["provider"]: p for p in report["providers"]}
    assert set(providers) == {"electricitymaps", "static"}
    assert sum(p["share"] for p in providers.values()) == pytest.approx(1.0)
    assert 0 < report["static_energy_joules"] < total["energy_joules"]
    assert [g["kind"] for g in report["gaps"]] and all(g["instance"] == "node-1" for g in report["gaps"])
    (attempted, failed), = report["scrapes"].values()
    assert failed >= 1 and attempted > failed
    assert report["resets"] == {}  # --state.file: the restart did not reset the counters
    assert report["without_build_info"] == {}
    assert report["versions"] == ["0.1.0"]
    text = proc.stdout
    assert "| static |" in text and "| electricitymaps |" in text and "scrapes failed" in text
    assert "Methodology: docs/methodology.md of footprint 0.1.0" in text
    assert by_workload.returncode == 0, by_workload.stderr
    workloads = {r["key"]: r for r in json.loads((tmp_path / "workload.json").read_text())["rows"]}
    assert workloads["training"]["energy_joules"] == pytest.approx(want_j[TRAINING[0]], rel=1e-6)
    assert workloads["inference"]["energy_joules"] == pytest.approx(want_j[INFERENCE[0]], rel=1e-6)
    assert by_node.returncode == 0, by_node.stderr
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("node,energy_joules,") and lines[1].startswith("node-1,")
    assert float(lines[1].split(",")[1]) == pytest.approx(total["energy_joules"], rel=1e-9)


def test_report_bad_options_exit_2_and_an_unreachable_prometheus_1(tmp_path: Path) -> None:
    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "footprint", "report", *args], capture_output=True, text=True,
                              timeout=30, cwd=REPO)

    nowhere = "--prometheus=http://127.0.0.1:9"
    for args, key in ((["--since=30d"], "prometheus"), ([nowhere, "--by=team"], "by"),
                      ([nowhere, "--since=yesterday"], "since"),
                      ([nowhere, "--since=2026-12-01T00:00:00Z", "--until=2026-11-01T00:00:00Z"], "since")):
        proc = report(*args)
        assert proc.returncode == 2 and proc.stderr.strip().startswith(f"footprint-exporter: {key}:"), proc.stderr
    proc = report("--prometheus=http://127.0.0.1:9", "--since=1h")
    assert proc.returncode == 1 and "cannot query" in proc.stderr
