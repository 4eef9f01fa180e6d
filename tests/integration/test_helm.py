"""The Helm chart, rendered by the real helm binary and checked against real Kubernetes schemas.

helm comes from PATH or <repo>/.tools/bin (scripts/tools/helm.sh installs it); kubernetes-validate is a
dev dependency and validates the built-in kinds strictly. The Prometheus Operator's objects (ServiceMonitor,
PodMonitor, PrometheusRule) are validated against the operator's CRD schemas from the npm package
@kubernetes-models/prometheus-operator (scripts/tools/operator-schemas.sh; tests/support/operator_schemas.py),
unknown fields included.
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
from functools import cache, partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import operator_schemas

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
    """The pod's containers, then its init containers (so [0] is the exporter)."""
    spec = pod_spec(workload)
    return list(spec["containers"]) + list(spec.get("initContainers", []))


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob", "Pod")]


CASES = [pytest.param((), id="defaults")] + [pytest.param((f,), id=f.stem) for f in CI_FILES]
# --set combinations on top of the defaults: TLS with basic auth, NetworkPolicy, PodMonitor, release label.
WEB = [
    "web.existingSecret=fp-web", "web.tls=true", "web.peer.caKey=ca.crt", "web.peer.username=node",
    "web.peer.passwordKey=peer-password", "serviceMonitor.tlsConfig.ca.secret.name=fp-web",
    "serviceMonitor.tlsConfig.ca.secret.key=ca.crt", "serviceMonitor.basicAuth.username.name=fp-scrape",
    "serviceMonitor.basicAuth.username.key=user", "serviceMonitor.basicAuth.password.name=fp-scrape",
    "serviceMonitor.basicAuth.password.key=password",
]
MONITORS = ["serviceMonitor.enabled=true", "prometheusRule.enabled=true"]
SETS = {
    "tls-basic-auth": [*WEB, *MONITORS],
    "network-policy": ["networkPolicy.enabled=true"],
    "pod-monitor": [*MONITORS, "serviceMonitor.kind=PodMonitor"],
    "release-label": [*MONITORS, "serviceMonitor.release=kube-prometheus-stack", "dashboards.enabled=true"],
    "everything": [*WEB, *MONITORS, "networkPolicy.enabled=true", "serviceMonitor.kind=PodMonitor",
                   "serviceMonitor.release=kps", "global.imageRegistry=registry.example.com"],
}
COMBINATIONS = [pytest.param((), (), id="defaults")]
COMBINATIONS += [pytest.param((f,), (), id=f.stem) for f in CI_FILES]
COMBINATIONS += [pytest.param((), tuple(v), id=k) for k, v in SETS.items()]


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


def test_kube_version_has_a_floor_and_no_ceiling() -> None:
    """The oldest Kubernetes is the oldest whose schemas the tests validate against; newer clusters than
    today's are not refused (an upper bound breaks installs on every new release)."""
    oldest, newest = _versions()
    major, minor, _ = (int(p) for p in newest.split("."))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={oldest}-0"
    with pytest.raises(HelmError, match="incompatible with Kubernetes"):
        render(kube_version=f"1.{int(oldest.split('.')[1]) - 1}.0")
    for newer in (f"{major}.{minor + 1}.0", f"{major}.{minor + 20}.0"):
        assert one(render(kube_version=newer), "DaemonSet")


@pytest.mark.parametrize(("values", "set_values"), COMBINATIONS)
def test_rendered_manifests_validate_strictly_for_oldest_and_newest_kubernetes(
    values: tuple[Path, ...], set_values: tuple[str, ...]
) -> None:
    """Built-in kinds against kubernetes-validate's schemas (strict), the operator's kinds against its CRD
    schemas (unknown fields included), for every ci values file and the --set combinations."""
    kv = _validator()
    for version in _versions():
        docs = render(values, set_values, api_versions=[MONITORING], kube_version=version)
        checked = 0
        custom = [doc for doc in docs if doc["apiVersion"] == MONITORING]
        for doc in docs:
            if doc["apiVersion"] == MONITORING:
                continue
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                pytest.fail(f"{doc['kind']} {doc['metadata']['name']} invalid for Kubernetes {version}: {exc}")
            checked += 1
        assert checked >= 6  # ServiceAccount, RBAC pair, 2 Services, DaemonSet (+ grid Deployment)
        for doc, problems in zip(custom, operator_schemas.validate(custom), strict=True):
            assert not problems, f"{doc['kind']} {doc['metadata']['name']}: {problems}"


