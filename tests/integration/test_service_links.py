"""The exporter starts in a namespace where the chart's own Services exist (issue 15, item 1).

What the kubelet injects, from kubernetes/kubernetes pkg/kubelet/envvars/envvars.go (FromServices and
makeLinkVariables), into every container created after a Service with a cluster IP exists in its
namespace (PodSpec.enableServiceLinks defaults to true; headless Services get nothing). NAME is the
Service name upper-cased with '-' replaced by '_'; PROTO the port's protocol (TCP when unset):

    NAME_SERVICE_HOST=<clusterIP>
    NAME_SERVICE_PORT=<first port>
    NAME_SERVICE_PORT_<PORT NAME>=<port>             for each named port
    NAME_PORT=<proto>://<clusterIP>:<first port>     (net.JoinHostPort: [v6] in brackets)
    NAME_PORT_<port>_<PROTO>=<proto>://<clusterIP>:<port>
    NAME_PORT_<port>_<PROTO>_PROTO=<proto>
    NAME_PORT_<port>_<PROTO>_PORT=<port>
    NAME_PORT_<port>_<PROTO>_ADDR=<clusterIP>

A release named `footprint` (the README's install command) creates Services footprint-node and
footprint-grid, so every pod gets FOOTPRINT_NODE_SERVICE_HOST, FOOTPRINT_GRID_PORT=tcp://..., and so
on: the FOOTPRINT_ prefix of our own settings. The Services are taken from the chart as helm renders
it, for release names with and without the chart name, so a renamed Service or port shows up here.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.support.exporter import REPO, start_exporter
from tests.support.tools import tool

CHART = REPO / "helm" / "footprint"


def chart_services(release: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [tool("helm"), "template", release, str(CHART), "--namespace", "monitoring", "--set", "grid.enabled=true"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Service"]


def link_variables(service: dict[str, Any], cluster_ip: str) -> dict[str, str]:
    """envvars.go's FromServices for one Service, given the cluster IP the API server would assign."""
    name = service["metadata"]["name"].upper().replace("-", "_")
    ports = service["spec"]["ports"]
    host_port = (lambda p: f"[{cluster_ip}]:{p}") if ":" in cluster_ip else (lambda p: f"{cluster_ip}:{p}")
    env = {f"{name}_SERVICE_HOST": cluster_ip, f"{name}_SERVICE_PORT": str(ports[0]["port"])}
    for p in ports:
        if p.get("name"):
            env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
    for i, p in enumerate(ports):
        proto = p.get("protocol") or "TCP"
        url = f"{proto.lower()}://{host_port(p['port'])}"
        if i == 0:
            env[f"{name}_PORT"] = url
        prefix = f"{name}_PORT_{p['port']}_{proto.upper()}"
        env.update({prefix: url, f"{prefix}_PROTO": proto.lower(), f"{prefix}_PORT": str(p["port"]),
                    f"{prefix}_ADDR": cluster_ip})
    return env


def all_links(release: str, cluster_ips: tuple[str, str]) -> dict[str, str]:
    services = chart_services(release)
    assert {s["metadata"]["name"] for s in services} == {f"{release}-node", f"{release}-grid"}
    env: dict[str, str] = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    for service, ip in zip(services, cluster_ips, strict=True):
        env.update(link_variables(service, ip))
    return env


@pytest.mark.parametrize(("release", "ips"), [("footprint", ("10.0.0.1", "10.0.0.2")),
                                             ("footprint-prod", ("fd00::a", "fd00::b"))])
def test_exporter_starts_with_the_charts_service_links_and_still_refuses_typos(
        release: str, ips: tuple[str, str]) -> None:
    env = all_links(release, ips)
    ours = sorted(k for k in env if k.startswith("FOOTPRINT_"))
    assert f"{release.upper().replace('-', '_')}_GRID_PORT" in ours and len(ours) == 16, ours
    with start_exporter(["--no-meter.nvml", "--no-meter.rapl"], env=env) as exp:
        assert "footprint_build_info" in exp.scrape()
    proc = subprocess.run(
        [sys.executable, "-m", "footprint", "--no-meter.nvml"], capture_output=True, text=True, timeout=30,
        env={**env, "FOOTPRINT_GIRD_ZONE": "DE", "PYTHONPATH": str(REPO / "exporter"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["footprint-exporter: FOOTPRINT_GIRD_ZONE: unknown FOOTPRINT_ "
                                                "environment variable"]


@pytest.mark.parametrize(("name", "value"), [
    ("FOOTPRINT_GRID_PORT", "10181"),  # a _PORT that holds no tcp:// URL is not the kubelet's
    ("FOOTPRINT_NODE_SERVICE_HOST", "node.example"),  # the kubelet writes the cluster IP
    ("FOOTPRINT_GRID_PORT_10181_TCP_PROTO", "http"),
    ("FOOTPRINT_GRID_ZONE_PORT_X", "tcp://10.0.0.1:1"),
])
def test_lookalikes_that_the_kubelet_would_not_write_still_exit_2(name: str, value: str) -> None:
    from footprint import config

    with pytest.raises(config.ConfigError, match=f"^{name}: unknown"):
        config.load([], env={name: value})
