"""A unix-socket server that answers one gRPC call the way broken or hostile peers do.

What it imitates: what can sit behind a socket path the exporter is told is the kubelet's pod-resources
endpoint. A kubelet that is starting accepts and says nothing for a while; one that is stopping sends a
GOAWAY (grpc-go's graceful stop) or resets the stream; a socket file left behind refuses or closes at
once; something that is not gRPC answers HTTP/1.1 or non-200 statuses (RFC 9113 allows any status; a
proxy says 503); a server that compresses without being asked (grpc/grpc doc/compression.md says it must
not) sets the message's compressed flag; a buggy one sends two messages to a unary call, a prefix that
disagrees with the body, or ends without `grpc-status`. Each answer is real HTTP/2 written with `h2`'s
server side, so only the part under test is wrong.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events

# (connection, stream id): send what the answer should be; the server sends conn.data_to_send() after.
Answer = Callable[[h2.connection.H2Connection, int], None]


def ok_headers() -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", "application/grpc")]


def grpc_frame(message: bytes, compressed: bool = False) -> bytes:
    return bytes([1 if compressed else 0]) + len(message).to_bytes(4, "big") + message


class RawServer:
    """Runs `serve(sock)` on every accepted connection, in a thread of its own, until stop()."""

    def __init__(self, path: Path, serve: Callable[[socket.socket], None]) -> None:
        self.path = path
        self.serve = serve
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self._listener.bind(str(self.path))
        self._listener.listen(4)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (close alone does not)
        self._listener.close()
        self._thread.join(5)
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self.serve(conn)


def silent(sock: socket.socket) -> None:
    """Accept and read, never answer (a kubelet busy starting), until the client gives up."""
    sock.settimeout(10)
    while sock.recv(65536):
        pass


def http1(sock: socket.socket) -> None:
    sock.recv(65536)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def close_at_once(sock: socket.socket) -> None:
    """A socket file of a process that accepts and drops (or dies with the connection open)."""


def h2_answering(answer: Answer, then_close: bool = False) -> Callable[[socket.socket], None]:
    """Serve HTTP/2: wait for the call's request to end, then send what `answer` puts on the stream;
    `then_close` ends the server's side right after (it sends no more: an answer cut short), reading on
    until the client closes, so the client meets an end of stream rather than a reset."""

    def serve(sock: socket.socket) -> None:
        sock.settimeout(10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            if not data:
                return
            ended = [e.stream_id for e in conn.receive_data(data) if isinstance(e, h2.events.StreamEnded)]
            sock.sendall(conn.data_to_send())
            if ended:
                answer(conn, ended[0])
                sock.sendall(conn.data_to_send())
                if then_close:
                    sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):  # until the client closes
                    pass
                return

    return serve
