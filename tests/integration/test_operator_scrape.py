"""The node ServiceMonitor as the Prometheus Operator turns it into a scrape: workload labels must survive.

The chart's ServiceMonitor is rendered by the real helm, translated into the scrape config the operator
generates from it, and a real Prometheus scrapes the real exporter (fake cluster: fake kube API server and
pod-resources socket, tests/fakes/workloads.py) with that config and the project's recording rules.

What the operator generates (prometheus-operator pkg/prometheus/promcfg.go, generateServiceMonitorConfig,
read at commit 6adcebc5 of main, v0.93.0-24): one scrape job per endpoint, `job_name:
serviceMonitor/<namespace>/<name>/<index>`, `honor_labels: <endpoint.honorLabels>` (AddHonorLabels; false
when the Prometheus sets overrideHonorLabels), scrape_interval/scrape_timeout/metrics_path/scheme from the
endpoint, kubernetes_sd_configs with role `endpoints` (the default ServiceDiscoveryRole) limited to the
monitor's namespaceSelector, and relabel_configs in this order:

1. `job` -> `__tmp_prometheus_job_name` (initRelabelings);
2. per selector matchLabel (sorted): keep `__meta_kubernetes_service_label_<k>;
   __meta_kubernetes_service_labelpresent_<k>` matching `(<v>);true`;
3. keep `__meta_kubernetes_endpoint_port_name` matching the endpoint's port;
4. `__meta_kubernetes_endpoint_address_target_kind;..._name` `Node;(.*)` -> `node`, `Pod;(.*)` -> `pod`;
5. `__meta_kubernetes_namespace` -> `namespace`, `__meta_kubernetes_service_name` -> `service`,
   `__meta_kubernetes_pod_name` -> `pod`, `__meta_kubernetes_pod_container_name` -> `container`;
6. drop `__meta_kubernetes_pod_phase` matching `(Failed|Succeeded)` (filterRunning, default true);
7. `__meta_kubernetes_service_name` -> `job`, then the jobLabel's service label -> `job` if non-empty;
8. `endpoint` = the port name;
9. the endpoint's own relabelings (generateRelabelConfig: camelCase -> snake_case, action lowercased),
   then metricRelabelings as metric_relabel_configs.

So every target carries the exporter pod's own namespace, pod and container as target labels. With
honor_labels false, Prometheus renames the exporter's clashing labels (the workloads' namespace, pod,
container) to exported_*, and every per-namespace rule reports the exporter's namespace. The service
discovery is replaced here by a static target carrying the `__meta_kubernetes_*` labels that the
endpoints role sets for the exporter pod (Prometheus docs, kubernetes_sd_config, role endpoints); the
relabeling is the operator's, unchanged.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.fakes.workloads import INFERENCE, NODE, TRAINING, start_fake_cluster
from tests.support.exporter import REPO, start_exporter
from tests.support.prometheus import start_prometheus
from tests.support.tools import tool

pytestmark = pytest.mark.slow

CHART = REPO / "helm" / "footprint"
RULES = REPO / "prometheus" / "rules" / "recording.yml"
NAMESPACE = "monitoring"  # where the exporter pods run
RELEASE = "footprint"
EXPORTER_POD = "footprint-node-7x2kq"


def render_node_monitor(*set_values: str) -> dict[str, Any]:
    args = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
            "--api-versions", "monitoring.coreos.com/v1", "--set", "serviceMonitor.enabled=true",
            "--set", "serviceMonitor.interval=1s"]
    for s in set_values:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"
                  and d["metadata"]["labels"]["app.kubernetes.io/component"] == "node"]
    (service,) = [d for d in docs if d["kind"] == "Service"
                  and d["metadata"]["labels"]["app.kubernetes.io/component"] == "node"]
    return {"monitor": monitor, "service": service}


def _sanitize(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _relabel(rc: dict[str, Any]) -> dict[str, Any]:
    """generateRelabelConfig: the operator's RelabelConfig fields in Prometheus's names."""
    out: dict[str, Any] = {}
    for ours, theirs in (("sourceLabels", "source_labels"), ("separator", "separator"),
                         ("targetLabel", "target_label"), ("regex", "regex"), ("modulus", "modulus"),
                         ("replacement", "replacement")):
        if ours in rc:
            out[theirs] = rc[ours]
    if "action" in rc:
        out["action"] = rc["action"].lower()
    return out


def operator_scrape_config(monitor: dict[str, Any], target: dict[str, str], address: str) -> dict[str, Any]:
    """The scrape job the operator writes for the monitor's first endpoint (see the module docstring),
    with a static target (`address`, meta labels `target`) in place of kubernetes_sd_configs."""
    spec, meta = monitor["spec"], monitor["metadata"]
    (ep,) = spec["endpoints"]
    relabel: list[dict[str, Any]] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for key in sorted(spec["selector"]["matchLabels"]):
        relabel.append({"action": "keep", "regex": f"({spec['selector']['matchLabels'][key]});true",
                        "source_labels": [f"__meta_kubernetes_service_label_{_sanitize(key)}",
                                          f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}"]})
    relabel.append({"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]})
    kind_name = ["__meta_kubernetes_endpoint_address_target_kind", "__meta_kubernetes_endpoint_address_target_name"]
    relabel += [
        {"source_labels": kind_name, "separator": ";", "regex": "Node;(.*)", "replacement": "${1}",
         "target_label": "node"},
        {"source_labels": kind_name, "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}",
         "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
    ]
    if ep.get("filterRunning", True):
        relabel.append({"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                        "regex": "(Failed|Succeeded)"})
    relabel.append({"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job",
                    "replacement": "${1}"})
    if spec.get("jobLabel"):
        relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{_sanitize(spec['jobLabel'])}"],
                        "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
    relabel.append({"target_label": "endpoint", "replacement": ep["port"]})
    relabel += [_relabel(rc) for rc in ep.get("relabelings", [])]
    config: dict[str, Any] = {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": bool(ep.get("honorLabels", False)),
        "static_configs": [{"targets": [address], "labels": target}],
    }
    for ours, theirs in (("interval", "scrape_interval"), ("scrapeTimeout", "scrape_timeout"),
                         ("path", "metrics_path"), ("scheme", "scheme")):
        if ep.get(ours):
            config[theirs] = ep[ours]
    config["relabel_configs"] = relabel
    if ep.get("metricRelabelings"):
        config["metric_relabel_configs"] = [_relabel(rc) for rc in ep["metricRelabelings"]]
    return config


def endpoints_meta(service: dict[str, Any]) -> dict[str, str]:
    """The `__meta_kubernetes_*` labels the endpoints role sets for the exporter pod behind `service`."""
    labels = {
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_service_name": service["metadata"]["name"],
        "__meta_kubernetes_endpoint_port_name": service["spec"]["ports"][0]["name"],
        "__meta_kubernetes_endpoint_port_protocol": "TCP",
        "__meta_kubernetes_endpoint_ready": "true",
        "__meta_kubernetes_endpoint_address_target_kind": "Pod",
        "__meta_kubernetes_endpoint_address_target_name": EXPORTER_POD,
        "__meta_kubernetes_endpoint_node_name": NODE,
        "__meta_kubernetes_pod_name": EXPORTER_POD,
        "__meta_kubernetes_pod_container_name": "exporter",
        "__meta_kubernetes_pod_container_port_name": "http-metrics",
        "__meta_kubernetes_pod_node_name": NODE,
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_ready": "true",
    }
    for key, value in service["metadata"]["labels"].items():
        labels[f"__meta_kubernetes_service_label_{_sanitize(key)}"] = value
        labels[f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}"] = "true"
    return labels


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("operator-scrape")
    args, env, cleanup = start_fake_cluster(tmp)
    try:
        run = [*args, "--sample.interval=0.1s", "--attribution.interval=0", "--no-meter.nvml", "--no-meter.rapl",
               f"--path.sysfs={tmp / 'sys'}"]
        with start_exporter(run, env=env) as exp:
            exp.wait_until(lambda text: f'namespace="{INFERENCE[0]}"' in text, timeout=30)
            yield exp.port
    finally:
        cleanup()


def _scrape(port: int, *set_values: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(scrape config, per-namespace power rule, raw workload series) after Prometheus has both."""
    rendered = render_node_monitor(*set_values)
    config = operator_scrape_config(rendered["monitor"], endpoints_meta(rendered["service"]), f"127.0.0.1:{port}")
    with start_prometheus([config], rule_files=[RULES]) as prom:
        rule = prom.wait_for_query("namespace:footprint_workload_power_watts:sum", timeout=60)
        raw = prom.query("footprint_workload_energy_joules_total")
        targets = prom.get_json("/api/v1/targets")["data"]["activeTargets"]
    assert [t["health"] for t in targets] == ["up"], targets
    return config, rule, raw


