"""The state file's format: what a checkpoint holds, its JSON encoding and checks, the machine identity
that tells our file from another machine's or another boot's, and the atomic write."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from footprint import __version__
from footprint.accounting.ledger import Labels
from footprint.config import Settings
from footprint.meters.base import cpu_model

FORMAT = 2  # 2: counters carry their read time and UUID, identity from hardware, pending gaps
READS = (1, 2)
MAGIC = "footprint-checkpoint"

Key = tuple[str, str]


class CheckpointError(Exception):
    """The file is not a checkpoint this exporter can use; `kind` names why (corrupt, unsupported, foreign)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind




@dataclass(frozen=True)
class SavedCounter:
    """One hardware counter's last accepted value and when it was read."""

    raw: float
    epoch: str
    uuid: str = ""  # the device's own id (GPU UUID); "" when it has none
    boottime: float | None = None  # CLOCK_BOOTTIME of the read: exact gap length within one boot
    wall: float | None = None  # wall clock of the read: the gap length across a reboot


@dataclass(frozen=True)
class PendingGap:
    """Energy of a restart gap, measured and judged, not charged yet (waiting for the grid)."""

    component: str
    device: str
    source: str
    in_node_total: bool
    joules: float

    @property
    def key(self) -> Key:
        return (self.component, self.device)


@dataclass(frozen=True)
class SavedState:
    """Ledger totals, hardware counter states and pending gaps at the end of one sample."""

    seq: int
    totals: dict[str, dict[Labels, float]]
    created: dict[str, dict[Labels, float]]
    counters: dict[Key, SavedCounter]
    gaps: tuple[PendingGap, ...] = ()
    last_gap: dict[str, Any] | None = None
    pending: dict[Key, tuple[float, float]] | None = None  # attribution window: joules, grams


@dataclass(frozen=True)
class Checkpoint:
    exporter_version: str
    written_at: float  # Unix seconds
    boot_id: str
    boottime: float | None  # CLOCK_BOOTTIME at writing
    identity: dict[str, str]
    series: list[tuple[str, Labels, float, float]]  # metric, labels, value, created
    counters: dict[Key, SavedCounter]
    gaps: tuple[PendingGap, ...] = ()
    last_gap: dict[str, Any] | None = None
    pending: dict[Key, tuple[float, float]] | None = None


def boottime() -> float | None:
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        return None


def _rapl_zones(sysfs: str) -> str:
    """The RAPL zones and their ranges: part of what this machine is (a container sees the host's)."""
    try:
        from footprint.meters.rapl import discover

        return ",".join(f"{z.device}:{z.wrap_joules or 0:g}" for z in discover(sysfs))
    except Exception:  # an unreadable tree says nothing about identity
        return ""


def machine_identity(settings: Settings) -> dict[str, str]:
    """What the machine is, from the hardware and the cluster: never the host name (a container's)."""
    return {
        "node_name": settings.kubernetes_node_name or os.environ.get("NODE_NAME", ""),
        "cpu_model": cpu_model(settings.path_procfs),
        "rapl_zones": _rapl_zones(settings.path_sysfs),
    }


def same_machine(saved: Mapping[str, str], saved_boot: str, ours: Mapping[str, str], our_boot: str) -> str | None:
    """Why the checkpoint is this machine's ("boot_id", "node_name", "hardware"), or None: foreign.

    The boot id is the kernel's, shared by every container of one boot, and random per boot: equal
    means same machine. Across a reboot, the node name (Kubernetes) decides when both have one; else
    the hardware, CPU model and RAPL zones, each compared where both sides know it. Files of format 1
    carry a machine id and host name instead: those are compared as before (machine id first).
    """
    if saved_boot and saved_boot == our_boot:
        return "boot_id"
    if saved.get("node_name") and ours.get("node_name"):
        return "node_name" if saved["node_name"] == ours["node_name"] else None
    compared = False
    for key in ("cpu_model", "rapl_zones"):
        if saved.get(key) and ours.get(key):
            if saved[key] != ours[key]:
                return None
            compared = True
    if compared:
        return "hardware"
    machine_id = saved.get("machine_id")  # format 1
    if machine_id and machine_id == _machine_id():
        return "machine_id"
    return None


def _machine_id() -> str:
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            found = Path(path).read_text(encoding="ascii").strip()
            if found:
                return found
    return ""


# --- file format -----------------------------------------------------------------------------------
# Line 1: "footprint-checkpoint <format> sha256=<hex> length=<bytes>", then the JSON body. The header
# catches truncation (length) and damage (checksum) before any value is trusted.


