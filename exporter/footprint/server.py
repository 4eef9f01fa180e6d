"""The HTTP endpoint: /metrics, /healthz, /api/v1/grid and a small index page.

Only GET and HEAD on known paths. Every handler serves bytes that are already made (or made once per
sample by the exposition), so a scrape does no I/O. Hardening, because an exporter on every node is
an attack surface:

- TLS and basic auth from the exporter-toolkit web config (webconfig.py). The TLS handshake runs in
  the connection's own thread, never in the accept loop, so a client that stalls mid-handshake holds
  up nobody else.
- Each connection has its own thread, a socket timeout per operation, and a deadline for the whole
  handshake-plus-request (a reaper closes connections past it): a client that trickles one byte at a
  time (slowloris) is cut off at the deadline, not kept alive by every byte.
- At most MAX_CONNECTIONS at once; more are closed at accept. Request line and headers together are
  bounded (414 / 431), and a request body is never read (the connection is closed after it).
- /healthz answers without credentials, so kubelet probes work; it says only "ok".
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.client import LineTooLong
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from footprint import __version__, webconfig
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

REAPER_TICK = 0.25  # how late past its deadline a connection may be closed
CLIENT_TIMEOUT_SECONDS = 10.0  # per socket operation, and for handshake + one whole request
MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024  # request line and headers together
MAX_CONNECTIONS = 256
REALM = 'Basic realm="footprint", charset="UTF-8"'
PUBLIC_PATHS = ("/healthz",)
TEXT = "text/plain; charset=utf-8"


@dataclass
class Routes:
    exposition: Exposition
    grid_payload: Callable[[], dict[str, object]]
    healthy: Callable[[], bool]


def wants_openmetrics(accept: str) -> bool:
    return any(part.split(";")[0].strip() == "application/openmetrics-text" for part in accept.split(","))


class _BoundedReader:
    """Reads the request head from the connection with a byte budget; past it, LineTooLong (-> 431)."""

    def __init__(self, raw: io.BufferedIOBase) -> None:
        self.raw = raw
        self.left = MAX_HEADER_BYTES

    def readline(self, limit: int = -1) -> bytes:
        if self.left <= 0:
            raise LineTooLong("request head")
        size = self.left + 1 if limit < 0 else min(limit, self.left + 1)
        line = self.raw.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise LineTooLong("request head")
        return line

    def read(self, n: int = -1) -> bytes:
        return self.raw.read(n)

    def close(self) -> None:
        self.raw.close()


class Reaper:
    """Closes connections that passed their deadline, waking the thread blocked on them."""

    def __init__(self) -> None:
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http-reaper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            idle = not self._deadlines
            self._deadlines[sock] = time.monotonic() + seconds
        if idle:
            self._wake.set()  # it sleeps without a timeout while nothing is armed

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def _next_wait(self) -> float | None:
        with self._lock:
            return REAPER_TICK if self._deadlines else None

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            now = time.monotonic()
            # Under the lock: a connection's thread disarms before it closes its socket, so a socket
            # shut here is still open and its descriptor cannot belong to a newer connection.
            with self._lock:
                late = [s for s, t in self._deadlines.items() if t <= now]
                for s in late:
                    del self._deadlines[s]
                    log.debug("closing a connection past its deadline")
                    with contextlib.suppress(OSError):
                        # The plain socket call, also for TLS sockets: it only shuts the descriptor,
                        # so the thread blocked in recv wakes up; that thread then closes it.
                        socket.socket.shutdown(s, socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = f"footprint/{__version__}"
    timeout = CLIENT_TIMEOUT_SECONDS  # per socket operation
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle on, a body under one segment waits for the
    # client's delayed ACK of the headers (40 ms on Linux; bench/README.md). setup() sets TCP_NODELAY.
    disable_nagle_algorithm = True
    default_request_version = "HTTP/1.1"  # errors to garbage get a status line: no HTTP/0.9 here

    def setup(self) -> None:
        super().setup()
        self.rfile = _BoundedReader(self.rfile)  # type: ignore[assignment]

    def handle_one_request(self) -> None:
        """One request: bounded head, only GET/HEAD, auth, rate limit, then the route."""
        # One deadline for waiting, reading the head and writing the response: armed here, and
        # always disarmed before this thread can close the socket.
        self.server.reaper.arm(self.connection, CLIENT_TIMEOUT_SECONDS)
        try:
            if self._read_head():
                self._dispatch()
                self.wfile.flush()
        except OSError:  # timeout, reset, or the reaper shut it
            self.close_connection = True
        finally:
            self.server.reaper.disarm(self.connection)

    def _read_head(self) -> bool:
        """Request line and headers within MAX_HEADER_BYTES; False when the connection is done."""
        reader: _BoundedReader = self.rfile  # type: ignore[assignment]
        reader.left = MAX_HEADER_BYTES
        self.close_connection = True
        try:
            self.raw_requestline = reader.readline(MAX_REQUEST_LINE + 1)
        except LineTooLong:
            self.raw_requestline = b"x" * (MAX_REQUEST_LINE + 1)
        if not self.raw_requestline:
            return False
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self.send_error(414)
            return False
        if not self.parse_request():  # sends 400/431/505 itself
            return False
        if self.headers.get("Content-Length", "0").strip() not in ("", "0") or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # a body is never read: it must not be parsed as the next request
        return True

    def _dispatch(self) -> None:
        head = self.command == "HEAD"
        if self.command not in ("GET", "HEAD"):
            self.close_connection = True
            self._send(405, b"method not allowed\n", TEXT, head=False, extra={"Allow": "GET, HEAD"})
            return
        limiter = self.server.limiter
        if limiter is not None and not limiter.allow():
            self._send(429, b"too many requests\n", TEXT, head)
            return
        path = self.path.split("?", 1)[0]
        if path not in PUBLIC_PATHS and not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"unauthorized\n", TEXT, head, extra={"WWW-Authenticate": REALM})
            return
        self._serve(path, head)

    def _serve(self, path: str, head: bool) -> None:
        routes = self.server.routes
        if path == "/metrics":
            om = wants_openmetrics(self.headers.get("Accept", ""))
            body = routes.exposition.render(openmetrics=om)
            self._send(200, body, OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE, head)
        elif path == "/healthz":
            ok = routes.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n", TEXT, head)
        elif path == "/api/v1/grid":
            body = json.dumps(routes.grid_payload(), sort_keys=True).encode()
            self._send(200, body, "application/json", head)
        elif path == "/":
            self._send(200, INDEX, "text/html; charset=utf-8", head)
        else:
            self._send(404, b"not found\n", TEXT, head)

    def _send(self, code: int, body: bytes, ctype: str, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**self.server.web.headers, **(extra or {})}.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version  # without the Python version: nothing for scanners to match

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", format % args)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping never waits for slow clients
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: str, routes: Routes, web_config: str = "",
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.web = webconfig.load(web_config)  # ConfigError (exit 2) before the port is taken
        self.tls = self.web.ssl_context()
        self.auth = webconfig.BasicAuth(self.web.users)
        self.limiter = webconfig.TokenBucket(self.web.rate_limit) if self.web.rate_limit else None
        self.routes = routes
        self.reaper = Reaper()
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._full_logged = False
        host, port = split_address(address)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the accept loop: only take a slot and hand the connection to a thread."""
        if not self._slots.acquire(blocking=False):
            if not self._full_logged:
                log.warning("too many connections; refusing new ones until some close",
                            extra={"max_connections": self.max_connections})
                self._full_logged = True
            self.shutdown_request(request)
            return
        self._full_logged = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's thread: the TLS handshake (bounded by the deadline), then HTTP."""
        request.settimeout(CLIENT_TIMEOUT_SECONDS)
        if self.tls is None:
            Handler(request, client_address, self)
            return
        conn = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        try:
            self.reaper.arm(conn, CLIENT_TIMEOUT_SECONDS)
            try:
                conn.do_handshake()
            except OSError as exc:  # ssl.SSLError is an OSError
                log.debug("TLS handshake failed: %s", exc, extra={"client": client_address[0]})
                return
            finally:
                self.reaper.disarm(conn)
            tls = self.web.tls
            if tls is not None and not webconfig.allowed_san(conn.getpeercert(), tls.client_allowed_sans):
                log.debug("client certificate SAN not allowed", extra={"client": client_address[0]})
                return
            Handler(conn, client_address, self)
        finally:
            self.shutdown_request(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection error", exc_info=True, extra={"client": client_address[0]})

    def start(self) -> None:
        self.reaper.start()
        # Blocks in select() until a connection comes (no 0.5 s polling); stop() wakes it.
        self._thread = threading.Thread(target=self.serve_forever, args=(3600.0,), name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        waiter = threading.Thread(target=self.shutdown, name="http-shutdown")
        waiter.start()
        while waiter.is_alive():  # a connection wakes the accept loop so it sees the shutdown request
            with contextlib.suppress(OSError):
                socket.create_connection((str(self.server_address[0]), self.port), timeout=1).close()
            waiter.join(0.05)
        self.server_close()
        self.reaper.stop()