def test_operator_schema_validation_catches_wrong_types_and_unknown_fields() -> None:
    """The CRD check above is not vacuous: a wrong type, a bad enum and a misspelt field are each caught."""
    docs = render(set_values=MONITORS, api_versions=[MONITORING])
    monitor = copy.deepcopy(one(docs, "ServiceMonitor", "node"))
    assert operator_schemas.validate([monitor]) == [[]]
    endpoint = monitor["spec"]["endpoints"][0]
    for key, bad, message in [("honorLabels", "yes", "must be boolean"), ("scheme", "ftp", "allowed values"),
                              ("honorLabel", True, "honorLabel: unknown field")]:
        broken = copy.deepcopy(monitor)
        broken["spec"]["endpoints"][0] = {**endpoint, key: bad}
        (problems,) = operator_schemas.validate([broken])
        assert any(message in p for p in problems), (key, problems)
    rule = copy.deepcopy(one(docs, "PrometheusRule"))
    rule["spec"]["groups"][0]["rules"][0]["exprr"] = "up"
    assert any("exprr: unknown field" in p for p in operator_schemas.validate([rule])[0])


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
    """Only the checkpoint directory (node.state.type=hostPath) may be writable on the host, and the
    powercap tree in the RAPL permission init container (which exists to chmod it)."""
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
            if container == "rapl-permissions":
                assert host_path == "/sys/devices/virtual" and mount["name"] == "powercap"
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
    """Every container drops every capability; the one exception is the RAPL init container, which
    keeps CHOWN alone (to chgrp energy_uj) and runs before the exporter starts."""
    for workload in workloads(render(values)):
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc.get("privileged", False) is False
            if c["name"] == "rapl-permissions":
                assert sc["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
                assert c in pod_spec(workload)["initContainers"]
                continue
            assert sc["capabilities"] == {"drop": ["ALL"]}
        assert pod_spec(workload).get("hostNetwork", False) is False
        assert pod_spec(workload).get("hostPID", False) is False
        # Service links would put FOOTPRINT_NODE_SERVICE_HOST & co. into the exporter's environment.
        assert pod_spec(workload)["enableServiceLinks"] is False


def test_non_root_by_default_and_root_only_when_asked() -> None:
    default = render()
    for workload in workloads(default):
        for c in pod_spec(workload)["containers"]:
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
    web = yaml.safe_load(values.read_text()).get("web", {}).get("existingSecret")
    for workload in workloads(docs):
        refs = _secret_references(workload) - {web}  # the web config (TLS, auth) Secret goes to both pods
        if workload is grid:
            assert refs == {name}
        else:
            assert name not in refs, f"{workload['kind']} {workload['metadata']['name']} can read the API key"
            text = json.dumps(workload)
            for grid_only in ("electricitymaps.token-file", "watttime.password-file", "/etc/footprint/credentials"):
                assert grid_only not in text
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


def test_rbac_grants_exactly_what_the_code_calls() -> None:
    """list pods (GET /api/v1/pods?fieldSelector=spec.nodeName=..., attribution/apiserver.py) and get
    nodes (the own Node's region label and providerID); no watch, no get on pods."""
    source = (REPO / "exporter" / "footprint" / "attribution" / "apiserver.py").read_text()
    assert "/api/v1/pods?" in source and "fieldSelector" in source and "/api/v1/nodes/" in source
    docs = render()
    (role,) = by_kind(docs, "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
    ]
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
        for c in pod_spec(workload)["containers"]:
            env = {e["name"]: e.get("value", "") for e in c.get("env", []) if not e["name"].startswith("FOOTPRINT_")}
            try:
                config.load(c["args"], env=env)
            except config.ConfigError as exc:
                pytest.fail(f"{workload['metadata']['name']}/{c['name']}: {exc}")


# --- opt-in Prometheus Operator objects and dashboards --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "key"),
    [("ServiceMonitor", "serviceMonitor"), ("PodMonitor", "serviceMonitor"), ("PrometheusRule", "prometheusRule")],
)
def test_operator_objects_are_opt_in_never_dropped_silently_and_carry_the_release(kind: str, key: str) -> None:
    """Without the CRD API the chart fails naming the two ways out (--api-versions, forceRender) instead
    of rendering nothing; forceRender renders them for helm template / GitOps; serviceMonitor.release
    becomes the `release` label kube-prometheus-stack's Prometheus selects on."""
    on = [f"{key}.enabled=true", f"serviceMonitor.kind={kind if kind != 'PrometheusRule' else 'ServiceMonitor'}"]
    assert not by_kind(render(set_values=on[1:], api_versions=[MONITORING]), kind), "present while disabled"
    with pytest.raises(HelmError, match=r"does not serve monitoring\.coreos\.com/v1.*--api-versions.*forceRender"):
        render(set_values=on)
    for docs in (render(set_values=[*on, "serviceMonitor.forceRender=true"]),
                 render(set_values=on, api_versions=[MONITORING])):
        assert by_kind(docs, kind)
        assert all("release" not in obj["metadata"]["labels"] for obj in by_kind(docs, kind))
    docs = render(set_values=[*on, "serviceMonitor.release=kube-prometheus-stack", f"{key}.labels.team=a"],
                  api_versions=[MONITORING])
    found = by_kind(docs, kind)
    assert len(found) == (1 if kind == "PrometheusRule" else 2)
    for obj in found:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert obj["metadata"]["labels"]["team"] == "a"
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_readme_install_command_sets_the_release_label() -> None:
    readme = (REPO / "README.md").read_text()
    command = re.search(r"^(helm install footprint [^`]+)```", readme, re.M)
    assert command, "README has no helm install command"
    text = command.group(1)
    assert "--set serviceMonitor.release=kube-prometheus-stack" in text and "kube-prometheus-stack-values" in text
    values = yaml.safe_load((CHART / "ci" / "kube-prometheus-stack-values.yaml").read_text())
    assert values["serviceMonitor"]["release"] == "kube-prometheus-stack"
    assert values["serviceMonitor"]["enabled"] and values["prometheusRule"]["enabled"]


