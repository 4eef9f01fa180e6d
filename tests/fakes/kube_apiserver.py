"""A Kubernetes API server on 127.0.0.1 that serves `GET /api/v1/pods` as a real one does.

PodList JSON (`kind`, `apiVersion`, `metadata.resourceVersion`, items without kind), a bearer token
check (401 with a `Status` object otherwise), `fieldSelector=spec.nodeName=<node>` filtering and
`limit` / `continue` paging, as the API reference describes list calls ("API Concepts: Retrieving
large results sets in chunks", kubernetes.io/docs/reference/using-api/api-concepts/). `stop()` closes
the port (connection refused, like a dead API server) and `start()` opens the same port again.

`GET /api/v1/nodes/<name>` answers a Node object as `kubectl get node <name> -o json` shows it
(`kind: Node`, `apiVersion: v1`, metadata with labels, `spec.providerID`, status with addresses and
nodeInfo), or 404 with a NotFound Status for a node it does not have. `make_node_object` builds one
the way the clouds' node controllers label it: the well-known `topology.kubernetes.io/region` and
`/zone` labels (kubernetes.io/docs/reference/labels-annotations-taints/) and a providerID in the
cloud's format, as k8s.io/cloud-provider-aws (`aws:///<zone>/<instance-id>`), the GCE provider
(`gce://<project>/<zone>/<instance>`) and cloud-provider-azure
(`azure:///subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/virtualMachines/<vm>`)
write it. Bare-metal and kind nodes have neither (kind: `kind://docker/<cluster>/<node>`).

A real API server only ever serves objects that passed its schema; `set_pods` takes anything, so a
test can serve what a broken proxy, an aggregated API or a hostile man in the middle could: an item
that is not an object, or `spec: [null]`. Items whose `spec.nodeName` cannot be read are served to
every node (nothing to filter them by).
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def make_pod(
    name: str,
    namespace: str = "default",
    uid: str = "",
    node: str = "node-1",
    containers: Sequence[tuple[str, str, str]] = (),
    labels: Mapping[str, str] | None = None,
    owners: Sequence[Mapping[str, Any]] = (),
    phase: str = "Running",
    runtime: str = "containerd",
) -> dict[str, Any]:
    """A pod as the API server lists it. `containers`: (name, image, container id; "" = not started)."""
    uid = uid or f"{abs(hash((namespace, name))) % 10**12:012d}-0000-4000-8000-000000000000"[:36]
    statuses = []
    for cname, image, cid in containers:
        status: dict[str, Any] = {"name": cname, "image": image, "imageID": "", "restartCount": 0,
                                  "ready": bool(cid), "started": bool(cid)}
        if cid:
            status["containerID"] = f"{runtime}://{cid}"
            status["state"] = {"running": {"startedAt": "2026-11-23T08:00:00Z"}}
        else:
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        statuses.append(status)
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-23T08:00:00Z",
            "labels": dict(labels or {}),
            "ownerReferences": [dict(o) for o in owners],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": cname, "image": image, "resources": {}} for cname, image, _ in containers],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
        },
        "status": {"phase": phase, "qosClass": "Burstable", "containerStatuses": statuses},
    }


def make_node_object(name: str = "node-1", labels: Mapping[str, str] | None = None,
                     provider_id: str = "") -> dict[str, Any]:
    """A Node as the API server returns it for `GET /api/v1/nodes/<name>`."""
    spec: dict[str, Any] = {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}
    if provider_id:
        spec["providerID"] = provider_id
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": "6a1f0000-0000-4000-8000-0000000000aa",
            "resourceVersion": "4242",
            "creationTimestamp": "2026-11-01T08:00:00Z",
            "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       **dict(labels or {})},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "addresses": [{"type": "InternalIP", "address": "10.0.1.10"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": "v1.31.2", "containerRuntimeVersion": "containerd://1.7.22",
                         "operatingSystem": "linux", "architecture": "amd64"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


class FakeApiServer:
    def __init__(self, token: str = "test-token", pods: Sequence[Any] = (),
                 nodes: Sequence[Mapping[str, Any]] = ()) -> None:
        self.token = token
        self.pods: list[Any] = list(pods)
        self.nodes: dict[str, Mapping[str, Any]] = {n["metadata"]["name"]: n for n in nodes}
        self.requests: list[str] = []  # paths with query, in order
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_pods(self, pods: Sequence[Any]) -> None:
        with self._lock:
            self.pods = list(pods)

    def _page(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            pods = list(self.pods)
        for selector in query.get("fieldSelector", []):
            for term in selector.split(","):
                key, _, want = term.partition("=")
                if key != "spec.nodeName":
                    return 400, _status(400, "BadRequest", f"field label not supported: {key}")
                pods = [p for p in pods if _node_of(p) in (want, None)]
        start = int((query.get("continue") or ["0"])[0] or 0)
        limit = int((query.get("limit") or ["0"])[0] or 0)
        end = start + limit if limit else len(pods)
        meta: dict[str, Any] = {"resourceVersion": "12345"}
        if end < len(pods):
            meta["continue"] = str(end)
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": pods[start:end]}

    def start(self) -> FakeApiServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                url = urllib.parse.urlsplit(self.path)
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self._send(401, _status(401, "Unauthorized", "Unauthorized"))
                elif url.path == "/api/v1/pods":
                    self._send(*fake._page(urllib.parse.parse_qs(url.query)))
                elif url.path.startswith("/api/v1/nodes/"):
                    name = urllib.parse.unquote(url.path[len("/api/v1/nodes/"):])
                    node = fake.nodes.get(name)
                    if node is None:
                        self._send(404, _status(404, "NotFound", f'nodes "{name}" not found'))
                    else:
                        self._send(200, node)
                else:
                    self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))

            def _send(self, code: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-apiserver",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _node_of(item: object) -> str | None:
    spec = item.get("spec") if isinstance(item, Mapping) else None
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    return node if isinstance(node, str) else None


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@contextmanager
def running_apiserver(token: str = "test-token", pods: Sequence[Any] = (),
                      nodes: Sequence[Mapping[str, Any]] = ()) -> Iterator[FakeApiServer]:
    server = FakeApiServer(token, pods, nodes).start()
    try:
        yield server
    finally:
        server.stop()
