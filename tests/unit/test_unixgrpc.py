"""The pod-resources call over HTTP/2 on a unix socket: against a real gRPC server and against broken ones."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import grpc
import h2.connection
import pytest
from footprint.attribution.podresources import LIST_METHOD, PodResourcesClient
from footprint.attribution.unixgrpc import CallError, call_unary, message_frame, single_message
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.h2_answers import RawServer, close_at_once, grpc_frame, h2_answering, http1, ok_headers, silent
from tests.fakes.podresources_server import FakeContainer, FakePodResources, FakePodResourcesServer


def many_pods(n: int) -> list[FakePodResources]:
    return [FakePodResources(f"worker-{i:05d}", f"team-{i % 40}", [
        FakeContainer("main", [("nvidia.com/gpu", [f"GPU-{i:08x}-0000-0000-0000-{i:012x}"])]),
        FakeContainer("sidecar"),
    ]) for i in range(n)]


def test_an_answer_far_past_the_flow_control_window_arrives_whole(socket_dir: Path) -> None:
    """~330 KB: five times HTTP/2's initial 64 KiB window, so the client must hand window back as it reads."""
    pods = many_pods(3000)
    server = FakePodResourcesServer(socket_dir / "kubelet.sock", pods).start()
    try:
        answer = PodResourcesClient(str(socket_dir / "kubelet.sock")).list()
    finally:
        server.stop()
    assert len(answer.pods) == 3000 and not answer.skipped
    assert answer.pods[2999].name == "worker-02999" and answer.pods[2999].namespace == "team-39"
    assert answer.pods[1234].containers[0].devices[0].device_ids == ("GPU-000004d2-0000-0000-0000-0000000004d2",)


def test_a_grpc_error_status_names_its_code_and_message(socket_dir: Path) -> None:
    """The kubelet's rate limiter answers RESOURCE_EXHAUSTED (8) "trailers only"; the message is
    percent-encoded on the wire."""
    server = FakePodResourcesServer(socket_dir / "kubelet.sock", many_pods(2)).start()
    server.fail_with = (grpc.StatusCode.RESOURCE_EXHAUSTED, "rejected by rate limit: 100% used")
    client = PodResourcesClient(str(socket_dir / "kubelet.sock"))
    try:
        with pytest.raises(CallError, match=r"^gRPC status 8: rejected by rate limit: 100% used$"):
            client.list()
        server.fail_with = None  # the next List is a new connection and works
        assert len(client.list().pods) == 2
    finally:
        server.stop()


def test_an_answer_over_the_limit_is_refused(socket_dir: Path) -> None:
    server = FakePodResourcesServer(socket_dir / "kubelet.sock", many_pods(500)).start()
    try:
        with pytest.raises(CallError, match="larger than 10000 bytes"):
            call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5, limit=10_000)
        assert len(call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5)) > 10_000
    finally:
        server.stop()


def test_a_socket_nobody_listens_on_refuses(socket_dir: Path) -> None:
    """A kubelet that died leaves its socket file behind: bound once, nobody listening."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_dir / "kubelet.sock"))
    stale.close()
    with pytest.raises(ConnectionRefusedError):
        PodResourcesClient(str(socket_dir / "kubelet.sock")).list()


def test_a_server_that_drops_the_connection_at_once_is_an_os_error(socket_dir: Path) -> None:
    """Reset or broken pipe, whichever the client meets first: the socket's own error, not a hang."""
    with RawServer(socket_dir / "kubelet.sock", close_at_once), pytest.raises(OSError):
        call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5)


def test_a_server_that_never_answers_ends_at_the_deadline(socket_dir: Path) -> None:
    with RawServer(socket_dir / "kubelet.sock", silent), pytest.raises(TimeoutError):
        call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=0.3)


