"""Raw HTTP on a loopback socket, for requests no HTTP client would send (smuggling, oversize, junk)."""

from __future__ import annotations

import socket


def exchange(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes, read until the server closes (or 5 s pass): the server's whole answer."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
