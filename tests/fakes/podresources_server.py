"""A kubelet pod-resources gRPC server (v1.PodResourcesLister/List) on a real unix socket.

What it imitates: the kubelet serves `/var/lib/kubelet/pod-resources/kubelet.sock` (kubernetes.io docs,
"Monitoring Device Plugin Resources"); `List` answers a ListPodResourcesResponse of PodResources
{name, namespace, containers: ContainerResources {name, devices: ContainerDevices {resource_name,
device_ids}, cpu_ids (packed int64)}} with the field numbers of
k8s.io/kubelet/pkg/apis/podresources/v1/api.proto. Newer kubelets add fields (memory,
dynamic_resources, topology) a reader must skip. `raw_tail` appends bytes as they are after the
encoded pods: what a kubelet of another version, a broken device plugin's ids or a corrupted answer
could put there.

The response is encoded here with its own tiny protobuf writer, independent of the exporter's decoder,
so a shared misunderstanding of the wire format cannot hide (a golden-bytes test pins both).

The transport is real gRPC: grpcio's C-core server, an HTTP/2 and HPACK implementation other than the
client's (`h2`), which Huffman-codes header values and indexes them in its dynamic table as it sees fit.
The kubelet's own server is grpc-go (k8s.io/kubernetes pkg/kubelet/apis/podresources): the same
protocol (grpc/grpc doc/PROTOCOL-HTTP2.md), with its own SETTINGS, WINDOW_UPDATE and PING frames for
bandwidth estimation, and a GOAWAY when the kubelet stops. Where a call fails at once (the kubelet
rate-limits this API and answers RESOURCE_EXHAUSTED past its burst; UNIMPLEMENTED where a feature gate
is off) grpc-go answers "trailers only", as C-core does: `fail_with` makes this server answer so. A
large node's answer spans many DATA frames and outgrows the 64 KiB initial flow-control window, so the
client must hand window back as it reads (`test_unixgrpc.py` lists a few thousand pods).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass
class FakeContainer:
    name: str
    devices: Sequence[tuple[str, Sequence[str]]] = ()  # (resource name, device ids)
    cpu_ids: Sequence[int] = ()


@dataclass
class FakePodResources:
    name: str
    namespace: str
    containers: Sequence[FakeContainer] = field(default_factory=list)


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 negatives are ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def tagged(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def encode_container(c: FakeContainer) -> bytes:
    out = tagged(1, c.name.encode())
    for resource, ids in c.devices:
        devices = tagged(1, resource.encode()) + b"".join(tagged(2, i.encode()) for i in ids)
        out += tagged(2, devices)
    if c.cpu_ids:
        out += tagged(3, b"".join(varint(cpu) for cpu in c.cpu_ids))  # packed, as proto3 writes it
    return out


def encode_response(pods: Sequence[FakePodResources]) -> bytes:
    out = b""
    for pod in pods:
        body = tagged(1, pod.name.encode()) + tagged(2, pod.namespace.encode())
        body += b"".join(tagged(3, encode_container(c)) for c in pod.containers)
        out += tagged(1, body)
    return out


class FakePodResourcesServer:
    def __init__(self, socket_path: Path, pods: Sequence[FakePodResources] = (), raw_tail: bytes = b"") -> None:
        self.socket_path = socket_path
        self.pods = list(pods)
        self.raw_tail = raw_tail
        self.calls = 0
        self.fail_with: tuple[grpc.StatusCode, str] | None = None  # answer every List with this status
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    def set_pods(self, pods: Sequence[FakePodResources]) -> None:
        with self._lock:
            self.pods = list(pods)

    def _list(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls += 1
            if self.fail_with is not None:
                context.abort(*self.fail_with)
            return encode_response(self.pods) + self.raw_tail

    def start(self) -> FakePodResourcesServer:
        self.socket_path.unlink(missing_ok=True)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        handler = grpc.method_handlers_generic_handler(
            "v1.PodResourcesLister",
            {"List": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=lambda b: b, response_serializer=lambda b: b)},
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"unix:{self.socket_path}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket (like a kubelet that is gone)."""
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None
        self.socket_path.unlink(missing_ok=True)