def reset(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.reset_stream(stream, error_code=2)


def goaway(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.close_connection(error_code=0, last_stream_id=0)  # a stopping kubelet: our stream was not taken


def status_503(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, [(":status", "503"), ("content-type", "text/plain")], end_stream=True)


def compressed(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.send_data(stream, grpc_frame(b"\x0a\x00", compressed=True))
    conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)


def two_messages(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.send_data(stream, grpc_frame(b"\x0a\x00") + grpc_frame(b"\x0a\x00"))
    conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)


def no_status(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.send_data(stream, grpc_frame(b""), end_stream=True)


def prefix_too_long(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.send_data(stream, b"\x00\x00\x00\x01\x00" + b"\x0a\x00")  # announces 256 bytes, sends 2
    conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)


def fine(conn: h2.connection.H2Connection, stream: int) -> None:
    conn.send_headers(stream, ok_headers())
    conn.send_data(stream, grpc_frame(b"\x0a\x03\x0a\x01p"))
    conn.send_headers(stream, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True)


@pytest.mark.parametrize(("serve", "error"), [
    (http1, r"does not speak HTTP/2: its answer begins b'HTTP/1.1 400 Bad'"),
    (h2_answering(lambda conn, stream: None, then_close=True), "closed before the answer ended"),
    (h2_answering(reset), r"stream was reset \(error code 2"),
    (h2_answering(goaway), "ended the connection"),
    (h2_answering(status_503), "HTTP status 503"),
    (h2_answering(compressed), "compressed"),
    (h2_answering(two_messages), "holds 9 bytes after its prefix, which announces 2"),
    (h2_answering(no_status), "without a grpc-status"),
    (h2_answering(prefix_too_long), "holds 2 bytes after its prefix, which announces 256"),
], ids=["http1", "closed", "reset", "goaway", "503", "compressed", "two-messages", "no-status", "short-body"])
def test_a_broken_answer_is_a_call_error_naming_what_broke(socket_dir: Path, serve: Callable[[socket.socket], None],
                                                          error: str) -> None:
    with RawServer(socket_dir / "kubelet.sock", serve), pytest.raises(CallError, match=error):
        call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5)


def test_the_same_scripted_server_answering_well_is_taken(socket_dir: Path) -> None:
    """The broken answers above differ from this one in the one thing each test names."""
    with RawServer(socket_dir / "kubelet.sock", h2_answering(fine)):
        assert call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5) == b"\x0a\x03\x0a\x01p"
        answer = PodResourcesClient(str(socket_dir / "kubelet.sock")).list()
    assert [p.name for p in answer.pods] == ["p"]


@given(st.binary(max_size=40))
def test_property_a_message_is_framed_and_unframed_unchanged(message: bytes) -> None:
    assert single_message(message_frame(message)) == message


@given(st.binary(max_size=40))
def test_property_any_body_is_one_message_or_a_call_error(body: bytes) -> None:
    try:
        message = single_message(body)
    except CallError:
        well_formed = len(body) >= 5 and body[0] == 0 and int.from_bytes(body[1:5], "big") == len(body) - 5
        assert not well_formed
    else:
        assert message_frame(message) == body



def test_a_frame_announcing_more_than_the_limit_is_refused_as_it_arrives(socket_dir: Path) -> None:
    """A first SETTINGS frame whose header spells 16 MiB: h2 would buffer all of it before judging its
    length; the call stops once the bytes pass the answer's limit and the frames' allowance."""

    def endless(sock: socket.socket) -> None:
        sock.recv(65536)
        sock.sendall(b"\xff\xff\xff\x04\x00\x00\x00\x00\x00")
        chunk = b"\x00" * 65536
        while True:
            sock.sendall(chunk)

    with RawServer(socket_dir / "kubelet.sock", endless), pytest.raises(CallError, match="sent more than"):
        call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5, limit=1000)


def test_a_servers_long_message_is_cut_short_in_the_error(socket_dir: Path) -> None:
    """The error goes into a log line: a server's 5,000-character grpc-message is cut to 200."""

    def chatty(conn: h2.connection.H2Connection, stream: int) -> None:
        conn.send_headers(stream, [*ok_headers(), ("grpc-status", "13"), ("grpc-message", "x" * 5000)],
                          end_stream=True)

    with RawServer(socket_dir / "kubelet.sock", h2_answering(chatty)), pytest.raises(CallError) as err:
        call_unary(str(socket_dir / "kubelet.sock"), LIST_METHOD, b"", timeout=5)
    assert str(err.value) == "gRPC status 13: " + "x" * 200
