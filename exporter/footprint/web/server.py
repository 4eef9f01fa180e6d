"""The HTTP endpoint: /metrics, /healthz, /api/v1/grid and a small index page.

Only GET and HEAD on known paths. Every handler serves bytes that are already made (or made once per
sample by the exposition), so a scrape does no I/O. Hardening, because an exporter on every node is
an attack surface:

- TLS and basic auth from the exporter-toolkit web config (parsed by webconfig.py, enforced by
  auth.py). The TLS handshake runs in the connection's own thread, never in the accept loop, so a
  client that stalls mid-handshake holds up nobody else.
- Each connection has its own thread, a socket timeout per operation, and a deadline for the whole
  handshake-plus-request (a reaper closes connections past it): a client that trickles one byte at a
  time (slowloris) is cut off at the deadline, not kept alive by every byte.
- At most MAX_CONNECTIONS at once, and idle ones never lock anybody out: when every slot is taken, the
  connection that has waited longest without a complete request (a socket that sends nothing, a
  trickled head, an idle keep-alive) is closed to make room. Only a connection whose request is being
  answered keeps its slot, so 300 silent sockets cost a probe nothing but an eviction.
- The request head is parsed strictly (httphead.py): duplicate Content-Length, Transfer-Encoding,
  folding, bare CR and the like are a 400, never a second request. Line and head sizes are bounded
  (414 / 431); a body is never read (the connection is closed after it).
- /healthz answers without credentials and outside the rate limit, so kubelet probes work (they
  carry no credentials); it says only "ok". With client_auth_type RequireAndVerifyClientCert the
  kubelet cannot finish the handshake (it presents no client certificate): use a tcpSocket probe there.
- Failed basic auth is limited per client network (auth.BasicAuth), so a flood of wrong
  passwords costs a few bcrypt checks, not a queue in front of the real scraper.
- /metrics is gzip-compressed when the client accepts it (Prometheus does), q-values honoured.
- The default listen address `:port` is dual-stack (`[::]` with IPV6_V6ONLY off, as Go's listener
  and so node_exporter do), falling back to IPv4 where the host has no IPv6.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import http.client
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import LineTooLong
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from footprint import __version__
from footprint.config import split_address
from footprint.exposition.metrics import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, Exposition
from footprint.web import auth, httphead, webconfig
from footprint.worker import Worker

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
GZIP_LEVEL = 6  # zlib's default; compressed once per render (below), not once per scrape
REALM = 'Basic realm="footprint", charset="UTF-8"'
TEXT = "text/plain; charset=utf-8"


@dataclass
class Routes:
    exposition: Exposition
    grid_payload: Callable[[], dict[str, object]]
    healthy: Callable[[], bool]
    # More paths -> (body, content type): the live page, its assets and JSON API (app.py, page.py, api.py).
    pages: Mapping[str, Callable[[], tuple[bytes, str]]] = field(default_factory=dict)


def wants_openmetrics(accept: str) -> bool:
    return any(part.split(";")[0].strip() == "application/openmetrics-text" for part in accept.split(","))


_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?", re.ASCII)


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding value (RFC 9110 12.5.3) allows gzip: `gzip` (or `x-gzip`) with q > 0,
    else `*` with q > 0. A malformed q-value counts as q=0 for its coding."""
    named: float | None = None
    star: float | None = None
    for part in header.split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                q = float(value) if _QVALUE.fullmatch(value) else 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            named = q if named is None else max(named, q)
        elif coding == "*":
            star = q
    if named is not None:
        return named > 0
    return star is not None and star > 0


# What http.server's log_message does to a request line before writing it (CPython 3.11.1+): control
# characters become \xNN and a backslash is doubled, so a client cannot write ESC, CR or NUL to the log.
CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
CONTROL_ESCAPES[ord("\\")] = "\\\\"