def test_service_monitors_select_their_services_and_name_the_jobs() -> None:
    docs = render(set_values=["serviceMonitor.enabled=true"], api_versions=[MONITORING])
    honor = {m["metadata"]["labels"]["app.kubernetes.io/component"]: m["spec"]["endpoints"][0]["honorLabels"]
             for m in by_kind(docs, "ServiceMonitor")}
    # The node exporter's namespace/pod/container labels are the workloads' (test_operator_scrape.py).
    assert honor == {"node": True, "grid": False}
    off = render(set_values=["serviceMonitor.enabled=true", "serviceMonitor.honorLabels=false"],
                 api_versions=[MONITORING])
    assert one(off, "ServiceMonitor", "node")["spec"]["endpoints"][0]["honorLabels"] is False
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


def test_pod_monitors_select_the_pods_and_name_the_same_jobs() -> None:
    docs = render(set_values=["serviceMonitor.enabled=true", "serviceMonitor.kind=PodMonitor"],
                  api_versions=[MONITORING])
    assert not by_kind(docs, "ServiceMonitor")
    jobs = set()
    for monitor in by_kind(docs, "PodMonitor"):
        spec = monitor["spec"]
        selector = spec["selector"]["matchLabels"].items()
        (workload,) = [w for w in workloads(docs) if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        ports = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
        assert spec["podMetricsEndpoints"][0]["port"] in ports
        jobs.add(workload["spec"]["template"]["metadata"]["labels"][spec["jobLabel"]])
    assert jobs == {"footprint", "footprint-grid"}


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
    # The annotation key follows the sidecar's folderAnnotation setting.
    other = render(set_values=["dashboards.enabled=true", "dashboards.folder=Energy",
                               "dashboards.folderAnnotation=k8s-sidecar-target-directory"])
    for cm in by_kind(other, "ConfigMap"):
        assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "Energy"}
    chart_readme = (CHART / "README.md").read_text()
    assert "grafana.sidecar.dashboards.folderAnnotation=grafana_folder" in chart_readme


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
        "#/properties/serviceMonitor/properties/tlsConfig",  # operator types, checked by the CRD schemas
        "#/properties/serviceMonitor/properties/basicAuth",
        "#/properties/networkPolicy/properties/prometheus/items",  # Kubernetes types (kubernetes-validate)
        "#/properties/networkPolicy/properties/gridEgress/items",
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