def encode(snapshot: SavedState, identity: Mapping[str, str], boot_id: str, written_at: float,
           boot_seconds: float | None) -> bytes:
    series = [
        [metric, list(labels), value, snapshot.created.get(metric, {}).get(labels, written_at)]
        for metric, by_labels in sorted(snapshot.totals.items())
        for labels, value in sorted(by_labels.items())
    ]
    counters = [
        {"component": c, "device": d, "raw": s.raw, "epoch": s.epoch, "uuid": s.uuid,
         "boottime": s.boottime, "wall": s.wall}
        for (c, d), s in sorted(snapshot.counters.items())
    ]
    gaps = [
        {"component": g.component, "device": g.device, "source": g.source, "node": g.in_node_total,
         "joules": g.joules}
        for g in snapshot.gaps
    ]
    pending = [
        {"component": c, "device": d, "joules": j, "grams": g}
        for (c, d), (j, g) in sorted((snapshot.pending or {}).items()) if j > 0 or g > 0
    ]
    body = json.dumps(
        {
            "exporter_version": __version__,
            "written_at": written_at,
            "boot_id": boot_id,
            "boottime": boot_seconds,
            "identity": dict(identity),
            "series": series,
            "counters": counters,
            "gaps": gaps,
            "last_gap": snapshot.last_gap,
            "pending": pending,
        },
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    header = f"{MAGIC} {FORMAT} sha256={hashlib.sha256(body).hexdigest()} length={len(body)}\n"
    return header.encode() + body


def decode(data: bytes) -> Checkpoint:
    """Parse and check a checkpoint (format 1 or 2). Raises CheckpointError; never half a checkpoint."""
    header, newline, body = data.partition(b"\n")
    parts = header.decode("ascii", errors="replace").split(" ")
    if not newline or len(parts) != 4 or parts[0] != MAGIC:
        raise CheckpointError("corrupt", "not a footprint checkpoint (bad header)")
    if not parts[1].isdigit():
        raise CheckpointError("corrupt", "bad format version")
    if int(parts[1]) not in READS:
        raise CheckpointError("unsupported", f"format {parts[1]}, this exporter reads formats 1 and 2")
    if parts[3] != f"length={len(body)}":
        raise CheckpointError("corrupt", f"truncated or padded: {len(body)} bytes, header says {parts[3]}")
    if parts[2] != f"sha256={hashlib.sha256(body).hexdigest()}":
        raise CheckpointError("corrupt", "checksum mismatch")
    try:
        raw = json.loads(body)
        return _checked(raw, int(parts[1]))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckpointError("corrupt", f"bad content: {exc}") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number")
    return float(value)


def _optional_number(value: Any, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not a string")
    return value


def _counters(raw: Any, version: int, written_at: float, boot_seconds: float | None) -> dict[Key, SavedCounter]:
    counters = {}
    for item in raw:
        if version == 1:  # [component, device, raw, epoch], all read when the file was written
            component, device, value, epoch = item
            saved = SavedCounter(_number(value, "raw"), _text(epoch, "epoch"), "", boot_seconds, written_at)
        else:
            component, device = item["component"], item["device"]
            saved = SavedCounter(_number(item["raw"], "raw"), _text(item["epoch"], "epoch"),
                                 _text(item["uuid"], "uuid"), _optional_number(item["boottime"], "boottime"),
                                 _optional_number(item["wall"], "wall"))
        counters[(_text(component, "component"), _text(device, "device"))] = saved
    return counters


def _gaps(raw: Any) -> tuple[PendingGap, ...]:
    gaps = []
    for item in raw:
        joules = _number(item["joules"], "gap joules")
        if joules < 0 or not isinstance(item["node"], bool):
            raise ValueError("gap: negative joules or bad node flag")
        gaps.append(PendingGap(_text(item["component"], "component"), _text(item["device"], "device"),
                               _text(item["source"], "source"), item["node"], joules))
    return tuple(gaps)


def _pending(raw: Any) -> dict[Key, tuple[float, float]]:
    pending = {}
    for item in raw:
        joules, grams = _number(item["joules"], "pending joules"), _number(item["grams"], "pending grams")
        if joules < 0 or grams < 0:
            raise ValueError("pending: negative amount")
        pending[(_text(item["component"], "component"), _text(item["device"], "device"))] = (joules, grams)
    return pending


def _checked(raw: Any, version: int) -> Checkpoint:
    if not isinstance(raw, dict):
        raise ValueError("body is not an object")
    identity = raw["identity"]
    if not isinstance(identity, dict):
        raise ValueError("identity is not an object")
    series = []
    for item in raw["series"]:
        metric, labels, value, created = item
        if not isinstance(labels, list):
            raise ValueError("labels: not a list")
        total = _number(value, "value")
        if total < 0:
            raise ValueError(f"{metric}: negative total")
        series.append((_text(metric, "metric"), tuple(_text(v, "label") for v in labels), total,
                       _number(created, "created")))
    written_at = _number(raw["written_at"], "written_at")
    boot_seconds = _optional_number(raw["boottime"], "boottime")
    last_gap = raw.get("last_gap") if version >= 2 else None
    if last_gap is not None and not isinstance(last_gap, dict):
        raise ValueError("last_gap is not an object")
    return Checkpoint(
        exporter_version=_text(raw["exporter_version"], "exporter_version"),
        written_at=written_at,
        boot_id=_text(raw["boot_id"], "boot_id"),
        boottime=boot_seconds,
        identity={_text(k, "identity"): _text(v, "identity") for k, v in identity.items()},
        series=series,
        counters=_counters(raw["counters"], version, written_at, boot_seconds),
        gaps=_gaps(raw["gaps"]) if version >= 2 else (),
        last_gap=last_gap,
        pending=_pending(raw.get("pending") or []) if version >= 2 else None,
    )


def write_atomically(path: Path, data: bytes) -> None:
    """A new temp file in the same directory, fsync, rename over, fsync the directory.

    The temp file gets an unpredictable name and is created with O_EXCL|O_NOFOLLOW (mkstemp), so a
    planted file or symlink is never written through. A crash at any point leaves either the old file
    or the new one, never a mix; a failed write (ENOSPC, EROFS, EFBIG) removes the temp file and
    leaves the old checkpoint as it was.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
