"""A strict parser for an HTTP/1.x request head (request line and header fields), RFC 9112.

The standard library's parser is lenient in ways that let one connection carry two readings of one
request: it takes the first of two Content-Length fields, folds continuation lines, tolerates bare CR,
and stops at a malformed field, silently handing the rest to the body. An exporter never needs a
body, so this parser refuses every such shape with 400 instead of guessing, as Go's net/http (which
node_exporter and Prometheus use) does for most of them:

- the request line is exactly `METHOD SP origin-form SP HTTP/1.x` (one space each, no control bytes);
- each field is `token ":" OWS value OWS` with no whitespace before the colon, no folding, and no
  control byte in the value except HTAB;
- Content-Length appears at most once and is ASCII digits; any Transfer-Encoding is refused (there is
  no body to read); HTTP/1.1 needs exactly one Host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN = _METHOD
_TARGET = re.compile(rb"/[!-~]*")  # origin-form: printable ASCII, no space
_VALUE = re.compile(rb"[\t !-~\x80-\xff]*")  # VCHAR, obs-text, SP, HTAB
_DIGITS = re.compile(rb"[0-9]{1,18}")


class HeadError(ValueError):
    """A head to refuse: `status` is the HTTP status to answer (400, 505)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Head:
    method: str
    target: str
    version: str  # "HTTP/1.0" | "HTTP/1.1"
    fields: tuple[tuple[str, str], ...]  # (name as sent, value), in order

    def get(self, name: str, default: str = "") -> str:
        lower = name.lower()
        return next((v for k, v in self.fields if k.lower() == lower), default)

    @property
    def content_length(self) -> int:
        return int(self.get("Content-Length", "0"))

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.get("Connection").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """(method, target, version) from the first line, CRLF included."""
    if not line.endswith(b"\r\n"):
        raise HeadError(400, "request line does not end in CRLF")
    parts = line[:-2].split(b" ")
    if len(parts) != 3:
        raise HeadError(400, "request line is not METHOD SP target SP version")
    method, target, version = parts
    if not _METHOD.fullmatch(method):
        raise HeadError(400, "bad method")
    if not _TARGET.fullmatch(target):
        raise HeadError(400, "request target is not an absolute path")
    if not re.fullmatch(rb"HTTP/[0-9]\.[0-9]", version):
        raise HeadError(400, "bad protocol version")
    if version not in (b"HTTP/1.0", b"HTTP/1.1"):
        raise HeadError(505, "only HTTP/1.0 and HTTP/1.1")
    return method.decode("ascii"), target.decode("ascii"), version.decode("ascii")


def parse_field(line: bytes) -> tuple[str, str]:
    """One header field line, CRLF included."""
    if not line.endswith(b"\r\n"):
        raise HeadError(400, "header line does not end in CRLF")
    body = line[:-2]
    if body[:1] in (b" ", b"\t"):
        raise HeadError(400, "obsolete line folding")
    name, colon, value = body.partition(b":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HeadError(400, "bad header field name")
    value = value.strip(b" \t")
    if not _VALUE.fullmatch(value):
        raise HeadError(400, f"control byte in the {name.decode('ascii')} field")
    return name.decode("ascii"), value.decode("latin-1")


def check_fields(version: str, fields: tuple[tuple[str, str], ...]) -> None:
    """The rules across fields: framing (Content-Length, Transfer-Encoding) and Host."""
    names = [k.lower() for k, _ in fields]
    if "transfer-encoding" in names:
        raise HeadError(400, "Transfer-Encoding is not accepted (no request has a body here)")
    lengths = [v for k, v in fields if k.lower() == "content-length"]
    if len(lengths) > 1:
        raise HeadError(400, "more than one Content-Length")
    if lengths and not _DIGITS.fullmatch(lengths[0].encode("latin-1")):
        raise HeadError(400, "Content-Length is not a decimal number")
    hosts = names.count("host")
    if hosts > 1 or (version == "HTTP/1.1" and hosts == 0):
        raise HeadError(400, "one Host field is required (HTTP/1.1), and only one is allowed")


def parse_head(data: bytes) -> Head:
    """A whole head: request line, fields, and the empty line that ends it."""
    if not data.endswith(b"\r\n\r\n"):
        raise HeadError(400, "head does not end in an empty line")
    lines = [line + b"\r\n" for line in data[:-4].split(b"\r\n")]
    method, target, version = parse_request_line(lines[0])
    fields = tuple(parse_field(line) for line in lines[1:])
    check_fields(version, fields)
    return Head(method, target, version, fields)
