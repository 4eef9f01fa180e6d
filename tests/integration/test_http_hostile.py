"""The real exporter process against hostile HTTP clients on raw sockets (issue 16's HTTP rows), and
gzip negotiation with real clients: requests, urllib, and Prometheus's own scraper.

Every wait is bounded by a client timeout; nothing asserts how fast an answer came.
"""

from __future__ import annotations

import gzip
import socket
import urllib.request
from contextlib import ExitStack

import pytest
import requests

from tests.support.exporter import free_port, start_exporter
from tests.support.prometheus import start_prometheus, static_job, wait_until
from tests.support.promtext import parse
from tests.support.rawhttp import exchange

ARGS = ["--no-meter.nvml", "--no-meter.rapl", "--grid.provider=constant", "--grid.constant.value=300"]


def get(port: int, path: str, host: str = "127.0.0.1") -> int:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:
        resp.read()
        return int(resp.status)


def test_300_silent_connections_starve_neither_scrapes_nor_healthz() -> None:
    """Before: 256 sockets that never send a byte held every slot for 10 s; 1-2 of 49 probes answered."""
    with start_exporter(ARGS) as exp, ExitStack() as stack:
        silent = [stack.enter_context(socket.create_connection(("127.0.0.1", exp.port), timeout=5))
                  for _ in range(300)]
        answered = [get(exp.port, "/healthz" if i % 2 else "/metrics") for i in range(49)]
        assert answered == [200] * 49
        # The oldest silent sockets were the ones shut to make room: they read EOF, not a hang.
        assert silent[0].recv(1) == b""
        assert "Traceback" not in exp.log()


SMUGGLED = [
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: a\r\n Content-Length: 40\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length : 40\r\n\r\n",
]


def test_request_smuggling_shapes_get_one_400_and_nothing_else() -> None:
    second = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with start_exporter(ARGS) as exp:
        for head in SMUGGLED:
            body = second.ljust(40, b"\r")[:40] if b"40" in head else second
            answer = exchange(exp.port, head + body)
            assert answer.startswith(b"HTTP/1.1 400 "), (head, answer[:80])
            assert b"HTTP/1.1 200" not in answer, head  # the body was never answered as a request
        # The same connection shapes without the ambiguity still work (keep-alive, two requests).
        two = exchange(exp.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + second)
        assert two.count(b"HTTP/1.1 200") == 2


def test_control_bytes_in_a_request_are_escaped_in_the_debug_log() -> None:
    with start_exporter([*ARGS, "--log.level=debug"]) as exp:
        exchange(exp.port, b"GET /\x1b[2J\x00 HTTP/1.1\r\nHost: x\r\n\r\n")  # 400: not a valid target
        exchange(exp.port, b"GET /nope?\x1b]0;pwned\x07 HTTP/1.1\r\nHost: x\r\n\r\n")
        exchange(exp.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nUser-Agent: a\x1bb\rc\r\n\r\n")
        exp.wait_until(lambda _: "x1b]0;pwned" in exp.log())
        raw = exp.log_path.read_bytes()
    for byte in (b"\x1b", b"\x00", b"\x07", b"\r"):
        assert byte not in raw
    assert b"\\\\x1b[2J\\\\x00" in raw  # http.server's \x1b, inside a logfmt quoted value


def test_the_default_listen_address_is_dual_stack() -> None:
    port = free_port()
    with start_exporter([*ARGS, f"--web.listen-address=:{port}"], port=port) as exp:
        assert get(exp.port, "/healthz", "127.0.0.1") == 200
        assert get(exp.port, "/healthz", "[::1]") == 200


def test_metrics_are_gzipped_for_clients_that_accept_it() -> None:
    with start_exporter(ARGS) as exp:
        resp = requests.get(exp.url + "/metrics", timeout=5)  # sends Accept-Encoding: gzip, deflate
        assert resp.headers["Content-Encoding"] == "gzip" and resp.headers["Vary"] == "Accept-Encoding"
        assert int(resp.headers["Content-Length"]) < len(resp.content)
        assert "footprint_build_info" in {name for name, _ in parse(resp.text)}
        for accept, encoded in [("gzip;q=0.5, identity", True), ("gzip;q=0", False), ("br", False),
                                ("*", True)]:
            req = urllib.request.Request(exp.url + "/metrics", headers={"Accept-Encoding": accept})
            with urllib.request.urlopen(req, timeout=5) as r:
                body, headers = r.read(), r.headers
            assert headers["Vary"] == "Accept-Encoding", accept
            assert (headers.get("Content-Encoding") == "gzip") is encoded, accept
            text = (gzip.decompress(body) if encoded else body).decode()
            assert "footprint_build_info" in text, accept
        head = requests.head(exp.url + "/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5)
        assert head.headers["Content-Encoding"] == "gzip" and head.content == b""


@pytest.mark.slow
def test_prometheus_scrapes_gzip() -> None:
    """Prometheus asks for gzip on every scrape (its scrape loop sets Accept-Encoding: gzip unless
    enable_compression is false); the access log says what it got."""
    with start_exporter([*ARGS, "--log.level=debug"]) as exp, \
            start_prometheus(scrape_configs=[static_job("footprint", [exp.port])]) as prom:
        prom.wait_for_query("footprint_build_info", timeout=60)

        def gzip_scrape() -> str | None:
            return next((line for line in exp.log().splitlines()
                         if "GET /metrics" in line and "Prometheus/" in line and "encoding=gzip" in line), None)

        line = wait_until(gzip_scrape, timeout=30, what="a gzip scrape by Prometheus in the access log")
        assert " 200 " in line
