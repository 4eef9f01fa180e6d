"""One unary gRPC call over HTTP/2 on a unix socket: what the kubelet's pod-resources List needs, and no more.

Why not grpcio: importing it costs the exporter about 10 MiB of resident memory on every node (measured:
29.4 -> 39.5 MiB after `import footprint.app`), and each call makes a channel with threads of its own.
The call is one request and one answer, so the wire is small enough to speak ourselves, with `h2` (the
python-hyper HTTP/2 state machine: framing, HPACK with Huffman and the dynamic table, flow control,
SETTINGS and PING acknowledgements; 0.4 MiB).

The wire (grpc/grpc doc/PROTOCOL-HTTP2.md): HTTP/2 with prior knowledge (no TLS, no upgrade) on the
socket; a POST to `/<service>/<method>` with `content-type: application/grpc` and `te: trailers`; the
body is each message as a 5-byte prefix (compressed flag, big-endian length) and the bytes. The answer
is `:status 200` headers, the message in DATA frames, and trailers with `grpc-status` (0 is OK) and a
percent-encoded `grpc-message`; a call that fails at once may answer "trailers only": one HEADERS frame
holding `:status` and `grpc-status`, ending the stream. We ask for no compression (no
`grpc-accept-encoding`), so a compressed message is an error.

Nothing from the socket is trusted: the whole call has one deadline (also sent as `grpc-timeout`), the
answer a size limit, and anything else (an HTTP/2 protocol error, a reset stream, a GOAWAY before the
answer, a closed socket, a second message, a non-200 status) raises CallError naming it.
"""

from __future__ import annotations

import contextlib
import socket
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STREAM = 1  # the client's first stream: one call per connection
READ_SIZE = 65536
FRAME_HEADER, SETTINGS = 9, 0x4  # an HTTP/2 frame header's length, the SETTINGS frame's type
DEFAULT_LIMIT = 16 * 1024 * 1024  # the largest answer taken (grpcio's default is 4 MiB; dcgm-exporter asks 16)
SHOWN = 200  # the most of a server's grpc-message an error repeats
OVERHEAD = 1024 * 1024  # what the frames around an answer may add to it (headers, SETTINGS, PINGs, padding)


class CallError(RuntimeError):
    """The call did not give one well-formed answer with status OK."""


def message_frame(message: bytes) -> bytes:
    """A message as gRPC frames it on the wire: uncompressed, length first."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


def single_message(body: bytes) -> bytes:
    """The one uncompressed message of a unary answer's body; CallError for anything else."""
    if len(body) < 5:
        raise CallError(f"the answer is {len(body)} bytes, shorter than a message's 5-byte prefix")
    if body[0] != 0:
        raise CallError(f"the answer's message is compressed (flag {body[0]}), which was not asked for")
    size = int.from_bytes(body[1:5], "big")
    if len(body) != 5 + size:
        raise CallError(f"the answer holds {len(body) - 5} bytes after its prefix, which announces {size}")
    return body[5:]


def _headers(block: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return {name: value for name, value in block}


def _check_status(headers: dict[bytes, bytes], trailers: dict[bytes, bytes]) -> None:
    status = headers.get(b":status")
    if status != b"200":
        raise CallError(f"HTTP status {_shown(status) if status else 'missing'}")
    fields = trailers or headers  # a trailers-only answer carries its status in the headers
    code = fields.get(b"grpc-status")
    if code is None:
        raise CallError("the answer ended without a grpc-status")
    if code != b"0":
        message = urllib.parse.unquote(_shown(fields.get(b"grpc-message", b""), SHOWN * 3))[:SHOWN]
        raise CallError(f"gRPC status {_shown(code)}: {message}" if message else f"gRPC status {_shown(code)}")


def _shown(value: bytes, most: int = 16) -> str:
    """A header value from the server as it goes into an error (and a log line): text, and short."""
    return value[:most].decode("latin-1")


def call_unary(socket_path: str, method: str, request: bytes, timeout: float,
               limit: int = DEFAULT_LIMIT) -> bytes:
    """The answer's message to `request` on `method` ("/pkg.Service/Method"). OSError where the socket
    cannot be reached (FileNotFoundError, ConnectionRefusedError) or the deadline passes (TimeoutError);
    CallError for a failed or malformed answer."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(STREAM, [
            (b":method", b"POST"), (b":scheme", b"http"), (b":path", method.encode("ascii")),
            (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers"),
            (b"grpc-timeout", f"{max(1, int(timeout * 1000))}m".encode("ascii")),
            (b"user-agent", b"footprint"),
        ])
        conn.send_data(STREAM, message_frame(request), end_stream=True)
        sock.sendall(conn.data_to_send())
        try:
            headers, body, trailers = _answer(sock, conn, deadline, limit)
        except h2.exceptions.ProtocolError as exc:
            raise CallError(f"HTTP/2 protocol error: {exc}") from exc
        conn.close_connection()
        with contextlib.suppress(OSError):  # the server closed first: the answer is complete all the same
            sock.sendall(conn.data_to_send())
    _check_status(headers, trailers)
    return single_message(bytes(body))


def _check_preface(head: bytes) -> None:
    """A server's first frame is SETTINGS on stream 0 (RFC 9113 3.4). Checked before h2 sees the bytes,
    which would otherwise wait for the rest of whatever length an HTTP/1 answer's first bytes spell."""
    if head[3] != SETTINGS or int.from_bytes(head[5:9], "big") & 0x7FFFFFFF != 0:
        raise CallError(f"the server does not speak HTTP/2: its answer begins {head[:16]!r}")


def _answer(sock: socket.socket, conn: h2.connection.H2Connection, deadline: float, limit: int
            ) -> tuple[dict[bytes, bytes], bytearray, dict[bytes, bytes]]:
    """Read until the stream ends: (headers, body, trailers)."""
    headers: dict[bytes, bytes] = {}
    trailers: dict[bytes, bytes] = {}
    body = bytearray()
    first: bytes | None = b""  # the answer's first bytes, until they hold a frame header
    received = 0  # every byte read, frames of any kind: h2 buffers a frame whole before it checks its length
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the pod-resources answer did not end before the deadline")
        sock.settimeout(left)
        data = sock.recv(READ_SIZE)
        if not data:
            raise CallError("the connection closed before the answer ended")
        received += len(data)
        if received > limit + OVERHEAD:
            raise CallError(f"the server sent more than {limit + OVERHEAD} bytes for an answer of at most {limit}")
        if first is not None:
            first += data
            if len(first) < FRAME_HEADER:
                continue
            _check_preface(first)
            data, first = first, None
        ended = False
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == STREAM:
                headers = _headers(event.headers)
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == STREAM:
                body += event.data
                if len(body) > limit + 5:
                    raise CallError(f"the answer is larger than {limit} bytes")
                conn.acknowledge_received_data(event.flow_controlled_length, STREAM)
            elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == STREAM:
                trailers = _headers(event.headers)
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == STREAM:
                raise CallError(f"the stream was reset (error code {event.error_code})")
            elif isinstance(event, h2.events.ConnectionTerminated) and (
                    event.error_code != 0 or event.last_stream_id is None or event.last_stream_id < STREAM):
                raise CallError(f"the server ended the connection (GOAWAY, error code {event.error_code})")
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == STREAM:
                ended = True
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
        if ended:
            return headers, body, trailers
