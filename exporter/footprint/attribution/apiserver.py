"""Pods on this node from the Kubernetes API server: `GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`.

Needs only RBAC `list` on pods (the chart grants get, list, watch). The service-account token is
re-read on every list (projected tokens rotate); without a token file no Authorization header is
sent (e.g. through `kubectl proxy`). Large nodes are listed in pages (`limit` + `continue`).
The answer is parsed tolerantly: a pod missing fields is kept with what it has.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from footprint.attribution.workload import classify_pod

PAGE_SIZE = 500
ACTIVE_PHASES = frozenset({"Pending", "Running", "Unknown", ""})


@dataclass(frozen=True)
class PodInfo:
    uid: str
    namespace: str
    name: str
    phase: str
    workload: str
    containers: tuple[str, ...]  # names of containers and init containers
    container_ids: tuple[tuple[str, str], ...]  # (runtime container id, container name)

    @property
    def active(self) -> bool:
        """Pending or running: its series stay. Finished (Succeeded, Failed) pods' series leave after grace."""
        return self.phase in ACTIVE_PHASES


def _container_id(raw: object) -> str:
    """`containerd://<id>`, `cri-o://<id>`, `docker://<id>` -> `<id>`."""
    text = str(raw or "")
    return text.split("://", 1)[1] if "://" in text else text


def parse_pod(pod: Mapping[str, Any], label_key: str) -> PodInfo | None:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if not name:
        return None
    containers = tuple(
        str(c.get("name", ""))
        for key in ("initContainers", "containers")
        for c in (spec.get(key) or [])
        if isinstance(c, Mapping) and c.get("name")
    )
    ids = []
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if not isinstance(cs, Mapping) or not cs.get("name"):
                continue
            current = _container_id(cs.get("containerID"))
            if current:
                ids.append((current, str(cs["name"])))
            # A restarted container's previous instance may still have CPU time to account this interval.
            last = ((cs.get("lastState") or {}).get("terminated") or {}).get("containerID")
            if last:
                ids.append((_container_id(last), str(cs["name"])))
    return PodInfo(
        uid=str(meta.get("uid") or ""),
        namespace=namespace,
        name=name,
        phase=str(status.get("phase") or ""),
        workload=classify_pod(pod, label_key),
        containers=containers,
        container_ids=tuple(ids),
    )


class ApiServerClient:
    def __init__(
        self, url: str, node: str, token_file: str, ca_file: str, timeout: float = 10.0, page_size: int = PAGE_SIZE
    ) -> None:
        self.url = url.rstrip("/")
        self.page_size = page_size
        self.node = node
        self.token_file = token_file
        self.ca_file = ca_file
        self.timeout = timeout

    def _context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https:"):
            return None
        if self.ca_file and os.path.exists(self.ca_file):
            return ssl.create_default_context(cafile=self.ca_file)
        return ssl.create_default_context()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as fh:
                    token = fh.read().strip()
            except FileNotFoundError:
                token = ""
            if token:
                headers["Authorization"] = f"Bearer {token}"
        return headers

    def list_pods(self) -> list[Mapping[str, Any]]:
        """Every pod on this node. Raises OSError (incl. HTTP errors) or ValueError (not a PodList)."""
        context, headers = self._context(), self._headers()
        items: list[Mapping[str, Any]] = []
        cont = ""
        while True:
            query = {"fieldSelector": f"spec.nodeName={self.node}", "limit": str(self.page_size)}
            if cont:
                query["continue"] = cont
            request = urllib.request.Request(
                f"{self.url}/api/v1/pods?{urllib.parse.urlencode(query)}", headers=headers
            )
            with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
                body = json.loads(response.read())
            if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
                raise ValueError("the API server's answer is not a PodList")
            items.extend(item for item in body["items"] if isinstance(item, Mapping))
            cont = str((body.get("metadata") or {}).get("continue") or "")
            if not cont:
                return items
