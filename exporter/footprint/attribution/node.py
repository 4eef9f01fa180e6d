"""This node's cloud region, from its own Node object, so the grid zone needs no configuration on a cloud.

Only with --kubernetes.enabled and neither --grid.zone nor --grid.region set: one
`GET /api/v1/nodes/<node>` at start (RBAC `get` on nodes; bounded by LOOKUP_TIMEOUT), then the region
goes through the static cloud-region table like a configured --grid.region. Where it comes from, first
that names a region the table knows (else the first found, and the grid warns that it is unknown):
1. the well-known label `topology.kubernetes.io/region` (set by the cloud's node controller: EKS
   `us-east-1`, GKE `us-central1`, AKS `eastus`), then its pre-1.17 name
   `failure-domain.beta.kubernetes.io/region`;
2. `spec.providerID`'s zone: `aws:///<zone>/<instance>` (zone `us-east-1a` -> region `us-east-1`) or
   `gce://<project>/<zone>/<instance>` (zone `us-central1-a` -> `us-central1`). Azure's
   `azure:///subscriptions/...` names no region (its label does).
The cloud (aws, gcp, azure) is read from the providerID's scheme and said with the source. Any failure
(no RBAC, API server down, no such node, odd JSON) is a warning, and the grid works as without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from footprint.attribution.apiserver import ApiServerClient
from footprint.config import ConfigError, Settings

log = logging.getLogger("footprint.attribution.node")

REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
LOOKUP_TIMEOUT = 5.0
CLOUDS = {"aws": "aws", "gce": "gcp", "azure": "azure"}  # providerID scheme -> the table's cloud name
AWS_REGION = re.compile(r"^([a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d+)[a-z0-9-]*$")  # us-east-1a, us-west-2-lax-1a
GCE_REGION = re.compile(r"^([a-z]+-[a-z]+\d+)-[a-z]$")  # us-central1-a


@dataclass(frozen=True)
class Placement:
    region: str
    source: str  # what said it, for the log and doctor


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def cloud_of(provider_id: str) -> tuple[str, str]:
    """(cloud, region) from a providerID; either may be "" (unknown scheme, or no region in it)."""
    scheme, sep, rest = provider_id.partition("://")
    cloud = CLOUDS.get(scheme.lower(), "") if sep else ""
    parts = [p for p in rest.split("/") if p]
    region = ""
    if cloud == "aws" and parts:
        m = AWS_REGION.match(parts[0])
        region = m.group(1) if m and len(parts) >= 2 else ""
    elif cloud == "gcp" and len(parts) >= 3:
        m = GCE_REGION.match(parts[1])
        region = m.group(1) if m else ""
    return cloud, region


def placements(node: object) -> list[Placement]:
    """Every region the Node object names, in order of trust. Never raises on odd JSON."""
    if not isinstance(node, Mapping):
        return []
    meta, spec = node.get("metadata"), node.get("spec")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    provider_id = _text(spec.get("providerID")) if isinstance(spec, Mapping) else ""
    cloud, from_id = cloud_of(provider_id)
    said = f"; cloud {cloud} (spec.providerID)" if cloud else ""
    out = []
    if isinstance(labels, Mapping):
        for label in REGION_LABELS:
            region = _text(labels.get(label))
            if region:
                out.append(Placement(region, f"label {label}{said}"))
    if from_id:
        out.append(Placement(from_id, f"spec.providerID {provider_id}"))
    return out


def choose(found: list[Placement], known: set[str]) -> Placement | None:
    """The first the region table knows, else the first at all."""
    return next((p for p in found if p.region.lower() in known), found[0] if found else None)


def with_node_region(settings: Settings, env: Mapping[str, str] = os.environ) -> Settings:
    """The settings with grid.region from this node when that is the only way to a zone; else as given."""
    if not settings.kubernetes_enabled or settings.grid_zone.strip() or settings.grid_region_label.strip():
        return settings
    from footprint.attribution.factory import api_url
    from footprint.grid.providers.static import TableError, Tables

    name = settings.kubernetes_node_name or env.get("NODE_NAME", "")
    try:
        url = api_url(settings, env)
    except ConfigError:
        return settings  # the attributor says what is missing, once
    if not name:
        return settings
    client = ApiServerClient(url, name, settings.kubernetes_token_file, settings.kubernetes_ca_file,
                             timeout=LOOKUP_TIMEOUT)
    try:
        node = client.get_node()
    except Exception as exc:  # refused, 403 without RBAC, 404, garbage: the grid goes on without it
        log.warning("grid: cannot read node %r for its region (%s); set grid.zone or grid.region", name, exc)
        return settings
    try:
        known = set(Tables(settings.grid_static_file).region_zone)
    except TableError:
        known = set()  # the grid reports the bad file
    chosen = choose(placements(node), known)
    if chosen is None:
        log.warning("grid: node %r has no region label or providerID region; set grid.zone or grid.region", name)
        return settings
    origin = f"node {name}: {chosen.source}"
    log.info("grid: region %s from the node (%s)", chosen.region, chosen.source)
    return dataclasses.replace(settings, grid_region_label=chosen.region,
                               origins={**settings.origins, "grid.region": origin})