def test_honor_labels_keeps_the_workloads_namespaces_in_the_rules(exporter: int) -> None:
    config, rule, raw = _scrape(exporter)
    assert config["honor_labels"] is True
    assert {r["metric"]["namespace"] for r in rule} == {TRAINING[0], INFERENCE[0]}
    assert all(float(r["value"][1]) > 0 for r in rule)
    pods = {(s["metric"]["namespace"], s["metric"]["pod"], s["metric"]["container"]) for s in raw}
    assert pods == {TRAINING, INFERENCE}
    for series in raw:
        labels = series["metric"]
        assert not any(k.startswith("exported_") for k in labels), labels
        # The operator's other target labels still arrive; the chart's relabeling names the node.
        assert labels["job"] == "footprint" and labels["service"] == f"{RELEASE}-node"
        assert labels["endpoint"] == "http-metrics" and labels["instance"] == NODE


def test_without_honor_labels_every_namespace_would_be_the_exporters(exporter: int) -> None:
    """What honorLabels=true prevents: the per-namespace rule collapses onto the exporter's namespace."""
    config, rule, raw = _scrape(exporter, "serviceMonitor.honorLabels=false")
    assert config["honor_labels"] is False
    assert [r["metric"]["namespace"] for r in rule] == [NAMESPACE]
    for series in raw:
        labels = series["metric"]
        assert labels["namespace"] == NAMESPACE and labels["pod"] == EXPORTER_POD
        assert labels["container"] == "exporter"
    assert {s["metric"]["exported_namespace"] for s in raw} == {TRAINING[0], INFERENCE[0]}
