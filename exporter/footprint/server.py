"""The HTTP endpoint: /metrics, /healthz, /api/v1/grid and a small index page.

Only GET and HEAD on known paths. Every handler serves bytes that are already made (or made once per
sample by the exposition), so a scrape does no I/O. Each connection has its own thread and a socket
timeout, so a slow client cannot hold up the others.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from footprint import __version__
from footprint.config import split_address
from footprint.metrics import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition

log = logging.getLogger("footprint.server")

INDEX = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Footprint exporter</title></head>
<body><h1>Footprint exporter</h1>
<p>Energy and carbon emissions of this machine's GPUs and CPUs.</p>
<ul><li><a href="/metrics">/metrics</a></li><li><a href="/api/v1/grid">/api/v1/grid</a></li>
<li><a href="/healthz">/healthz</a></li></ul></body></html>
"""

CLIENT_TIMEOUT_SECONDS = 10.0
MAX_HEADER_BYTES = 16 * 1024


@dataclass
class Routes:
    exposition: Exposition
    grid_payload: Callable[[], dict[str, object]]
    healthy: Callable[[], bool]


def wants_openmetrics(accept: str) -> bool:
    return any(part.split(";")[0].strip() == "application/openmetrics-text" for part in accept.split(","))


class Handler(BaseHTTPRequestHandler):
    routes: Routes
    server_version = f"footprint/{__version__}"
    timeout = CLIENT_TIMEOUT_SECONDS  # socket timeout: slow clients give up their thread
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", head=False, extra={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _serve(self, head: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            om = wants_openmetrics(self.headers.get("Accept", ""))
            body = self.routes.exposition.render(openmetrics=om)
            self._send(200, body, OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE, head)
        elif path == "/healthz":
            ok = self.routes.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain; charset=utf-8", head)
        elif path == "/api/v1/grid":
            body = json.dumps(self.routes.grid_payload(), sort_keys=True).encode()
            self._send(200, body, "application/json", head)
        elif path == "/":
            self._send(200, INDEX, "text/html; charset=utf-8", head)
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head)

    def _send(self, code: int, body: bytes, ctype: str, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http %s", format % args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: str, routes: Routes) -> None:
        host, port = split_address(address)
        handler = type("BoundHandler", (Handler,), {"routes": routes})
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
