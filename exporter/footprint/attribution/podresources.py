"""The kubelet pod-resources API (v1.PodResourcesLister/List) over its unix socket: which pod holds which GPU.

The call goes over HTTP/2 on the socket (`unixgrpc`, no grpcio); the few protobuf messages are decoded
by hand (field numbers from k8s.io/kubelet/pkg/apis/podresources/v1/api.proto) so the exporter needs
neither protobuf nor generated code. Unknown fields are skipped, so newer kubelets (memory,
dynamic_resources) decode fine. Each pod of the answer is decoded on its own: a garbled one is skipped
and counted, the others are used.

`device_ids` of `nvidia.com/gpu` are GPU (or MIG) UUIDs. The NVIDIA device plugin's time-slicing
hands out replicas named `<uuid>::<n>`; `gpu_uuid()` strips that suffix so replicas of one GPU group
together (a UUID held by several containers is a shared GPU). `device_ids` of AMD's `amd.com/gpu` are
the GPU's PCI address (`0000:0c:00.0`, the sysfs name the ROCm k8s-device-plugin lists), or
`amdgpu_xcp_<n>` for a compute partition; `allocation_keys()` says which ids name a whole GPU.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from footprint.attribution.unixgrpc import call_unary

log = logging.getLogger("footprint.attribution.podresources")

LIST_METHOD = "/v1.PodResourcesLister/List"

# Wire types (protobuf encoding).
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class DecodeError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass(frozen=True)
class ContainerDevices:
    resource_name: str
    device_ids: tuple[str, ...]


@dataclass(frozen=True)
class ContainerResources:
    name: str
    devices: tuple[ContainerDevices, ...] = ()


@dataclass(frozen=True)
class PodResources:
    name: str
    namespace: str
    containers: tuple[ContainerResources, ...] = ()


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise DecodeError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint too long")


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for every field; LEN values are the raw bytes."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == VARINT:
            value, pos = _varint(data, pos)
        elif wire == LEN:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise DecodeError("truncated length-delimited field")
            value, pos = data[pos : pos + size], pos + size
        elif wire == I64:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == I32:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        if pos > len(data):
            raise DecodeError("truncated fixed-width field")
        out.append((number, wire, value))
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise DecodeError("expected a string")
    return value.decode("utf-8", errors="replace")


def _devices(data: bytes) -> ContainerDevices:
    name, ids = "", []
    for number, _, value in fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            ids.append(_text(value))
    return ContainerDevices(name, tuple(ids))


def _container(data: bytes) -> ContainerResources:
    """Name and devices; cpu_ids (field 3) and memory are skipped: attribution goes by cgroup CPU time."""
    name, devices = "", []
    for number, _, value in fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2 and isinstance(value, bytes):
            devices.append(_devices(value))
    return ContainerResources(name, tuple(devices))


def _pod(data: bytes) -> PodResources:
    name, namespace, containers = "", "", []
    for number, _, value in fields(data):
        if number == 1:
            name = _text(value)
        elif number == 2:
            namespace = _text(value)
        elif number == 3 and isinstance(value, bytes):
            containers.append(_container(value))
    return PodResources(name, namespace, tuple(containers))


@dataclass(frozen=True)
class ListAnswer:
    pods: list[PodResources]
    skipped: Counter[str]  # pods that could not be decoded, by reason ("malformed")


def decode_list_response(data: bytes) -> ListAnswer:
    """ListPodResourcesResponse { repeated PodResources pod_resources = 1; }

    Each pod is decoded on its own: one garbled pod is skipped and counted, the rest are used. Only a
    response whose own framing is broken raises DecodeError (the call fails as a whole).
    """
    pods: list[PodResources] = []
    skipped: Counter[str] = Counter()
    for number, _, value in fields(data):
        if number != 1:
            continue
        try:
            if not isinstance(value, bytes):
                raise DecodeError("pod_resources is not a message")
            pods.append(_pod(value))
        except DecodeError as exc:
            skipped["malformed"] += 1
            log.debug("pod-resources item skipped: %s", exc)
    return ListAnswer(pods, skipped)


def gpu_uuid(device_id: str) -> str:
    """A device id as the GPU's UUID: time-slicing replicas `<uuid>::<n>` become `<uuid>`."""
    return device_id.split("::", 1)[0]


def allocation_keys(info: Mapping[str, str]) -> tuple[str, ...]:
    """The device ids a device plugin hands out for this whole GPU (from its footprint_device_info facts):
    its UUID, and an AMD GPU's PCI address unless it is partitioned (then `0000:0c:00.0` names the
    primary partition only, not the package whose energy the reading carries)."""
    keys = tuple(k for k in (info.get("uuid", ""),) if k)
    if info.get("vendor") == "amd" and info.get("partitions", "1") == "1" and info.get("pci_bus_id"):
        keys += (info["pci_bus_id"].lower(),)
    return keys


class PodResourcesClient:
    """One List call at a time, each on a connection of its own, closed after it.

    A connection kept open between Lists (every 30 s) would only save a connect on a local socket; a
    fresh one per List also recovers from a kubelet restart at once. (With grpcio, an idle channel kept
    open woke its event engine 11-18 times a second, about 1 ms of CPU a second, measured in bench/.)
    """

    def __init__(self, socket_path: str, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def list(self) -> ListAnswer:
        """Raise OSError when the socket is missing or refuses, TimeoutError past the timeout, CallError
        on a failed call (a gRPC status, a broken HTTP/2 answer) and DecodeError on a garbled message."""
        if not os.path.exists(self.socket_path):
            raise FileNotFoundError(f"pod-resources socket not found: {self.socket_path}")
        # ListPodResourcesRequest has no fields: its encoding is empty.
        return decode_list_response(call_unary(os.path.abspath(self.socket_path), LIST_METHOD, b"", self.timeout))

    def close(self) -> None:
        """Nothing to release: no connection outlives its List."""