def escape_log(text: str) -> str:
    return text.translate(CONTROL_ESCAPES)


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
        self._worker = Worker("http-reaper", self._reap)

    def start(self) -> None:
        self._worker.start(delay=None)  # until the first arm()

    def stop(self) -> None:
        self._worker.request_stop()

    def arm(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            idle = not self._deadlines
            self._deadlines[sock] = time.monotonic() + seconds
        if idle:
            self._worker.wake()  # it sleeps without a timeout while nothing is armed

    def disarm(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def _reap(self) -> float | None:
        now = time.monotonic()
        # Under the lock: a connection's thread disarms before it closes its socket, so a socket
        # shut here is still open and its descriptor cannot belong to a newer connection.
        with self._lock:
            late = [s for s, t in self._deadlines.items() if t <= now]
            for s in late:
                del self._deadlines[s]
                log.debug("closing a connection past its deadline")
                _shut(s)
            return REAPER_TICK if self._deadlines else None


class Slots:
    """Connection slots: at most `limit` at once, and idle ones give way.

    A connection is *waiting* from accept (or the end of its last response) until its request head is
    complete, and *serving* until its response is written. When all slots are taken, a new connection
    evicts the one that has been waiting longest: its socket is shut (its thread wakes from recv and
    ends), so a flood of silent or trickling sockets can only push each other out, never a scrape that
    has sent its request. Refused only when every slot is serving.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.evicted = 0
        self._waiting: dict[object, socket.socket] = {}  # in order of waiting since: oldest first
        self._serving: set[object] = set()
        self._lock = threading.Lock()

    def open(self, key: object, sock: socket.socket) -> bool:
        with self._lock:
            if len(self._waiting) + len(self._serving) >= self.limit:
                if not self._waiting:
                    return False
                victim = next(iter(self._waiting))
                _shut(self._waiting.pop(victim))
                self.evicted += 1
            self._waiting[key] = sock
            return True

    def rewrap(self, key: object, sock: socket.socket) -> None:
        """The socket to shut is now `sock` (the TLS socket that took over the descriptor)."""
        with self._lock:
            if key in self._waiting:
                self._waiting[key] = sock

    def serving(self, key: object) -> None:
        with self._lock:
            sock = self._waiting.pop(key, None)
            if sock is not None:
                self._serving.add(key)

    def waiting(self, key: object, sock: socket.socket) -> None:
        with self._lock:
            if key in self._serving:  # not if it was evicted meanwhile
                self._serving.discard(key)
                self._waiting[key] = sock

    def close(self, key: object) -> None:
        """Called before the connection's socket is closed, so a shut never hits a reused descriptor."""
        with self._lock:
            self._waiting.pop(key, None)
            self._serving.discard(key)

    def count(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._serving)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        # The plain socket call, also for TLS sockets: it only shuts the descriptor, so the thread
        # blocked in recv wakes up; that thread then closes it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


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
        self.slot = self.server.current_slot()
        self.client = auth.client_network(str(self.client_address[0]))

    def handle_one_request(self) -> None:
        """One request: strict bounded head, only GET/HEAD, rate limit, auth, then the route."""
        # One deadline for waiting, reading the head and writing the response: armed here, and
        # always disarmed before this thread can close the socket.
        self.server.reaper.arm(self.connection, CLIENT_TIMEOUT_SECONDS)
        try:
            head = self._read_head()
            if head is not None:
                self.server.slots.serving(self.slot)
                self._dispatch(head)
                self.wfile.flush()
        except OSError:  # timeout, reset, or the reaper or an eviction shut it
            self.close_connection = True
        finally:
            self.server.reaper.disarm(self.connection)
            self.server.slots.waiting(self.slot, self.connection)

    def _read_head(self) -> httphead.Head | None:
        """Request line and fields within MAX_HEADER_BYTES, parsed strictly; None when the connection
        is done (closed, or an error answered)."""
        reader: _BoundedReader = self.rfile  # type: ignore[assignment]
        reader.left = MAX_HEADER_BYTES
        self.close_connection = True
        self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
        self._encoding, self._size = "identity", "-"
        self.headers = http.client.HTTPMessage()  # none yet: an error logged now names no User-Agent
        lines: list[bytes] = []
        try:
            line = reader.readline(MAX_REQUEST_LINE + 1)
            if not line:
                return None
            if len(line) > MAX_REQUEST_LINE:
                self.send_error(414)
                return None
            self.raw_requestline = line
            self.requestline = line.rstrip(b"\r\n").decode("latin-1")
            lines.append(line)
            while line not in (b"\r\n", b"\n"):
                line = reader.readline()
                if not line:
                    return None  # closed in the middle of the head
                lines.append(line)
        except LineTooLong:
            self.send_error(431)
            return None
        try:
            head = httphead.parse_head(b"".join(lines))
        except httphead.HeadError as exc:
            self.send_error(exc.status, None, str(exc))
            return None
        self.command, self.path, self.request_version = head.method, head.target, head.version
        for name, value in head.fields:
            self.headers[name] = value
        # A body is never read: after one, the connection closes, so it is never parsed as a request.
        self.close_connection = not head.keep_alive or head.content_length > 0
        return head

    def _dispatch(self, head: httphead.Head) -> None:
        is_head = head.method == "HEAD"
        if head.method not in ("GET", "HEAD"):
            self.close_connection = True
            self._send(405, b"method not allowed\n", TEXT, head=False, extra={"Allow": "GET, HEAD"})
            return
        path = head.target.split("?", 1)[0]
        if path == "/healthz":  # kubelet probes: no credentials, and never rate limited
            self._serve(path, is_head)
            return
        limiter = self.server.limiter
        if limiter is not None and not limiter.allow():
            self._send(429, b"too many requests\n", TEXT, is_head)
            return
        verdict = self.server.auth.check(self.headers.get("Authorization"), self.client)
        if verdict == "limited":
            retry = str(self.server.auth.FAILURE_WAIT_SECONDS)
            self._send(429, b"too many failed logins\n", TEXT, is_head, extra={"Retry-After": retry})
            return
        if verdict != "ok":
            self._send(401, b"unauthorized\n", TEXT, is_head, extra={"WWW-Authenticate": REALM})
            return
        self._serve(path, is_head)

    def _serve(self, path: str, head: bool) -> None:
        routes = self.server.routes
        if path == "/metrics":
            om = wants_openmetrics(self.headers.get("Accept", ""))
            body = routes.exposition.render(openmetrics=om)
            extra = {"Vary": "Accept-Encoding"}
            if accepts_gzip(self.headers.get("Accept-Encoding", "")):
                body = self.server.gzipped(body, om)
                extra["Content-Encoding"] = "gzip"
            self._send(200, body, OPENMETRICS_CONTENT_TYPE if om else TEXT_CONTENT_TYPE, head, extra)
        elif path == "/healthz":
            ok = routes.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n", TEXT, head)
        elif path == "/api/v1/grid":
            body = json.dumps(routes.grid_payload(), sort_keys=True).encode()
            self._send(200, body, "application/json", head)
        elif path in routes.pages:
            body, ctype = routes.pages[path]()
            self._send(200, body, ctype, head)
        elif path == "/":
            self._send(200, INDEX, "text/html; charset=utf-8", head)
        else:
            self._send(404, b"not found\n", TEXT, head)

    def _send(self, code: int, body: bytes, ctype: str, head: bool, extra: dict[str, str] | None = None) -> None:
        self._encoding = (extra or {}).get("Content-Encoding", "identity")
        self._size = str(len(body))
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

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """The access log line (debug level): the request line escaped as http.server escapes it."""
        agent = self.headers.get("User-Agent", "")
        log.debug('http "%s" %s %s', escape_log(self.requestline), code, self._size, extra={
            "client": escape_log(str(self.client_address[0])), "encoding": self._encoding,
            "user_agent": escape_log(agent[:200]),
        })

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s", escape_log(format % args))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stopping never waits for slow clients
    allow_reuse_address = True
    request_queue_size = 128

    _dual_stack = False

    def __init__(self, address: str, routes: Routes, web_config: str = "",
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.web = webconfig.load(web_config)  # ConfigError (exit 2) before the port is taken
        self.tls = self.web.ssl_context()
        self.auth = auth.BasicAuth(self.web.users)
        self.limiter = auth.TokenBucket(self.web.rate_limit) if self.web.rate_limit else None
        self.routes = routes
        self.reaper = Reaper()
        self.slots = Slots(max_connections)
        self._local = threading.local()  # the connection thread's slot key
        self._gzip: dict[bool, tuple[bytes, bytes]] = {}  # openmetrics? -> (body, gzipped body)
        self._full_logged = False
        host, port = split_address(address)
        if host:
            if ":" in host:
                self.address_family = socket.AF_INET6
            super().__init__((host, port), Handler)
        else:
            self._listen_everywhere(port)
        self._thread: threading.Thread | None = None

    def _listen_everywhere(self, port: int) -> None:
        """`:port`: one dual-stack socket on [::] (IPv4 arrives as ::ffff:a.b.c.d), else 0.0.0.0."""
        self.address_family, self._dual_stack = socket.AF_INET6, True
        try:
            super().__init__(("::", port), Handler)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT):
                raise
        log.info("no IPv6 on this host: listening on IPv4 only")
        self.address_family, self._dual_stack = socket.AF_INET, False
        super().__init__(("0.0.0.0", port), Handler)

    def server_bind(self) -> None:
        if self._dual_stack:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def gzipped(self, body: bytes, openmetrics: bool) -> bytes:
        """The body compressed once per exposition render (the same bytes object until the next sample)."""
        cached = self._gzip.get(openmetrics)
        if cached is not None and cached[0] is body:
            return cached[1]
        packed = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        self._gzip[openmetrics] = (body, packed)
        return packed

    def current_slot(self) -> object:
        return self._local.key

    def process_request(self, request: Any, client_address: Any) -> None:
        """In the accept loop: only take a slot (evicting the longest-waiting connection if all are
        taken) and hand the connection to a thread."""
        if not self.slots.open(request, request):
            if not self._full_logged:
                log.warning("every connection slot is answering a request; refusing new ones until one is done",
                            extra={"max_connections": self.slots.limit})
                self._full_logged = True
            self.shutdown_request(request)
            return
        self._full_logged = False
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.close(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        self._local.key = request
        super().process_request_thread(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Free the slot before the socket closes: an eviction never shuts a reused descriptor."""
        key = getattr(self._local, "key", None)
        if key is not None:
            self.slots.close(key)
        super().shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's thread: the TLS handshake (bounded by the deadline), then HTTP."""
        request.settimeout(CLIENT_TIMEOUT_SECONDS)
        if self.tls is None:
            Handler(request, client_address, self)
            return
        conn = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        self.slots.rewrap(request, conn)
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
            if tls is not None and not auth.allowed_san(conn.getpeercert(), tls.client_allowed_sans):
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
            host = str(self.server_address[0])
            host = {"::": "::1", "0.0.0.0": "127.0.0.1"}.get(host, host)
            with contextlib.suppress(OSError):
                socket.create_connection((host, self.port), timeout=1).close()
            waiter.join(0.05)
        self.server_close()
        self.reaper.stop()
