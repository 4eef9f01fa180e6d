"""Build the attributor the settings ask for: Kubernetes pods, or bare-metal process groups.

With both --kubernetes.enabled and --attribution.processes, Kubernetes wins (a process inside a pod
would otherwise be counted twice) and the process setting is ignored with a warning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from footprint.attribution.apiserver import ApiServerClient
from footprint.attribution.base import Attributor
from footprint.attribution.kubernetes import KubernetesAttributor
from footprint.attribution.podresources import PodResourcesClient
from footprint.attribution.processes import ProcessAttributor
from footprint.config import ConfigError, Settings
from footprint.meters.base import Meter

log = logging.getLogger("footprint.attribution")


def api_url(settings: Settings, env: Mapping[str, str]) -> str:
    if settings.kubernetes_api_url:
        return settings.kubernetes_api_url
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("kubernetes.api-url: not set and $KUBERNETES_SERVICE_HOST is empty (not in a pod?)")
    if ":" in host:  # IPv6 service address
        host = f"[{host}]"
    return f"https://{host}:{port}"


def build(settings: Settings, meters: list[Meter], env: Mapping[str, str] = os.environ) -> Attributor | None:
    if settings.kubernetes_enabled:
        if settings.attribution_processes:
            log.warning("attribution.processes is ignored: kubernetes.enabled attributes to pods")
        node = settings.kubernetes_node_name or env.get("NODE_NAME", "")
        if not node:
            raise ConfigError("kubernetes.node-name: not set and $NODE_NAME is empty (set it from spec.nodeName)")
        api = ApiServerClient(api_url(settings, env), node, settings.kubernetes_token_file, settings.kubernetes_ca_file)
        attributor = KubernetesAttributor(
            settings, list(meters), api, PodResourcesClient(settings.kubernetes_pod_resources_socket)
        )
        attributor.start()
        return attributor
    if settings.attribution_processes:
        return ProcessAttributor(settings, list(meters))
    return None
