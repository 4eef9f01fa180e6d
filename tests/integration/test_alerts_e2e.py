"""FootprintEmissionsRateHigh end to end: exporter -> Prometheus -> rules -> Alertmanager -> webhook.

All real processes on 127.0.0.1: the exporter with two fake GPUs (the fake libnvidia-ml.so.1) drawing
600 W each, PUE 1.5 and a constant 900 gCO2e/kWh grid (so 1.2 kW x 1.5 x 0.9 kg/kWh = 1620 g/h);
Prometheus scraping it every second with the shipped rules rendered by scripts/gen_rules.py with a low
limit (10 g/h) and a short `for` (2 s); Alertmanager routing to a webhook receiver in this test. The
test asserts what an on-call person would receive: the alert's labels and annotations.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.nvml import FakeGpu, Scenario, fake_env
from tests.support.exporter import REPO, start_exporter
from tests.support.prometheus import (
    receive_webhooks,
    start_alertmanager,
    start_prometheus,
    static_job,
    wait_until,
    webhook_config,
)

pytestmark = pytest.mark.slow

GPU_WATTS = 600.0
GPUS = 2
PUE = 1.5
INTENSITY = 900.0  # gCO2e/kWh
GRAMS_PER_HOUR = GPU_WATTS * GPUS / 1000 * PUE * INTENSITY  # 1620
LIMIT = 10  # g/h: far below, so the alert fires within seconds of the first scrapes
THRESHOLDS = yaml.safe_load((REPO / "prometheus" / "thresholds.yaml").read_text())
DELIVERY_TIMEOUT_S = 90.0  # typically ~15 s: 5 s discovery tick, first rates, for 2 s, group_wait 1 s


def render_rules(out: Path) -> list[Path]:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_rules.py"), "--out", str(out),
         f"--set=emissionsRateClusterGramsPerHour={LIMIT}", "--set=emissionsRateFor=2s"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [out / "recording.yml", out / "alerts.yml"]


def grams(humanised: str) -> float:
    """Prometheus's `humanize` output ('1.62k', '980.5') back to a number."""
    match = re.fullmatch(r"([\d.]+)(k?)", humanised)
    assert match, humanised
    return float(match.group(1)) * (1000 if match.group(2) else 1)


def test_emissions_rate_alert_reaches_the_webhook(tmp_path: Path) -> None:
    scenario = tmp_path / "nvml-scenario"
    Scenario(
        gpus=[FakeGpu(power=((0.0, GPU_WATTS),), power_limit_watts=700.0, utilization=(97, 60))
              for _ in range(GPUS)],
        time=None, epoch=time.monotonic(),
    ).write(scenario)
    rule_files = render_rules(tmp_path / "rules")

    with ExitStack() as stack:
        hook = stack.enter_context(receive_webhooks())
        alertmanager = stack.enter_context(start_alertmanager(webhook_config(hook.url), workdir=tmp_path / "am"))
        exporter = stack.enter_context(start_exporter(
            ["--sample.interval=200ms", "--no-meter.rapl", "--no-meter.estimate", f"--path.sysfs={tmp_path}",
             "--grid.provider=constant", f"--grid.constant.value={INTENSITY:g}", f"--pue={PUE:g}",
             "--log.level=warn"],
            env=fake_env(scenario), ready_timeout=20,
        ))
        prometheus = stack.enter_context(start_prometheus(
            [static_job("footprint", [exporter.port], labels={"cluster": "e2e"})],
            rule_files=rule_files, alertmanager=alertmanager, workdir=tmp_path / "prometheus",
        ))

        def diagnostics() -> str:
            return f"{prometheus.log()}\n{alertmanager.log()}\nexporter log:\n{exporter.log()[-3000:]}"

        alert = hook.wait_for_alert(
            lambda a: a["labels"].get("alertname") == "FootprintEmissionsRateHigh" and a["status"] == "firing",
            timeout=DELIVERY_TIMEOUT_S, context=diagnostics,
        )

        # The emissions the exporter accounts are what the scenario implies: Prometheus's own rate over
        # a full 15 s window of 1 s scrapes (the rule's 5-minute window is still filling up) is 1620 g/h.
        rate: list[float] = []

        def measured() -> bool:
            covered = prometheus.query_value("count_over_time(footprint_node_emissions_grams_total[15s])")
            value = prometheus.query_value("rate(footprint_node_emissions_grams_total[15s]) * 3600")
            rate[:] = [value] if value is not None and (covered or 0) >= 15 else []
            return bool(rate)

        wait_until(measured, 60, "a full 15 s window of scraped emissions", context=diagnostics)
        assert rate[0] == pytest.approx(GRAMS_PER_HOUR, rel=0.05)

    payload: dict[str, Any] = next(p for p in hook.received() if alert in p["alerts"])
    assert payload["receiver"] == "webhook"
    assert alert["labels"] == {
        "alertname": "FootprintEmissionsRateHigh",
        "severity": "warning",
        "scope": "cluster",
        "cluster": "e2e",
    }
    assert alert["generatorURL"].startswith(prometheus.url), "the alert should come from our Prometheus"
    annotations = alert["annotations"]
    assert annotations["summary"] == f"Cluster emissions above {LIMIT} gCO2e per hour."
    match = re.fullmatch(
        r"The cluster e2e emits (\S+)g CO2e per hour \(operational, PUE included\), "
        rf"above the limit of {LIMIT} g/h for 2s\.",
        annotations["description"],
    )
    assert match, annotations["description"]
    # The rule's 5-minute rate counts the not-yet-scraped part of its window as zero, so the value when
    # the alert fired lies between the limit and the true rate.
    assert LIMIT < grams(match.group(1)) <= GRAMS_PER_HOUR * 1.05
    assert annotations["runbook_url"] == f"{THRESHOLDS['runbookUrl']}#footprintemissionsratehigh"
