"""Pods on this node from the Kubernetes API server: `GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`.

Needs RBAC `list` on pods, and `get` on nodes for the one start-up read of this node's Node object
(node.py: its region for the grid zone, only when no zone is configured). The service-account token is
re-read on every list (projected tokens rotate); without a token file no Authorization header is
sent (e.g. through `kubectl proxy`). Large nodes are listed in pages (`limit` + `continue`).
Each pod of the answer is parsed on its own (`parse_pods`): a pod missing optional fields is kept with
what it has; a pod whose fields have the wrong JSON type (`spec: [null]`, `status: "Running"`) is skipped
and counted by reason, and the rest of the list is used. Only an answer that is not a PodList at all
fails the whole refresh (the last good list is kept).
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from footprint.attribution.workload import classify

log = logging.getLogger("footprint.attribution.apiserver")

PAGE_SIZE = 500
MAX_NODE_BYTES = 4 << 20  # a Node object is a few KiB; its images list can make it ~1 MiB
MAX_PAGE_BYTES = 64 << 20  # one PodList page: 500 pods of up to ~100 KiB each, with room to spare
MAX_PAGES = 1000  # 500,000 pods: far past any node; a `continue` that never ends is refused
ACTIVE_PHASES = frozenset({"Pending", "Running", "Unknown", ""})


@dataclass(frozen=True)
class PodInfo:
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


class Skip(ValueError):
    """An item of a list that cannot be used; `reason` is the label it is counted under."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


SKIP_REASONS = ("malformed", "missing_name")


def _obj(value: object, where: str) -> Mapping[str, Any]:
    """An optional object field: absent or null is empty; anything but an object skips the item."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Skip("malformed", f"{where} is {type(value).__name__}, not an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Skip("malformed", f"{where} is {type(value).__name__}, not a list")
    return value


def _str(value: object, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Skip("malformed", f"{where} is {type(value).__name__}, not a string")
    return value


def _objects(value: object, where: str) -> list[Mapping[str, Any]]:
    return [_obj(item, f"{where}[{i}]") for i, item in enumerate(_list(value, where))]


def _container_id(raw: str) -> str:
    """`containerd://<id>`, `cri-o://<id>`, `docker://<id>` -> `<id>`."""
    return raw.split("://", 1)[1] if "://" in raw else raw


def parse_pod(pod: object, label_key: str) -> PodInfo:
    """A pod of a PodList, every field this exporter reads checked for its type (Kubernetes' own
    schema: objects, lists, strings). Raises Skip: a pod that breaks it is skipped, not guessed at."""
    if not isinstance(pod, Mapping):
        raise Skip("malformed", f"the item is {type(pod).__name__}, not an object")
    meta, spec, status = _obj(pod.get("metadata"), "metadata"), _obj(pod.get("spec"), "spec"), _obj(
        pod.get("status"), "status")
    name, namespace = _str(meta.get("name"), "metadata.name"), _str(meta.get("namespace"), "metadata.namespace")
    if not name:
        raise Skip("missing_name", "a pod without metadata.name")
    labels = {str(k): _str(v, f"metadata.labels[{k}]") for k, v in _obj(meta.get("labels"), "labels").items()}
    owners = [{"apiVersion": _str(o.get("apiVersion"), "ownerReferences[].apiVersion"),
               "kind": _str(o.get("kind"), "ownerReferences[].kind")}
              for o in _objects(meta.get("ownerReferences"), "metadata.ownerReferences")]
    containers, images = [], []
    for key in ("initContainers", "containers"):
        for c in _objects(spec.get(key), f"spec.{key}"):
            cname = _str(c.get("name"), f"spec.{key}[].name")
            images.append(_str(c.get("image"), f"spec.{key}[].image"))
            if cname:
                containers.append(cname)
    ids = []
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in _objects(status.get(key), f"status.{key}"):
            cname = _str(cs.get("name"), f"status.{key}[].name")
            current = _container_id(_str(cs.get("containerID"), f"status.{key}[].containerID"))
            terminated = _obj(_obj(cs.get("lastState"), "lastState").get("terminated"), "lastState.terminated")
            last = _container_id(_str(terminated.get("containerID"), "lastState.terminated.containerID"))
            if not cname:
                continue
            if current:
                ids.append((current, cname))
            if last:  # a restarted container's previous instance may still have CPU time in this window
                ids.append((last, cname))
    return PodInfo(
        namespace=namespace,
        name=name,
        phase=_str(status.get("phase"), "status.phase"),
        workload=classify(labels, owners, images, label_key),
        containers=tuple(containers),
        container_ids=tuple(ids),
    )


def parse_pods(items: Iterable[object], label_key: str) -> tuple[list[PodInfo], Counter[str]]:
    """The usable pods of a list, and how many were skipped by reason (one bad pod costs only itself)."""
    pods: list[PodInfo] = []
    skipped: Counter[str] = Counter()
    for item in items:
        try:
            pods.append(parse_pod(item, label_key))
        except Skip as exc:
            skipped[exc.reason] += 1
            log.debug("pod skipped: %s", exc)
    return pods, skipped


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

    def _get_json(self, request: urllib.request.Request, context: ssl.SSLContext | None, limit: int,
                  what: str) -> Any:
        """One GET's JSON body, read up to `limit` bytes: a larger answer is refused (ValueError)."""
        with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
            data = response.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{what} is larger than {limit} bytes")
        return json.loads(data)

    def get_node(self) -> Mapping[str, Any]:
        """This node's Node object (`GET /api/v1/nodes/<node>`, RBAC `get` on nodes). Raises OSError
        (incl. HTTP errors) or ValueError (not an object)."""
        request = urllib.request.Request(
            f"{self.url}/api/v1/nodes/{urllib.parse.quote(self.node, safe='')}", headers=self._headers()
        )
        body = self._get_json(request, self._context(), MAX_NODE_BYTES, "the Node object")
        if not isinstance(body, Mapping):
            raise ValueError("the API server's answer is not a Node object")
        return body

    def list_pods(self) -> list[object]:
        """Every item of this node's PodList, unparsed (parse_pods judges each). Raises OSError (incl.
        HTTP errors) or ValueError (not a PodList, or more pages than MAX_PAGES)."""
        context, headers = self._context(), self._headers()
        items: list[object] = []
        cont = ""
        for _ in range(MAX_PAGES):
            query = {"fieldSelector": f"spec.nodeName={self.node}", "limit": str(self.page_size)}
            if cont:
                query["continue"] = cont
            request = urllib.request.Request(
                f"{self.url}/api/v1/pods?{urllib.parse.urlencode(query)}", headers=headers
            )
            body = self._get_json(request, context, MAX_PAGE_BYTES, "a PodList page")
            if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
                raise ValueError("the API server's answer is not a PodList")
            items.extend(body["items"])
            meta = body.get("metadata")
            token = meta.get("continue") if isinstance(meta, Mapping) else None
            if not token or not isinstance(token, str):
                return items
            cont = token
        raise ValueError(f"the PodList has more than {MAX_PAGES} pages of {self.page_size}")
