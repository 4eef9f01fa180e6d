"""The real exporter behind TLS and basic auth, spoken to by real clients (ssl + http.client).

Certificates are made per test with `cryptography`; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import http.client
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import bcrypt
import pytest

from tests.support.exporter import REPO, ExporterProcess, free_port, start_exporter
from tests.support.promtext import parse
from tests.support.rawhttp import exchange
from tests.support.tls import CA, Issued

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def auth(user: str = "prometheus", password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def client_context(ca: CA | None, cert: Issued | None = None, max_version: ssl.TLSVersion | None = None
                   ) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.path) if ca else None)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def request(port: int, ctx: ssl.SSLContext | None, path: str = "/metrics", method: str = "GET",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn: http.client.HTTPConnection
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@contextmanager
def exporter(tmp_path: Path, web_config: str, ready: ssl.SSLContext | None,
             ready_headers: dict[str, str] | None = None) -> Iterator[ExporterProcess]:
    """The exporter with this web config, once /healthz answers through `ready` (a client context)."""
    web = tmp_path / "web.yml"
    web.write_text(web_config)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
    env["PYTHONPATH"] = str(REPO / "exporter")
    log_fd, log_name = tempfile.mkstemp(prefix="footprint-", suffix=".log")
    cmd = [sys.executable, "-m", "footprint", f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={web}",
           f"--path.sysfs={tmp_path}", "--no-meter.nvml", "--grid.provider=constant", "--grid.constant.value=300"]
    proc = subprocess.Popen(cmd, stdout=log_fd, stderr=subprocess.STDOUT, env=env)
    os.close(log_fd)
    exp = ExporterProcess(proc, port, Path(log_name))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if request(port, ready, "/healthz", headers=ready_headers)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            assert proc.poll() is None, f"exporter exited with {proc.returncode}:\n{exp.log()}"
            assert time.monotonic() < deadline, f"not ready:\n{exp.log()}"
            time.sleep(0.05)
        yield exp
    finally:
        exp.stop()
        Path(log_name).unlink(missing_ok=True)


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CA, Issued]:
    ca = CA(tmp_path, "footprint-test")
    return ca, ca.issue("server", ["127.0.0.1", "localhost"])


def test_tls_with_basic_auth(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, server = pki
    config = f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n" \
             f"basic_auth_users:\n  prometheus: {HASH}\nhttp_server_config:\n  headers:\n" \
             f"    X-Content-Type-Options: nosniff\n"
    good = client_context(ca)
    with exporter(tmp_path, config, good) as exp:
        status, headers, body = request(exp.port, good, headers=auth())
        assert status == 200 and b"footprint_build_info" in body
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Server"] == "footprint/0.1.0"  # no Python version for scanners
        assert request(exp.port, good, method="HEAD", headers=auth())[:2][0] == 200

        for creds in ({}, auth(password="wrong"), auth(user="mallory"), {"Authorization": "Bearer xyz"}):
            status, headers, body = request(exp.port, good, headers=creds)
            assert status == 401, creds
            assert headers["WWW-Authenticate"].startswith("Basic realm=")
            assert b"footprint_" not in body
        assert request(exp.port, good, method="HEAD")[0] == 401
        assert request(exp.port, good, "/api/v1/grid")[0] == 401
        assert request(exp.port, good, "/healthz")[0] == 200  # kubelet probes carry no credentials

        with pytest.raises(ssl.SSLCertVerificationError):
            request(exp.port, client_context(None))  # the system CAs do not know this certificate
        with pytest.raises((http.client.HTTPException, OSError)):
            request(exp.port, None, headers=auth())  # plain HTTP to the TLS port
        # The exporter is still fine after all of that.
        assert request(exp.port, good, headers=auth())[0] == 200


def test_client_certificate_required(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, server = pki
    client = ca.issue("prometheus", ["prometheus.monitoring.svc"], client=True)
    other_san = ca.issue("intruder", ["intruder.example"], client=True)
    stranger = CA(tmp_path, "other").issue("prometheus-elsewhere", ["prometheus.monitoring.svc"], client=True)
    config = (f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
              f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca.path}\n"
              f"  client_allowed_sans: [prometheus.monitoring.svc]\n")
    good = client_context(ca, client)
    with exporter(tmp_path, config, good) as exp:
        status, _, body = request(exp.port, good)
        assert status == 200 and b"footprint_build_info" in body
        for refused in (client_context(ca), client_context(ca, stranger), client_context(ca, other_san)):
            # TLS 1.3 finishes the client's side of the handshake first: the refusal arrives on the read.
            with pytest.raises((ssl.SSLError, http.client.HTTPException, ConnectionError)):
                request(exp.port, refused)
        assert request(exp.port, good)[0] == 200


def test_minimum_tls_version_is_enforced(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    ca, server = pki
    config = f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n  min_version: TLS13\n"
    with exporter(tmp_path, config, client_context(ca)) as exp:
        with pytest.raises(ssl.SSLError):
            request(exp.port, client_context(ca, max_version=ssl.TLSVersion.TLSv1_2))
        assert request(exp.port, client_context(ca))[0] == 200


def test_only_small_get_and_head_requests_on_known_paths(tmp_path: Path) -> None:
    with exporter(tmp_path, "", None) as exp:
        port = exp.port
        assert request(port, None, "/nope")[0] == 404
        assert exchange(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
        answer = exchange(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        assert answer.count(b"HTTP/1.1 ") == 1  # the body was not read as a second request
        assert exchange(port, b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert exchange(port, b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 414")
        many = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"b" * 100) for i in range(200))  # 20 KiB of headers
        assert exchange(port, b"GET /metrics HTTP/1.1\r\n" + many + b"\r\n").startswith(b"HTTP/1.1 431")
        assert exchange(port, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400")
        # Keep-alive: two requests on one connection, both answered.
        two = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert two.count(b"HTTP/1.1 200") == 2
        assert request(port, None)[0] == 200


# --- hostile clients and a secured grid pod (issue 16) -----------------------------------------------


def test_healthz_is_outside_the_rate_limit(tmp_path: Path) -> None:
    """Before: with rate_limit set, an unauthenticated flood made 20 of 20 kubelet probes get 429."""
    config = "rate_limit:\n  interval: 1h\n  burst: 3\n"
    with exporter(tmp_path, config, None) as exp:
        flood = [request(exp.port, None)[0] for _ in range(20)]
        assert flood.count(429) >= 16
        assert [request(exp.port, None, "/healthz")[0] for _ in range(20)] == [200] * 20


def test_a_wrong_password_flood_does_not_hold_up_a_good_credential(tmp_path: Path) -> None:
    """100 connections with wrong passwords from one client (127.0.0.2), all sent before the real
    scraper (127.0.0.1) asks with a good, not yet cached credential. At bcrypt cost 12 the flood is
    tens of seconds of bcrypt work, two at a time; past the failure budget it gets 429 without any,
    so the good credential is answered within the client's (and Prometheus's default scrape) 10 s."""
    slow_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12)).decode()
    config = f"basic_auth_users:\n  prometheus: {slow_hash}\n"
    with exporter(tmp_path, config, None) as exp:
        sent = threading.Semaphore(0)
        statuses: list[int] = []

        def attacker() -> None:
            with socket.create_connection(("127.0.0.1", exp.port), timeout=60, source_address=("127.0.0.2", 0)) as s:
                wrong = auth(password="guess")["Authorization"]
                s.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {wrong}\r\n\r\n".encode())
                sent.release()
                answer = s.recv(64)
            statuses.append(int(answer.split()[1]) if answer else 0)

        threads = [threading.Thread(target=attacker, daemon=True) for _ in range(100)]
        for t in threads:
            t.start()
        for _ in threads:
            assert sent.acquire(timeout=30)
        assert request(exp.port, None, headers=auth())[0] == 200  # http.client timeout: 10 s
        for t in threads:
            t.join(timeout=60)
    assert len(statuses) == 100 and set(statuses) <= {401, 429}
    assert statuses.count(429) >= 80  # refused without bcrypt: only the budget's few were checked


def grid_pod_config(server: Issued) -> str:
    return (f"tls_server_config:\n  cert_file: {server.cert}\n  key_file: {server.key}\n"
            f"basic_auth_users:\n  node: {HASH}\n")


def test_a_node_reads_a_grid_pod_behind_tls_and_basic_auth(tmp_path: Path, pki: tuple[CA, Issued]) -> None:
    """The grid pod secured like any exporter (a real exporter process with a web config); the node's
    peer provider trusts the pod's CA and logs in, so securing the pod does not break the nodes."""
    ca, server = pki
    password = tmp_path / "peer-password"
    password.write_text(PASSWORD + "\n")
    with exporter(tmp_path, grid_pod_config(server), client_context(ca)) as grid:
        peer = [f"--grid.peer.url=https://127.0.0.1:{grid.port}", "--grid.provider=peer", "--grid.zone=DE",
                "--grid.refresh-interval=1s", "--no-meter.nvml", f"--path.sysfs={tmp_path}"]
        secured = [f"--grid.peer.ca-file={ca.path}", "--grid.peer.username=node",
                   f"--grid.peer.password-file={password}"]
        with start_exporter([*peer, *secured]) as node:
            text: str = node.wait_until(lambda t: t if 'footprint_grid_provider_up{provider="peer"} 1.0' in t else None)
            series = parse(text)
            assert series[(INTENSITY, frozenset({"provider": "peer", "signal": "average", "grid_zone": "user"}.items()))
                          ] == 300.0
            assert PASSWORD not in node.log()
        (tmp_path / "other").mkdir()
        other_ca = CA(tmp_path / "other", "not-the-grid-pods")
        wrong = tmp_path / "wrong-password"
        wrong.write_text("wrong\n")
        for flags, reason in [([f"--grid.peer.ca-file={other_ca.path}", *secured[1:]], "connection"),
                              ([*secured[:2], f"--grid.peer.password-file={wrong}"], "auth")]:
            with start_exporter([*peer, *flags]) as node:
                assert node.wait_until(partial(peer_errors, reason=reason))


INTENSITY = "footprint_grid_carbon_intensity_grams_per_kilowatt_hour"


def peer_errors(text: str, reason: str) -> bool:
    key = ("footprint_grid_fetch_errors_total", frozenset({"provider": "peer", "reason": reason}.items()))
    return parse(text).get(key, 0.0) >= 1
