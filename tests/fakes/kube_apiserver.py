"""A Kubernetes API server on 127.0.0.1 that serves `GET /api/v1/pods` as a real one does.

PodList JSON (`kind`, `apiVersion`, `metadata.resourceVersion`, items without kind), a bearer token
check (401 with a `Status` object otherwise), `fieldSelector=spec.nodeName=<node>` filtering and
`limit` / `continue` paging. `stop()` closes the port (connection refused, like a dead API server)
and `start()` opens the same port again.
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


class FakeApiServer:
    def __init__(self, token: str = "test-token", pods: Sequence[Mapping[str, Any]] = ()) -> None:
        self.token = token
        self.pods: list[Mapping[str, Any]] = list(pods)
        self.requests: list[str] = []  # paths with query, in order
        self.port = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_pods(self, pods: Sequence[Mapping[str, Any]]) -> None:
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
                pods = [p for p in pods if (p.get("spec") or {}).get("nodeName") == want]
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
                elif url.path != "/api/v1/pods":
                    self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
                else:
                    self._send(*fake._page(urllib.parse.parse_qs(url.query)))

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


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


@contextmanager
def running_apiserver(token: str = "test-token", pods: Sequence[Mapping[str, Any]] = ()) -> Iterator[FakeApiServer]:
    server = FakeApiServer(token, pods).start()
    try:
        yield server
    finally:
        server.stop()
