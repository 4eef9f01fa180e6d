"""The strict request-head parser, Accept-Encoding negotiation and log escaping, as properties.

Smuggling shapes are the ones RFC 9112 section 11.2 and the classic CL.CL / CL.TE / TE.TE attacks
use: a front proxy and this server must never read one head two ways, so each is refused outright.
"""

from __future__ import annotations

import http.server

import pytest
from footprint.web import httphead
from footprint.web.httphead import HeadError, parse_head
from footprint.web.server import CONTROL_ESCAPES, accepts_gzip, escape_log
from hypothesis import given
from hypothesis import strategies as st

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(TOKEN_CHARS, min_size=1, max_size=20).filter(
    lambda n: n.lower() not in ("host", "content-length", "transfer-encoding"))
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
targets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(lambda t: "/" + t)


def head(*lines: str, version: str = "HTTP/1.1", target: str = "/metrics") -> bytes:
    return f"GET {target} {version}\r\n".encode() + b"".join(f"{x}\r\n".encode() for x in lines) + b"\r\n"


@given(targets, st.lists(st.tuples(names, values), max_size=8), st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
def test_a_well_formed_head_reads_back_exactly(target: str, fields: list[tuple[str, str]], version: str) -> None:
    lines = ["Host: node-1:10180", *(f"{k}: {v}" for k, v in fields)]
    parsed = parse_head(head(*lines, version=version, target=target))
    assert (parsed.method, parsed.target, parsed.version) == ("GET", target, version)
    assert parsed.fields == (("Host", "node-1:10180"), *fields)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_are_refused_with_400_or_505(data: bytes) -> None:
    try:
        parsed = parse_head(data)
    except HeadError as exc:
        assert exc.status in (400, 505)
        return
    assert data.endswith(b"\r\n\r\n") and parsed.method.isascii()


@given(st.sampled_from(["0", "40", "5"]), st.sampled_from(["0", "40", "5"]))
def test_two_content_lengths_are_400_even_when_equal(first: str, second: str) -> None:
    with pytest.raises(HeadError) as err:
        parse_head(head("Host: x", f"Content-Length: {first}", f"Content-Length: {second}"))
    assert err.value.status == 400


@given(names, values, st.sampled_from(["\r", "\n", "\x00", "\x1b", "\x7f", "\x0b"]), st.integers(0, 40))
def test_a_control_byte_in_a_field_is_400(name: str, value: str, bad: str, at: int) -> None:
    at = min(at, len(value))
    with pytest.raises(HeadError):
        parse_head(head("Host: x", f"{name}: {value[:at]}{bad}{value[at:]}"))


SMUGGLING = [
    ("Host: x", "Content-Length: 0", "Content-Length: 40"),  # CL.CL, today answered as two requests
    ("Host: x", "Content-Length: 0, 40"),
    ("Host: x", "Transfer-Encoding: chunked", "Content-Length: 4"),  # CL.TE
    ("Host: x", "Transfer-Encoding: chunked"),
    ("Host: x", "Transfer-Encoding : chunked"),  # whitespace before the colon
    ("Host: x", "Content-Length: +4"),
    ("Host: x", "Content-Length: ٤"),
    ("Host: x", "X-Pad: a", " Content-Length: 4"),  # obsolete folding
    ("Host: x", "X: a\rContent-Length: 4"),  # bare CR
    ("Host: a", "Host: b"),
    (),  # HTTP/1.1 without Host
    ("Host: x", "no colon here"),
]


@pytest.mark.parametrize("lines", SMUGGLING)
def test_smuggling_shapes_are_400(lines: tuple[str, ...]) -> None:
    with pytest.raises(HeadError) as err:
        parse_head(head(*lines))
    assert err.value.status == 400


@pytest.mark.parametrize(("line", "status"), [
    (b"GET /metrics HTTP/2.0\r\n", 505), (b"GET  /metrics HTTP/1.1\r\n", 400), (b"GET /metrics\r\n", 400),
    (b"GET http://x/metrics HTTP/1.1\r\n", 400), (b"GET /a\tb HTTP/1.1\r\n", 400), (b"GET /metrics HTTP/1.1\n", 400),
])
def test_the_request_line_is_exact(line: bytes, status: int) -> None:
    with pytest.raises(HeadError) as err:
        httphead.parse_request_line(line)
    assert err.value.status == status


def test_keep_alive_follows_the_version_and_connection() -> None:
    assert parse_head(head("Host: x")).keep_alive
    assert not parse_head(head("Host: x", "Connection: close")).keep_alive
    assert not parse_head(head(version="HTTP/1.0")).keep_alive
    assert parse_head(head("Connection: Keep-Alive", version="HTTP/1.0")).keep_alive


@pytest.mark.parametrize(("header", "gzip"), [
    ("gzip", True), ("gzip, deflate, br", True), ("GZIP;q=0.5", True), ("gzip;q=0", False), ("gzip; q=0.000", False),
    ("*", True), ("*;q=0", False), ("gzip;q=0, *", False), ("deflate", False), ("", False), ("identity", False),
    ("x-gzip", True), ("gzip;q=2", False), ("gzip;q=nan", False), ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
])
def test_accept_encoding_negotiation(header: str, gzip: bool) -> None:
    assert accepts_gzip(header) is gzip


@given(st.text(max_size=60))
def test_accept_encoding_never_raises(header: str) -> None:
    assert isinstance(accepts_gzip(header), bool)


def test_log_escaping_is_the_standard_librarys() -> None:
    stdlib = getattr(http.server.BaseHTTPRequestHandler, "_control_char_table", None)
    assert stdlib is not None and stdlib == CONTROL_ESCAPES


@given(st.text(max_size=60))
def test_escaped_log_text_has_no_control_characters(text: str) -> None:
    out = escape_log(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in out)
