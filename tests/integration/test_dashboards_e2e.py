"""Every panel of every dashboard returns data from a real Prometheus scraping the real exporter.

The stack, all on 127.0.0.1: a real Prometheus (1 s scrape and rule evaluation, the recording rules
loaded) scrapes two real exporters and a fake vLLM endpoint (labelled as the inference pod, as the
Kubernetes scrape config in prometheus/kubernetes.yml labels it).
- node "gpu": three fake GPUs (the fake libnvidia-ml.so.1): one held by a training pod, one time-sliced
  with an inference pod (the fake Kubernetes node of tests/fakes/workloads.py: API server, pod-resources
  socket, cgroups), one idle; a fixture RAPL tree whose counters a thread moves like hardware would;
  PUE 1.2; and the NESO provider against a fake NESO API that publishes a 48-hour forecast;
- node "cpu": estimated CPU/DRAM attributed to process groups (bare metal, `--attribution.processes`),
  and a chain whose first provider (Energi Data Service) is unreachable,
  so the fallback, provider-down and fetch-error series are real, then WattTime (a fake; marginal signal).
Then every target of every panel gets its template variables substituted the way Grafana does (the
multi-value variables on their default "All", i.e. their allValue `.*`; `$__rate_interval` as Grafana
derives it from a 1 s scrape interval; `$__range` as the time the stack has run) and runs through the
Prometheus HTTP API: each must return at least one series, and every value must be finite.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.grid_servers import NesoFake, WattTimeFake, refused_url, serving
from tests.fakes.nvml import FakeGpu, FakeProcess, Scenario, fake_env
from tests.fakes.sysfs import RaplTree
from tests.fakes.vllm_server import serve_vllm
from tests.fakes.workloads import INFERENCE, INFERENCE_PID, start_fake_cluster
from tests.support.exporter import REPO, start_exporter
from tests.support.prometheus import PrometheusServer, start_prometheus, static_job

pytestmark = pytest.mark.slow

DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))
RECORDING_RULES = REPO / "prometheus" / "rules" / "recording.yml"
SCRAPE_INTERVAL_S = 1
# Grafana: $__rate_interval = max($__interval + scrape interval, 4 x scrape interval). The panels run here
# over a short window with a 1 s step, so the second term wins.
RATE_INTERVAL_S = 4 * SCRAPE_INTERVAL_S
RATE_INTERVAL = f"{RATE_INTERVAL_S}s"
READY_TIMEOUT_S = 75.0
VLLM_POD = {"namespace": INFERENCE[0], "pod": INFERENCE[1]}  # the fake vLLM is the inference pod

def load_boards() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in DASHBOARDS]


def data_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


# --- the stack ------------------------------------------------------------------------------------


@contextmanager
def rapl_hardware(root: Path) -> Iterator[RaplTree]:
    """A RAPL tree whose counters advance like a 2-package server's: ~60 W per package, 8 W DRAM."""
    tree = RaplTree(root, packages=2, dram=True)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(0.1):
            for n in range(2):
                tree.advance(f"intel-rapl:{n}", 6_000_000)
                tree.advance(f"intel-rapl:{n}:0", 4_000_000)
                tree.advance(f"intel-rapl:{n}:1", 800_000)

    thread = threading.Thread(target=run, name="fake-rapl", daemon=True)
    thread.start()
    try:
        yield tree
    finally:
        stop.set()
        thread.join(5)