def _recording_rule_panels() -> int:
    """Dashboard panels whose queries read a recording rule (level:metric:operation names)."""
    count = 0
    for path in sorted((CHART / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            exprs = [t.get("expr", "") for t in panel.get("targets", [])]
            count += any(re.search(r"[a-z_]+:[a-z_0-9]+:[a-z_0-9]+", e) for e in exprs)
    return count


def test_notes_say_what_runs_and_warn_about_what_was_skipped() -> None:
    notes = _notes("serviceMonitor.enabled=true", "serviceMonitor.forceRender=true", "grid.provider=neso",
                   "grid.zone=GB")
    assert f"svc/{RELEASE}-footprint-node" in notes
    assert "provider chain: neso -> static" in notes
    assert "ServiceMonitors carry no release label" in notes and "serviceMonitor.release" in notes
    assert "node.runAsRoot=true" in notes
    assert "world average" not in notes
    assert "RAPL" not in notes  # the init container makes RAPL readable without root
    quiet = _notes("node.runAsRoot=true")
    assert "WARNING" not in quiet and "node.runAsRoot=true" not in quiet
    assert "world average" in quiet
    assert "provider chain: static)" in quiet
    released = _notes("serviceMonitor.enabled=true", "prometheusRule.enabled=true", "serviceMonitor.forceRender=true",
                      "serviceMonitor.release=kube-prometheus-stack", "dashboards.enabled=true", "grid.zone=DE")
    assert "WARNING" not in released
    assert "RAPL energy counters are root-only" in _notes("node.raplPermissions.enabled=false")


def test_notes_warn_when_dashboards_are_on_and_rules_off() -> None:
    panels = _recording_rule_panels()
    assert panels >= 20
    notes = _notes("dashboards.enabled=true", "grid.zone=DE")
    assert f"prometheusRule.enabled is false: {panels} dashboard panels read the" in notes


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


# --- TLS and basic auth end to end ------------------------------------------------------------------------


def _https_get(port: int, context: Any, path: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_tls_and_basic_auth_work_end_to_end_with_the_rendered_arguments(tmp_path: Path) -> None:
    """The web config Secret (TLS + basic auth) as the chart mounts it: both pods serve HTTPS, the probes'
    /healthz answers over HTTPS without credentials, /metrics needs them, and the node pod reads the grid
    pod over https with the CA and its own basic-auth user (the peer provider's settings)."""
    import ssl

    import bcrypt

    from tests.support.exporter import free_port
    from tests.support.prometheus import wait_until
    from tests.support.tls import CA

    docs = render(set_values=[*WEB, "grid.provider=constant", "grid.constantValue=123", "grid.zone=DE"])
    grid_c = containers(one(docs, "Deployment", "grid"))[0]
    node_c = containers(one(docs, "DaemonSet", "node"))[0]
    grid_svc = one(docs, "Service", "grid")["metadata"]["name"]
    for c in (grid_c, node_c):
        for probe in (c["livenessProbe"], c["readinessProbe"]):
            assert probe["httpGet"]["scheme"] == "HTTPS" and probe["httpGet"]["path"] == "/healthz"
        assert {"name": "web-config", "mountPath": "/etc/footprint/web", "readOnly": True} in c["volumeMounts"]
    peer_url = next(a for a in node_c["args"] if a.startswith("--grid.peer.url="))
    assert peer_url == f"--grid.peer.url=https://{grid_svc}.{NAMESPACE}.svc:10180"

    # The Secret's files, where the pods would see them at /etc/footprint/web.
    secret = tmp_path / "web"
    secret.mkdir()
    ca = CA(secret, "footprint-ca")
    leaf = ca.issue("grid", ["127.0.0.1", f"{grid_svc}.{NAMESPACE}.svc"])
    (secret / "ca.crt").write_bytes(ca.path.read_bytes())
    (secret / "peer-password").write_text("node-secret\n")
    users = {u: bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4)).decode()
             for u, p in (("prometheus", "scrape-secret"), ("node", "node-secret"))}
    (secret / "web-config.yml").write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(leaf.cert), "key_file": str(leaf.key)},
        "basic_auth_users": users,
    }))
    client = ssl.create_default_context(cafile=str(secret / "ca.crt"))

    def local(args: list[str], port: int, peer: int | None = None) -> list[str]:
        out = [f"--web.listen-address=127.0.0.1:{port}"]
        for arg in args:
            if arg.startswith(("--web.listen-address", "--path.", "--kubernetes.", "--state.file")):
                continue
            if arg.startswith("--grid.peer.url="):
                arg = f"--grid.peer.url=https://127.0.0.1:{peer}"
            out.append(arg.replace("/etc/footprint/web", str(secret)))
        return [*out, f"--path.sysfs={tmp_path}", "--no-meter.nvml"]

    procs = []
    try:
        grid_port, node_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
        env["PYTHONPATH"] = str(REPO / "exporter")
        for args in (local(grid_c["args"], grid_port), local(node_c["args"], node_port, grid_port)):
            assert any(a.startswith("--web.config.file=") for a in args)
            procs.append(subprocess.Popen([sys.executable, "-m", "footprint", *args], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

        def healthy(port: int) -> bool:
            for p in procs:
                assert p.poll() is None, p.stderr.read().decode() if p.stderr else ""
            try:
                return _https_get(port, client, "/healthz")[0] == 200  # no credentials: probes work
            except OSError:
                return False

        for port in (grid_port, node_port):
            wait_until(partial(healthy, port), timeout=30, what=f"https /healthz on {port}")
            assert _https_get(port, client, "/metrics")[0] == 401
        line = 'footprint_grid_accounting_intensity_grams_per_kilowatt_hour{grid_zone="DE",provider="peer",'

        def peer_value() -> bytes | None:
            status, body = _https_get(node_port, client, "/metrics", ("prometheus", "scrape-secret"))
            return body if status == 200 and line.encode() in body else None

        body = wait_until(peer_value, timeout=30, what="the node pod to read the grid pod over https")
        assert re.search(re.escape(line) + r'signal="average"} 123(\.0)?$', body.decode(), re.M)
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


# --- RAPL without root, priority, registry, NetworkPolicy --------------------------------------------------


def _powercap_layout(root: Path) -> list[Path]:
    """The real sysfs shape: zones under devices/virtual/powercap/intel-rapl/ (sub-zones nested), linked from
    class/powercap, each with a `subsystem` link back (a loop that `find` must not follow); energy_uj is
    root-only (0400) as on kernels since the 2020 PLATYPUS mitigation."""
    base = root / "devices" / "virtual" / "powercap" / "intel-rapl"
    links = root / "class" / "powercap"
    links.mkdir(parents=True)
    files = []
    for zone, parent in (("intel-rapl:0", None), ("intel-rapl:0:0", "intel-rapl:0"), ("intel-rapl:1", None)):
        path = (base / parent / zone) if parent else (base / zone)
        path.mkdir(parents=True)
        (path / "name").write_text(zone + "\n")
        (path / "energy_uj").write_text("123456\n")
        (path / "energy_uj").chmod(0o400)
        (path / "max_energy_range_uj").write_text("262143328850\n")
        (path / "subsystem").symlink_to(links)
        (links / zone).symlink_to(path)
        files.append(path / "energy_uj")
    return files


def _reads(path: Path, groups: list[int]) -> bool:
    """Can a process of the exporter's user (65532) with these supplementary groups read `path`?"""
    proc = subprocess.run(["cat", str(path)], capture_output=True, user=65532, group=65532, extra_groups=groups,
                          timeout=10)
    return proc.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chgrp to another group and switching users need root")
def test_rapl_init_container_makes_energy_readable_to_the_exporter_group_only() -> None:
    """The init container's own script, run on a real-shaped sysfs tree: afterwards the exporter's user in
    the configured group reads energy_uj (through the class/powercap links), other non-root users do not."""
    import tempfile

    node = one(render(), "DaemonSet", "node")
    spec = pod_spec(node)
    (init,) = spec["initContainers"]
    assert init["name"] == "rapl-permissions"
    assert spec["securityContext"]["supplementalGroups"] == [10180]
    (mount,) = init["volumeMounts"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["hostPath"] == {"path": "/sys/devices/virtual", "type": "Directory"}
    root = Path(tempfile.mkdtemp(prefix="fp-sysfs-"))  # pytest's tmp_path is 0700: other users cannot enter
    try:
        root.chmod(0o755)
        files = _powercap_layout(root)
        linked = root / "class" / "powercap" / "intel-rapl:0" / "energy_uj"
        assert not _reads(linked, [10180])
        script = init["args"][0].replace(mount["mountPath"], str(root / "devices" / "virtual"))
        proc = subprocess.run([*init["command"], script], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert "3 energy_uj files readable by group 10180" in proc.stdout
        for f in files:
            assert f.stat().st_gid == 10180 and f.stat().st_mode & 0o777 == 0o440
        assert _reads(linked, [10180])
        assert not _reads(linked, [])  # e.g. a distroless "nonroot" (65532) container of another workload
        # No powercap tree (ARM, VMs without RAPL): the pod still starts.
        bare = Path(tempfile.mkdtemp(prefix="fp-sysfs-"))
        script = init["args"][0].replace(mount["mountPath"], str(bare))
        proc = subprocess.run([*init["command"], script], capture_output=True, text=True, timeout=30)
        shutil.rmtree(bare)
        assert proc.returncode == 0 and "no powercap zones" in proc.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for off in (["node.runAsRoot=true"], ["node.meters.rapl=false"], ["node.raplPermissions.enabled=false"]):
        spec = pod_spec(one(render(set_values=off), "DaemonSet", "node"))
        assert "initContainers" not in spec and "supplementalGroups" not in spec["securityContext"]


def test_node_pods_are_node_critical_and_images_follow_the_global_registry() -> None:
    docs = render()
    assert pod_spec(one(docs, "DaemonSet", "node"))["priorityClassName"] == "system-node-critical"
    assert "priorityClassName" not in pod_spec(one(docs, "Deployment", "grid"))
    assert "priorityClassName" not in pod_spec(one(render(set_values=["node.priorityClassName="]), "DaemonSet"))
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    images = {c["image"] for w in workloads(docs) for c in containers(w)}
    assert images == {f"ghcr.io/footprint-exporter/footprint-exporter:{version}"}
    moved = render(set_values=["global.imageRegistry=registry.example.com", "image.registry=ignored.example.com"])
    images = {c["image"] for w in workloads(moved) for c in containers(w)}
    assert images == {f"registry.example.com/footprint-exporter/footprint-exporter:{version}"}


def test_network_policies_let_only_prometheus_in_and_the_grid_pod_out_to_dns_and_its_api() -> None:
    assert not by_kind(render(), "NetworkPolicy")
    docs = render(set_values=["networkPolicy.enabled=true"])
    policies = {p["metadata"]["labels"]["app.kubernetes.io/component"]: p["spec"]
                for p in by_kind(docs, "NetworkPolicy")}
    prometheus = {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    metrics_port = [{"port": "http-metrics", "protocol": "TCP"}]
    node = one(docs, "DaemonSet", "node")
    grid = one(docs, "Deployment", "grid")
    for component, workload in (("node", node), ("grid", grid)):
        selector = policies[component]["podSelector"]["matchLabels"]
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    assert policies["node"]["policyTypes"] == ["Ingress"]  # egress stays open: API server, grid pod
    assert policies["node"]["ingress"] == [{"from": [prometheus], "ports": metrics_port}]
    assert policies["grid"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policies["grid"]["ingress"]
    assert rule["ports"] == metrics_port and prometheus in rule["from"]
    assert {"podSelector": policies["node"]["podSelector"]} in rule["from"]  # the node pods' peer reads
    assert policies["grid"]["egress"] == [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": 443, "protocol": "TCP"}]},
    ]
    assert len(by_kind(render(set_values=["networkPolicy.enabled=true", "grid.enabled=false"]), "NetworkPolicy")) == 1


# --- release: one version, make chart, make image ---------------------------------------------------------


def test_versions_come_from_pyproject() -> None:
    version = re.search(r'^version = "([^"]+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert version
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == chart["appVersion"] == version.group(1)
    assert f"ARG VERSION={version.group(1)}\n" in (REPO / "Dockerfile").read_text()
    for key in ("home", "sources", "icon", "maintainers"):
        assert chart[key], key
    assert (CHART / "icon.svg").exists() and chart["icon"].endswith("/helm/footprint/icon.svg")


def test_make_chart_packages_the_chart_and_make_image_builds_what_the_chart_pulls(tmp_path: Path) -> None:
    """`make chart` runs helm package for real; `make image` (docker is not on this machine) is checked as
    the command it would run: the tag is the chart's default image, the version the chart's appVersion."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    env = {**os.environ, "PATH": f"{Path(_helm()).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["make", "-s", "chart", f"DIST={tmp_path}"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    package = tmp_path / f"footprint-{chart['version']}.tgz"
    assert package.exists()
    shown = yaml.safe_load(_run_helm(("show", "chart", str(package))))
    assert shown["appVersion"] == chart["appVersion"]
    proc = subprocess.run(["make", "-n", "image"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    values = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    image = f"{values['registry']}/{values['repository']}:{chart['appVersion']}"
    (build,) = [line for line in proc.stdout.replace("\\\n", " ").splitlines() if line.startswith("docker build")]
    assert f"-t {image} " in build and f"--build-arg VERSION={chart['appVersion']} " in build
    assert build.rstrip().endswith(" .")
    readme = (REPO / "README.md").read_text()
    assert f"make image && docker push {image} " in readme  # what the README says to push is what the chart pulls


def test_sync_chart_writes_the_project_version_into_chart_and_dockerfile() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import sync_chart
    finally:
        sys.path.remove(str(REPO / "scripts"))
    chart = "apiVersion: v2\nversion: 0.1.0\nappVersion: \"0.1.0\"\nkubeVersion: \">=1.25.0-0\"\n"
    dockerfile = "FROM x\nARG VERSION=0.1.0\nARG REVISION=\"\"\n"
    assert sync_chart.project_version('[project]\nname = "x"\nversion = "1.2.3rc1"\n') == "1.2.3rc1"
    new_chart, new_dockerfile = sync_chart.versioned(chart, dockerfile, "1.2.3rc1")
    assert yaml.safe_load(new_chart) == {"apiVersion": "v2", "version": "1.2.3rc1", "appVersion": "1.2.3rc1",
                                         "kubeVersion": ">=1.25.0-0"}
    assert new_dockerfile == "FROM x\nARG VERSION=1.2.3rc1\nARG REVISION=\"\"\n"
    with pytest.raises(sync_chart.ChartSyncError, match="Dockerfile: expected one line"):
        sync_chart.versioned(chart, "FROM x\n", "1.0.0")
