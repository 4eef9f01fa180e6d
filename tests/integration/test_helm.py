"""The Helm chart, rendered by the real helm binary and checked against real Kubernetes schemas.

helm comes from PATH or <repo>/.tools/bin (scripts/tools/helm.sh installs it); kubernetes-validate is a
dev dependency. Custom resources (ServiceMonitor, PrometheusRule) have no bundled schema, so they are
checked by assertions here instead.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "footprint"
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
MONITORING = "monitoring.coreos.com/v1"
NAMESPACE = "footprint-test"
RELEASE = "fp"

try:
    import kubernetes_validate
    from kubernetes_validate.utils import all_versions
except ImportError:  # the dev dependency is missing: the tests that need it fail with a clear message
    kubernetes_validate = None


def _helm() -> str:
    found = shutil.which("helm") or (str(REPO / ".tools/bin/helm") if (REPO / ".tools/bin/helm").exists() else None)
    if not found:
        pytest.fail("helm not found on PATH or in .tools/bin: run `make tools` (scripts/tools/helm.sh)")
    return found


def _validator() -> Any:
    if kubernetes_validate is None:
        pytest.fail("kubernetes-validate is not installed: `.venv/bin/pip install -e '.[dev]'`")
    return kubernetes_validate


def _versions() -> tuple[str, str]:
    """Oldest and newest Kubernetes versions kubernetes-validate bundles."""
    _validator()
    versions = sorted(set(all_versions()), key=lambda v: tuple(int(p) for p in v.split(".")))
    return versions[0], versions[-1]


class HelmError(Exception):
    pass


@cache
def _run_helm(args: tuple[str, ...]) -> str:
    proc = subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def render(
    values: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    api_versions: Sequence[str] = (),
    kube_version: str | None = None,
) -> list[dict[str, Any]]:
    """`helm template` with the given inputs; the parsed documents (cached, so treat them as read-only)."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values:
        args += ["-f", str(f)]
    for s in set_values:
        args += ["--set", s]
    for a in api_versions:
        args += ["--api-versions", a]
    if kube_version:
        args += ["--kube-version", kube_version]
    return [d for d in yaml.safe_load_all(_run_helm(tuple(args))) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    found = [
        d
        for d in by_kind(docs, kind)
        if component is None or d["metadata"]["labels"].get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {kind} {component or ''}, got {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return dict(workload["spec"]["template"]["spec"])


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob", "Pod")]


CASES = [pytest.param((), id="defaults")] + [pytest.param((f,), id=f.stem) for f in CI_FILES]


def test_ci_values_files_cover_the_promised_scenarios() -> None:
    assert {f.name for f in CI_FILES} >= {
        "minimal-values.yaml",
        "gpu-cluster-values.yaml",
        "kube-prometheus-stack-values.yaml",
        "everything-on-values.yaml",
    }


@pytest.mark.parametrize("values", CASES)
def test_lint_strict(values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)]
    for f in values:
        args += ["-f", str(f)]
    proc = subprocess.run([_helm(), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_kube_version_range_is_what_kubernetes_validate_bundles() -> None:
    """Chart.yaml's kubeVersion spans exactly the versions whose schemas the tests validate against."""
    oldest, newest = _versions()
    major, minor, _ = (int(p) for p in newest.split("."))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={oldest}-0 <{major}.{minor + 1}.0-0"
    for outside in (f"1.{int(oldest.split('.')[1]) - 1}.0", f"{major}.{minor + 1}.0"):
        with pytest.raises(HelmError, match="incompatible with Kubernetes"):
            render(kube_version=outside)


@pytest.mark.parametrize("values", CASES)
def test_rendered_manifests_validate_strictly_for_oldest_and_newest_kubernetes(values: tuple[Path, ...]) -> None:
    kv = _validator()
    for version in _versions():
        docs = render(values, api_versions=[MONITORING], kube_version=version)
        checked = 0
        for doc in docs:
            if doc["apiVersion"] == MONITORING:
                continue
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} invalid for Kubernetes {version}: {exc}")
            checked += 1
        assert checked >= 6  # ServiceAccount, RBAC pair, 2 Services, DaemonSet (+ grid Deployment)


def test_strict_validation_catches_an_unknown_field() -> None:
    """The harness above is not vacuous: a misspelt field in a rendered DaemonSet is rejected."""
    kv = _validator()
    daemonset = copy.deepcopy(one(render(), "DaemonSet"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kv.ValidationError):
        kv.validate(daemonset, _versions()[1], strict=True)


# --- host access and security -------------------------------------------------------------------------


def _host_mounts(workload: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(host path, volume mount, container name) for every hostPath volume a container mounts."""
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod_spec(workload).get("volumes", []) if "hostPath" in v}
    for c in containers(workload):
        for m in c.get("volumeMounts", []):
            if m["name"] in host_paths:
                yield host_paths[m["name"]], m, c["name"]


@pytest.mark.parametrize("values", CASES)
def test_host_paths_are_mounted_read_only(values: tuple[Path, ...]) -> None:
    """Only the checkpoint directory (node.state.type=hostPath) may be writable on the host."""
    docs = render(values)
    node = one(docs, "DaemonSet", "node")
    state_dir = yaml.safe_load(_run_helm(("show", "values", str(CHART))))["node"]["state"]["hostPath"]
    for f in values:
        state_dir = (yaml.safe_load(f.read_text()).get("node", {}).get("state", {}) or {}).get("hostPath", state_dir)
    seen = set()
    for workload in workloads(docs):
        for host_path, mount, container in _host_mounts(workload):
            seen.add(host_path)
            if mount["name"] == "state":
                assert host_path == state_dir and mount["mountPath"] == "/var/lib/footprint"
                continue
            assert mount.get("readOnly") is True, f"{container} mounts {host_path} writable"
    assert {"/sys", "/proc", "/var/lib/kubelet/pod-resources"} <= seen
    args = containers(node)[0]["args"]
    assert {"--path.sysfs=/host/sys", "--path.procfs=/host/proc", "--path.cgroup=/host/sys/fs/cgroup"} <= set(args)
    assert "--kubernetes.pod-resources-socket=/var/lib/kubelet/pod-resources/kubelet.sock" in args


def _effective(workload: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    sc = container.get("securityContext", {})
    return sc[key] if key in sc else pod_spec(workload).get("securityContext", {}).get(key)


@pytest.mark.parametrize("values", CASES)
def test_containers_are_locked_down(values: tuple[Path, ...]) -> None:
    for workload in workloads(render(values)):
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc.get("privileged", False) is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "add" not in sc["capabilities"]
        assert pod_spec(workload).get("hostNetwork", False) is False
        assert pod_spec(workload).get("hostPID", False) is False


def test_non_root_by_default_and_root_only_when_asked() -> None:
    default = render()
    for workload in workloads(default):
        for c in containers(workload):
            assert _effective(workload, c, "runAsNonRoot") is True
            assert _effective(workload, c, "runAsUser") != 0

    rooted = render(set_values=["node.runAsRoot=true"])
    node = one(rooted, "DaemonSet", "node")
    assert _effective(node, containers(node)[0], "runAsUser") == 0
    assert _effective(node, containers(node)[0], "runAsNonRoot") is False
    grid = one(rooted, "Deployment", "grid")
    assert _effective(grid, containers(grid)[0], "runAsNonRoot") is True


def test_gpu_cluster_reaches_tainted_gpu_nodes_and_sees_gpus() -> None:
    docs = render([CHART / "ci" / "gpu-cluster-values.yaml"])
    node = one(docs, "DaemonSet", "node")
    spec = pod_spec(node)
    assert spec["runtimeClassName"] == "nvidia"
    assert any(t.get("key") == "nvidia.com/gpu" and t["operator"] == "Exists" for t in spec["tolerations"])
    env = {e["name"]: e for e in containers(node)[0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"]["value"] == "all"
    assert "utility" in env["NVIDIA_DRIVER_CAPABILITIES"]["value"]
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    # Defaults: every taint tolerated, no runtimeClassName unless asked.
    default = pod_spec(one(render(), "DaemonSet", "node"))
    assert default["tolerations"] == [{"operator": "Exists"}]
    assert "runtimeClassName" not in default


# --- grid: one caller, keys only there ------------------------------------------------------------------


def test_node_pods_read_the_single_grid_deployment_through_the_peer_provider() -> None:
    docs = render()
    grid = one(docs, "Deployment", "grid")
    assert grid["spec"]["replicas"] == 1
    service = one(docs, "Service", "grid")
    assert service["spec"]["selector"].items() <= grid["spec"]["template"]["metadata"]["labels"].items()
    port = service["spec"]["ports"][0]["port"]
    node_args = containers(one(docs, "DaemonSet", "node"))[0]["args"]
    assert "--grid.provider=peer" in node_args
    assert f"--grid.peer.url=http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}" in node_args
    assert "--grid.fallback=static" in node_args
    assert f"--web.listen-address=:{port}" in containers(grid)[0]["args"]


def test_grid_disabled_keeps_nodes_offline_and_refuses_keyed_providers() -> None:
    docs = render(set_values=["grid.enabled=false", "grid.zone=FR"])
    assert not by_kind(docs, "Deployment")
    assert len(by_kind(docs, "Service")) == 1
    args = containers(one(docs, "DaemonSet", "node"))[0]["args"]
    assert "--grid.provider=static" in args and "--grid.zone=FR" in args
    assert not any(a.startswith("--grid.peer") for a in args)
    with pytest.raises(HelmError, match=re.escape("grid.provider=electricitymaps needs grid.enabled=true")):
        render(set_values=["grid.enabled=false", "grid.provider=electricitymaps"])


def test_keyed_provider_without_a_key_is_refused_with_a_clear_message() -> None:
    with pytest.raises(HelmError, match="electricitymaps provider needs an API token"):
        render(set_values=["grid.provider=electricitymaps"])
    with pytest.raises(HelmError, match=re.escape("watttime provider needs grid.watttime.username")):
        render(set_values=["grid.provider=watttime", "grid.credentials.watttimePassword=x"])


def _secret_references(workload: dict[str, Any]) -> set[str]:
    """Names of Secrets a workload's pods can read: volumes (plain and projected), env and envFrom."""
    spec = pod_spec(workload)
    names = set()
    for v in spec.get("volumes", []):
        if "secret" in v:
            names.add(v["secret"]["secretName"])
        for source in v.get("projected", {}).get("sources", []):
            if "secret" in source:
                names.add(source["secret"]["name"])
    for c in containers(workload):
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for e in c.get("envFrom", []):
            if "secretRef" in e:
                names.add(e["secretRef"]["name"])
    return names


@pytest.mark.parametrize(
    ("values", "created"),
    [
        (CHART / "ci" / "everything-on-values.yaml", True),
        (CHART / "ci" / "gpu-cluster-values.yaml", False),
    ],
    ids=["chart-made-secret", "existing-secret"],
)
def test_only_the_grid_pod_sees_the_api_key(values: Path, created: bool) -> None:
    docs = render([values])
    config = yaml.safe_load(values.read_text())["grid"]
    grid = one(docs, "Deployment", "grid")
    secrets = by_kind(docs, "Secret")
    if created:
        (secret,) = secrets
        name = secret["metadata"]["name"]
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert data == {
            "electricitymaps-token": config["credentials"]["electricitymapsToken"],
            "watttime-password": config["credentials"]["watttimePassword"],
        }
    else:
        assert not secrets
        name = config["credentials"]["existingSecret"]
    for workload in workloads(docs):
        refs = _secret_references(workload)
        if workload is grid:
            assert refs == {name}
        else:
            assert name not in refs, f"{workload['kind']} {workload['metadata']['name']} can read the API key"
            text = json.dumps(workload)
            assert "token-file" not in text and "password-file" not in text and "credentials" not in text
    (mount,) = [m for m in containers(grid)[0]["volumeMounts"] if m["name"] == "credentials"]
    assert mount["readOnly"] is True
    args = containers(grid)[0]["args"]
    if "electricitymaps" in [config["provider"], *config["fallback"]]:
        assert f"--grid.electricitymaps.token-file={mount['mountPath']}/electricitymaps-token" in args
    # The key travels as a file, never as an argument or environment value.
    if created:
        for secret_value in data.values():
            assert secret_value not in json.dumps(workloads(docs))
    assert pod_spec(grid)["automountServiceAccountToken"] is False


def test_rbac_is_get_list_watch_on_pods_only() -> None:
    docs = render()
    (role,) = by_kind(docs, "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    (binding,) = by_kind(docs, "ClusterRoleBinding")
    account = one(docs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert not by_kind(render(set_values=["node.kubernetes.enabled=false"]), "ClusterRole")


@pytest.mark.parametrize("values", CASES)
def test_rendered_arguments_are_accepted_by_the_exporter(values: tuple[Path, ...]) -> None:
    """Every flag the chart passes exists and parses in the real exporter's settings loader."""
    sys.path.insert(0, str(REPO / "exporter"))
    try:
        from footprint import config
    finally:
        sys.path.remove(str(REPO / "exporter"))
    for workload in workloads(render(values)):
        for c in containers(workload):
            env = {e["name"]: e.get("value", "") for e in c.get("env", []) if not e["name"].startswith("FOOTPRINT_")}
            try:
                config.load(c["args"], env=env)
            except config.ConfigError as exc:
                pytest.fail(f"{workload['metadata']['name']}/{c['name']}: {exc}")


# --- opt-in Prometheus Operator objects and dashboards --------------------------------------------------


@pytest.mark.parametrize(("kind", "key"), [("ServiceMonitor", "serviceMonitor"), ("PrometheusRule", "prometheusRule")])
def test_operator_objects_are_opt_in_and_gated_on_the_api(kind: str, key: str) -> None:
    assert not by_kind(render(api_versions=[MONITORING]), kind), "present while disabled"
    assert not by_kind(render(set_values=[f"{key}.enabled=true"]), kind), "present without the CRD API"
    docs = render(set_values=[f"{key}.enabled=true", f"{key}.labels.release=kps"], api_versions=[MONITORING])
    found = by_kind(docs, kind)
    assert found
    for obj in found:
        assert obj["metadata"]["labels"]["release"] == "kps"
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_service_monitors_select_their_services_and_name_the_jobs() -> None:
    docs = render(set_values=["serviceMonitor.enabled=true"], api_versions=[MONITORING])
    services = {s["metadata"]["labels"]["app.kubernetes.io/component"]: s for s in by_kind(docs, "Service")}
    monitors = by_kind(docs, "ServiceMonitor")
    assert len(monitors) == 2
    jobs = set()
    for monitor in monitors:
        spec = monitor["spec"]
        matched = [
            s for s in services.values() if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(matched) == 1
        assert spec["endpoints"][0]["port"] == matched[0]["spec"]["ports"][0]["name"]
        jobs.add(matched[0]["metadata"]["labels"][spec["jobLabel"]])
    assert jobs == {"footprint", "footprint-grid"}
    # The alerts find the exporters by job, whatever the release is called.
    regex = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["thresholds"]["exporterJobRegex"]
    assert all(re.fullmatch(regex, job) for job in jobs)
    node_monitor = one(monitors, "ServiceMonitor", "node")
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "instance", "action": "replace"} in (
        node_monitor["spec"]["endpoints"][0]["relabelings"]
    )


def test_prometheus_rule_carries_the_rules_with_thresholds_from_values() -> None:
    docs = render(
        set_values=["prometheusRule.enabled=true", "prometheusRule.thresholds.emissionsRateClusterGramsPerHour=12345"],
        api_versions=[MONITORING],
    )
    rule = one(docs, "PrometheusRule")
    groups = rule["spec"]["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    records = [r["record"] for g in groups for r in g["rules"] if "record" in r]
    assert {"FootprintEmissionsRateHigh", "FootprintExporterDown", "FootprintMeterDown"} <= {a["alert"] for a in alerts}
    assert records
    assert any("> 12345" in a["expr"] for a in alerts if a["alert"] == "FootprintEmissionsRateHigh")
    for alert in alerts:
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"])


def test_dashboards_are_opt_in_config_maps_for_the_grafana_sidecar() -> None:
    sources = sorted((CHART / "dashboards").glob("*.json"))
    assert not by_kind(render(), "ConfigMap")
    docs = render(set_values=["dashboards.enabled=true", "dashboards.folder=Energy", "dashboards.namespace=grafana"])
    maps = by_kind(docs, "ConfigMap")
    assert len(maps) == len(sources)
    by_file = {next(iter(m["data"])): m for m in maps}
    assert set(by_file) == {s.name for s in sources}
    for source in sources:
        cm = by_file[source.name]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Energy"
        assert cm["metadata"]["namespace"] == "grafana"
        assert json.loads(cm["data"][source.name]) == json.loads(source.read_text())


# --- values schema ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("node.runAsRoot=yes", "at '/node/runAsRoot': got string, want boolean"),
        ("service.port=http", "at '/service/port': got string, want integer"),
        ("node.sampleInterval=soon", "at '/node/sampleInterval'"),
        ("grid.provider=coal", "at '/grid/provider'"),
        ("node.runAsRooot=true", "at '/node': additional properties 'runAsRooot' not allowed"),
        ("serviceMonitor.intervall=1m", "at '/serviceMonitor': additional properties 'intervall' not allowed"),
        ("prometheusRule.thresholds.emisionsRateFor=1m", "additional properties 'emisionsRateFor' not allowed"),
    ],
)
def test_schema_rejects_wrong_types_and_unknown_keys_clearly(setting: str, message: str) -> None:
    with pytest.raises(HelmError) as info:
        render(set_values=[setting])
    assert "values don't meet the specifications of the schema" in str(info.value)
    assert message in str(info.value)


def _object_nodes(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object" or (isinstance(node.get("type"), list) and "object" in node["type"]):
            yield path, node
        for key, value in node.items():
            yield from _object_nodes(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _object_nodes(value, f"{path}/{i}")


def test_schema_is_strict_everywhere() -> None:
    """Every object either forbids unknown keys or is a typed map (labels, resources) or a pass-through
    Kubernetes object (affinity terms, valueFrom), which the API server validates."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    pass_through = {
        "#/properties/global",
        "#/definitions/affinity/properties/nodeAffinity",
        "#/definitions/affinity/properties/podAffinity",
        "#/definitions/affinity/properties/podAntiAffinity",
        "#/definitions/env/items/properties/valueFrom",
        "#/definitions/volumes/items/additionalProperties",
    }
    for path, node in _object_nodes(schema):
        if path in pass_through:
            continue
        extra = node.get("additionalProperties")
        assert extra is False or (isinstance(extra, dict) and "type" in extra), f"{path} accepts unknown keys"


def test_every_default_validates_and_every_value_is_in_the_schema() -> None:
    """values.yaml and the schema list the same keys (a key missing from the schema could not be set)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(value: Any, node: dict[str, Any], path: str, shared: bool = False) -> None:
        shared = shared or "$ref" in node  # inside a shared Kubernetes type (affinity, resources): optional keys
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(value, dict) and "properties" in node:
            assert set(value) <= set(node["properties"]), f"{path}: {set(value) - set(node['properties'])}"
            missing = set(node["properties"]) - set(value) - {"global"}
            assert shared or not missing, f"{path}: in the schema but not in values.yaml: {missing}"
            for key, sub in value.items():
                walk(sub, node["properties"][key], f"{path}.{key}", shared)

    walk(values, schema, "values")


def test_threshold_defaults_equal_the_plain_rules_source_of_truth() -> None:
    plain = yaml.safe_load((REPO / "prometheus" / "thresholds.yaml").read_text())
    chart = yaml.safe_load((CHART / "values.yaml").read_text())["prometheusRule"]["thresholds"]
    assert chart == plain


# --- generated parts ----------------------------------------------------------------------------------------


def test_chart_copies_and_values_table_are_up_to_date() -> None:
    """scripts/sync_chart.py --check: dashboards equal grafana/dashboards, README table equals values.yaml."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "sync_chart.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.returncode == 0, proc.stderr


def test_values_table_documents_every_value() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import sync_chart
    finally:
        sys.path.remove(str(REPO / "scripts"))
    readme = (CHART / "README.md").read_text()
    keys = [k for k, _ in sync_chart.documented_keys((CHART / "values.yaml").read_text())]
    for key in ("node.runAsRoot", "grid.credentials.existingSecret", "prometheusRule.thresholds.runbookUrl"):
        assert key in keys
        assert f"| `{key}` |" in readme
    with pytest.raises(sync_chart.ChartSyncError, match=re.escape("b.c has no '# --' description")):
        sync_chart.documented_keys("# -- documented\na: 1\nb:\n  c: 2\n")


def _notes(*set_values: str) -> str:
    """NOTES.txt as `helm install --dry-run=client` prints it (helm template does not render it)."""
    args = ["install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE]
    for s in set_values:
        args += ["--set", s]
    return _run_helm(tuple(args)).partition("NOTES:")[2]


def test_notes_say_what_runs_and_warn_about_what_was_skipped() -> None:
    notes = _notes("serviceMonitor.enabled=true", "grid.provider=neso", "grid.zone=GB")
    assert f"svc/{RELEASE}-footprint-node" in notes
    assert "provider chain: neso -> static" in notes
    assert "no ServiceMonitor was created" in notes  # a dry run serves no monitoring.coreos.com/v1
    assert "node.runAsRoot=true" in notes
    assert "world average" not in notes
    quiet = _notes("node.runAsRoot=true")
    assert "WARNING" not in quiet and "node.runAsRoot=true" not in quiet
    assert "world average" in quiet
    assert "provider chain: static)" in quiet


def test_rendered_node_and_grid_pods_work_together_through_the_peer_provider(tmp_path: Path) -> None:
    """Run the real exporter with the chart's own arguments for both pods (host paths, the API server and
    the Service DNS name swapped for local equivalents): the node reads the grid pod's intensity."""
    from tests.support.exporter import start_exporter

    docs = render(set_values=["grid.provider=constant", "grid.constantValue=123", "grid.zone=DE"])
    grid_args = [a for a in containers(one(docs, "Deployment", "grid"))[0]["args"] if "--web.listen-address" not in a]
    node_args = containers(one(docs, "DaemonSet", "node"))[0]["args"]
    with start_exporter(grid_args) as grid:
        local = []
        for arg in node_args:
            if arg.startswith(("--web.listen-address", "--path.", "--kubernetes.")):
                continue
            if arg.startswith("--grid.peer.url="):
                arg = f"--grid.peer.url={grid.url}"
            elif arg.startswith("--state.file="):
                arg = f"--state.file={tmp_path / 'state.json'}"
            local.append(arg)
        assert any(a.startswith("--grid.peer.url=") for a in local)
        with start_exporter(local) as node:
            line = 'footprint_grid_accounting_intensity_grams_per_kilowatt_hour{grid_zone="DE",provider="peer",'
            text = node.wait_until(lambda t: t if line in t else None, timeout=30)
            assert re.search(re.escape(line) + r'signal="average"} 123(\.0)?$', text, re.M)
            assert re.search(r"^footprint_grid_fallback_active 0(\.0)?$", text, re.M)