@dataclass
class Stack:
    prom: PrometheusServer
    started: float  # time.time() when Prometheus began serving


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards-e2e")
    scenario_file = tmp / "nvml-scenario"
    Scenario(
        gpus=[
            FakeGpu(power=((0.0, 350.0),), utilization=(92, 40)),  # the training pod's, exclusively
            FakeGpu(power=((0.0, 220.0),), utilization=(60, 30),  # time-sliced: inference uses 60 %
                    processes=[FakeProcess(INFERENCE_PID, 60)]),
            FakeGpu(power=((0.0, 75.0),), utilization=(0, 0)),  # nobody's, idle: waste
        ],
        time=None, epoch=time.monotonic(),
    ).write(scenario_file)
    cluster_args, cluster_env, cleanup_cluster = start_fake_cluster(tmp)
    common = ["--sample.interval=500ms", "--log.level=warn"]
    with ExitStack() as es:
        es.callback(cleanup_cluster)
        neso = es.enter_context(serving(NesoFake()))
        # 48 hours of half-hourly forecast: a daily curve, lowest about a day ahead.
        neso.state.ahead = [200.0 + 120.0 * math.sin(i * math.pi / 24) for i in range(96)]
        watttime = es.enter_context(serving(WattTimeFake("e2e", "e2e-password")))
        es.enter_context(rapl_hardware(tmp / "sysfs"))
        gpu_node = es.enter_context(start_exporter(
            [*common, *cluster_args, f"--path.sysfs={tmp / 'sysfs'}", "--pue=1.2", "--grid.provider=neso",
             f"--grid.neso.url={neso.url}", "--grid.fallback=static", "--embodied.gpu-kgco2e=250",
             "--embodied.cpu-kgco2e=30"],
            env={**cluster_env, **fake_env(scenario_file)}, ready_timeout=20,
        ))
        # The first provider is unreachable (fetches fail with "connection"); WattTime adds a marginal signal.
        cpu_node = es.enter_context(start_exporter(
            [*common, f"--path.sysfs={tmp / 'empty-sysfs'}", "--no-meter.nvml", "--attribution.processes",
             "--grid.provider=energinet",
             "--grid.zone=DK1", f"--grid.energinet.url={refused_url()}", "--grid.fallback=watttime,static",
             f"--grid.watttime.url={watttime.url}", "--grid.watttime.username=e2e",
             "--grid.watttime.region=CAISO_NORTH", "--grid.timeout=1s"],
            env={"FOOTPRINT_GRID_WATTTIME_PASSWORD": "e2e-password"}, ready_timeout=20,
        ))
        vllm = es.enter_context(serve_vllm())
        target = {"cluster": "e2e"}
        prom = es.enter_context(start_prometheus(
            [static_job("footprint", [gpu_node.port, cpu_node.port], target),
             static_job("vllm", [vllm.port], {**target, **VLLM_POD})],
            rule_files=[RECORDING_RULES], interval=f"{SCRAPE_INTERVAL_S}s", workdir=tmp / "prometheus",
        ))
        yield Stack(prom, time.time())


# --- Grafana's side: variables and queries --------------------------------------------------------


def label_values(prom: PrometheusServer, definition: str, now: float) -> list[str]:
    """Grafana's `label_values(selector, label)`: the label's values on the series matching selector."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", definition.strip())
    assert m, f"unsupported variable query {definition!r}"
    selector, label = m.groups()
    series = prom.api("series", **{"match[]": selector, "start": str(now - 300), "end": str(now)})
    return sorted({s[label] for s in series if label in s})


def substitute(expr: str, values: dict[str, str], range_s: int) -> str:
    builtins = {"__rate_interval": RATE_INTERVAL, "__range": f"{range_s}s", "__interval": f"{SCRAPE_INTERVAL_S}s"}
    merged = {**values, **builtins}

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in merged, f"unknown variable ${name} in {expr}"
        return merged[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def resolve_variables(prom: PrometheusServer, board: dict[str, Any], now: float) -> tuple[dict[str, str], list[str]]:
    """Each query variable's value as Grafana sends it on the default selection (All -> allValue)."""
    values: dict[str, str] = {}
    empty = []
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        found = label_values(prom, substitute(var["definition"], values, 0), now)
        if not found:
            empty.append(var["name"])
        if var.get("includeAll"):
            values[var["name"]] = var["allValue"]
        else:
            values[var["name"]] = re.escape(found[0]) if found else ""
    return values, empty


def run_target(prom: PrometheusServer, target: dict[str, Any], expr: str, now: float) -> list[list[float]]:
    """The values of each returned series (one for instant queries)."""
    if target["instant"]:
        data = prom.api("query", query=expr, time=str(now))
        return [[float(s["value"][1])] for s in data["result"]]
    data = prom.api("query_range", query=expr, start=str(now - 30), end=str(now), step="1")
    return [[float(v) for _, v in s["values"]] for s in data["result"]]


def check_all(stack: Stack) -> tuple[list[str], int]:
    """Problems found (empty when every panel has finite data), and how many targets ran."""
    prom, now = stack.prom, time.time()
    range_s = max(int(now - stack.started), 2 * RATE_INTERVAL_S)
    problems = []
    ran = 0
    for board in load_boards():
        values, empty_vars = resolve_variables(prom, board, now)
        problems += [f"{board['uid']}: variable ${v} has no values" for v in empty_vars]
        for panel in data_panels(board):
            for target in panel["targets"]:
                expr = substitute(target["expr"], values, range_s)
                series = run_target(prom, target, expr, now)
                ran += 1
                where = f"{board['uid']} / {panel['title']} / {target['refId']}"
                if not series:
                    problems.append(f"{where}: no data for {expr}")
                    continue
                bad = [v for values_ in series for v in values_ if not math.isfinite(v)]
                if bad:
                    problems.append(f"{where}: non-finite values {bad[:3]} from {expr}")
    return problems, ran


def test_every_panel_returns_finite_data(stack: Stack) -> None:
    # Bounded wait: the first scrapes land ~5 s after start, rates need two of them.
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        problems, ran = check_all(stack)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert ran == sum(len(p["targets"]) for b in load_boards() for p in data_panels(b))
    assert not problems, "\n".join(problems) + "\n" + stack.prom.log()
