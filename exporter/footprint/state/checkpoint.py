"""Restart-safe accounting: the ledger and the hardware counter readings, persisted atomically.

What is saved: every ledger counter (value and `_created` time) and the last raw reading of every
*hardware* energy counter (NVML since driver load, RAPL since boot) with when it was read and, for a
GPU, its UUID, taken together in the sampler thread so they always agree. On restart the totals
resume where they were, and the energy drawn while the exporter was down is recovered from the
hardware counters that kept running.

Restart gaps, the rules (docs/reliability.md has the faults they answer):
- Each saved counter waits for its device's first successful read in this process, however many
  samples that takes (a GPU whose driver container is still loading), at most `state.gap-wait`;
  then it is dropped with a warning and counted (reason `not_read`).
- The gap is judged by `ledger.judge_delta`, the rule live samples use, over the real time between
  the saved read and the first new one, against the device's own power ceiling: exact when
  plausible, nothing when a wrap could hide in it or the delta is more than the device can draw. A
  counter that restarted (driver reload) gives the energy since its restart, if plausible; after a
  reboot a wrapping counter (RAPL) gives nothing (its value at boot is not documented to be 0). A GPU
  with another UUID at the same index is another device: nothing. Every refusal is counted in
  footprint_checkpoint_gap_rejected_total{reason}.
- The gap is charged once every saved counter is settled (read or dropped), at the intensity the
  configured chain gives once each provider ahead of the one in use has answered its first fetch
  (bounded by the same wait); the log line says which value, provider and basis were used, and
  doctor shows it (kept in the file as `last_gap`). The intensity during the gap itself is unknown.
  The gap is unattributed (nobody knows who used it) and counted again in
  footprint_checkpoint_restored_gap_joules_total so users can see it.
- Measured gaps not charged yet are in the checkpoint (`gaps`), so a kill -9 while waiting loses none.
- Energy pending attribution (`--attribution.interval`) is in the checkpoint too (`pending`): after a
  kill -9 it cannot be split any more (who ran then is gone with the process), so the restart adds it
  to the unattributed counters, and workload + unattributed == device holds again.
- Estimated or integrated energy (hardware_counter=False) is process-local: nothing is invented.

Identity: a checkpoint belongs to this machine when the kernel's boot id is the same (a new container
on the same host shares it), else when the Kubernetes node name matches, else when the hardware does
(CPU model and RAPL zones): never the host name, which is the container's. One exporter per file: a
lock file beside it (flock) makes a second one exit 2.

When: every `state.checkpoint-interval`, on SIGTERM/SIGINT, and before a scrape shows values newer
than the last checkpoint (the first scrape after a sample waits for that write, at most
WRITE_WAIT_SECONDS; later scrapes of the same sample are served from cache). The last one is what
keeps counters monotonic *as Prometheus saw them*: after a crash, values resume from a checkpoint at
least as new as anything scraped, so no counter goes backwards.

Faults: a corrupt, truncated, foreign or unsupported file gives one warning, is renamed aside and the
exporter starts fresh. A failed write (disk full, read-only) warns once per change of state, leaves
the previous checkpoint intact, and shows in footprint_checkpoint_write_failures_total.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from footprint import __version__
from footprint.accounting.accountant import (
    PENDING_EMISSIONS,
    PENDING_ENERGY,
    UNATTRIBUTED_EMISSIONS,
    UNATTRIBUTED_ENERGY,
    Accountant,
)
from footprint.accounting.ledger import Labels, Ledger, ceiling_watts, judge_delta
from footprint.config import ConfigError, Settings
from footprint.exposition.catalog import GAP_JOULES, GAP_REJECTED, SPECS
from footprint.grid.base import IntensityReading
from footprint.meters.base import Reading, boot_id, cpu_model
from footprint.worker import Worker

log = logging.getLogger("footprint.checkpoint")

FORMAT = 2  # 2: counters carry their read time and UUID, identity from hardware, pending gaps
READS = (1, 2)
MAGIC = "footprint-checkpoint"
WRITE_WAIT_SECONDS = 1.0  # the longest a scrape waits for the checkpoint of the values it is about to show

Key = tuple[str, str]


class CheckpointError(Exception):
    """The file is not a checkpoint this exporter can use; `kind` names why (corrupt, unsupported, foreign)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class GapGrid(Protocol):
    """What the gap needs from the grid feed."""

    def accounting_intensity(self) -> IntensityReading: ...

    def settled(self) -> bool: ...


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


# --- gap recovery ----------------------------------------------------------------------------------


def judge_gap(saved: SavedCounter, r: Reading, seconds: float | None, rebooted: bool) -> tuple[float | None, str]:
    """Energy a hardware counter saw while the exporter was down, or None, with the verdict's kind.

    `seconds` is the real time between the saved read and `r` (None: unknown); `rebooted` says the
    machine booted since (every counter restarted then, whatever its epoch says).
    """
    if not r.hardware_counter:
        return None, "not_a_counter"
    uuid = r.info.get("uuid", "")
    if saved.uuid and uuid and saved.uuid != uuid:
        return None, "other_device"
    restarted = rebooted or saved.epoch != r.counter_epoch
    if restarted and r.wrap_joules:
        return None, "rebooted"  # a wrapping counter's value at boot is not documented to be 0
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None, "unknown_length"
    v = judge_delta(saved.raw, r.energy_joules, seconds, ceiling_watts(r), r.wrap_joules, restarted)
    return v.joules, v.kind


HOW = {
    "ok": "exact",
    "wrap": "exact (one wrap)",
    "reset": "the counter restarted: energy since the restart only",
    "not_a_counter": "estimated energy is process-local: nothing is counted for the gap",
    "other_device": "another device (UUID) at this index: its counter is not the saved one",
    "rebooted": "the counter restarted (reboot) and wraps: the gap cannot be recovered",
    "unknown_length": "the gap's length is unknown (clock set back?)",
    "ambiguous_wrap": "the gap is long enough for the counter to have wrapped unseen",
    "not_read": "the device was not read within state.gap-wait",
}


@dataclass
class _Restart:
    """What a restored checkpoint still owes: counters waiting for a read, gaps waiting for the grid."""

    boot_id: str
    rebooted: bool
    seconds: float | None  # checkpoint to the first sample: embodied emissions accrue for it
    started: float  # monotonic
    deadline: float  # monotonic
    waiting: dict[Key, SavedCounter]
    gaps: list[PendingGap]


@dataclass(frozen=True)
class CheckpointStatus:
    write_failures: int
    last_success: float | None  # wall time of the last good write; None: none yet


class Checkpointer:
    """Owns the state file: restore at start, snapshots from the sampler, writes from its own thread.

    `grid` gives the restart gap its intensity; without one (tests of the file alone) totals are
    restored and no gap is charged.
    """

    def __init__(self, settings: Settings, ledger: Ledger, accountant: Accountant, attribution: bool,
                 grid: GapGrid | None = None, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(settings.state_file) if settings.state_file else None  # "" or None: no checkpoint
        self.interval = settings.state_checkpoint_interval
        self.gap_wait = settings.state_gap_wait
        self.ledger = ledger
        self.accountant = accountant
        self.attribution = attribution
        self.grid = grid
        self.wall = wall
        self.identity = machine_identity(settings)
        self.boot_id = boot_id(settings.path_procfs)
        self.restored: Checkpoint | None = None
        self.last_gap: dict[str, Any] | None = None
        self.last_success: float | None = None
        self.failures = 0
        self._restart: _Restart | None = None
        self._gpus: dict[Key, str] = {}  # UUIDs of the GPUs read so far
        self._failing = False
        self._seq = 0
        self._latest: SavedState | None = None
        self._written_seq = -1
        self._attempted_seq = -1  # the last snapshot a write was tried for, successful or not
        self._attempted = threading.Condition()
        self._due = 0.0  # monotonic time of the next interval write
        self._write_lock = threading.Lock()
        self._worker = Worker("checkpoint", self._step)
        self._lock_fd: int | None = None
        # The sampler's pending attribution window (gauge name -> device -> amount), read under the ledger lock.
        self.pending: Callable[[], Mapping[str, Mapping[Labels, float]]] = dict
        if self.path is not None:
            self._lock()

    def _lock(self) -> None:
        """One exporter per state file: an exclusive flock on `<file>.lock`, held for the process's life."""
        assert self.path is not None
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # no directory yet, read-only: writes will say so too; run unlocked
            log.warning("cannot create the checkpoint lock file; running without a lock",
                        extra={"file": str(lock_path), "error": exc.strerror or str(exc)})
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"state.file: {self.path} is in use by another exporter (pid {holder}, lock "
                              f"{lock_path}); give each exporter its own state file") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the process is done with the file)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- start ---

    def restore(self) -> None:
        """Load the file into the (empty) ledger. Call before the first sample, so `_created` survives."""
        if self.path is None:
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            log.info("no checkpoint yet; starting from zero", extra={"file": str(self.path)})
            return
        except OSError as exc:
            log.warning("cannot read the checkpoint; starting from zero",
                        extra={"file": str(self.path), "error": exc.strerror or str(exc)})
            return
        try:
            checkpoint = decode(data)
            matched = same_machine(checkpoint.identity, checkpoint.boot_id, self.identity, self.boot_id)
            if matched is None:
                raise CheckpointError("foreign", f"written by another machine ({checkpoint.identity})")
        except CheckpointError as exc:
            self._set_aside(exc)
            return
        skipped = 0
        for metric, labels, value, created in checkpoint.series:
            spec = SPECS.get(metric)
            if spec is None or spec.type != "counter" or len(spec.labels) != len(labels):
                skipped += 1  # renamed or relabelled since that version: not ours to expose any more
                continue
            self.ledger.add(metric, labels, value, created)
        unattributed = 0.0
        if self.attribution:  # who drew the pending window is gone with the old process: nobody, now
            for key, (joules, grams) in (checkpoint.pending or {}).items():
                self.ledger.add(UNATTRIBUTED_ENERGY, key, joules, checkpoint.written_at)
                self.ledger.add(UNATTRIBUTED_EMISSIONS, key, grams, checkpoint.written_at)
                unattributed += joules
        self.restored = checkpoint
        self.last_gap = checkpoint.last_gap
        rebooted = bool(checkpoint.boot_id and self.boot_id and checkpoint.boot_id != self.boot_id)
        now = time.monotonic()
        self._restart = _Restart(checkpoint.boot_id, rebooted, self._since(checkpoint.boottime,
                                 checkpoint.written_at, checkpoint.boot_id), now, now + self.gap_wait,
                                 dict(checkpoint.counters), list(checkpoint.gaps))
        log.info(
            "restored the checkpoint",
            extra={"file": str(self.path), "series": len(checkpoint.series) - skipped, "skipped": skipped,
                   "age_seconds": round(self.wall() - checkpoint.written_at, 3), "matched_by": matched,
                   "written_by": checkpoint.exporter_version, "counters_waiting": len(checkpoint.counters),
                   "pending_attribution_now_unattributed_joules": round(unattributed, 6)},
        )

    def _since(self, boot_seconds: float | None, wall: float | None, boot_id: str) -> float | None:
        """Seconds since a read: CLOCK_BOOTTIME within one boot (exact), else the wall clock (None if
        it went backwards: someone set it)."""
        now_boot = boottime()
        if boot_id and boot_id == self.boot_id and boot_seconds is not None and now_boot is not None:
            return max(now_boot - boot_seconds, 0.0)
        if wall is None:
            return None
        seconds = self.wall() - wall
        return seconds if seconds >= 0 else None

    def _set_aside(self, exc: CheckpointError) -> None:
        assert self.path is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.wall()))
        aside = self.path.with_name(f"{self.path.name}.{exc.kind}-{stamp}")
        try:
            os.replace(self.path, aside)
            kept = str(aside)
        except OSError as err:
            kept = f"(could not rename it: {err.strerror or err})"
        log.warning("ignoring the checkpoint; starting from zero",
                    extra={"file": str(self.path), "reason": exc.kind, "detail": str(exc), "kept_as": kept})

    # --- the gap, sample by sample ---

    def _settle(self, readings: Iterable[Reading]) -> None:
        """Under the ledger lock, after a sample: measure the gap of each device read for the first time,
        drop what waited too long, and charge everything once nothing waits and the grid has answered."""
        restart = self._restart
        assert restart is not None
        now = time.monotonic()
        states = self.ledger.counters.states
        for r in readings:
            saved = restart.waiting.get(r.key)
            state = states.get(r.key)
            if saved is None or state is None or state.at is None:
                continue  # not waiting, or not accepted as a baseline yet
            del restart.waiting[r.key]
            seconds = self._since(saved.boottime, saved.wall, restart.boot_id)
            if seconds is not None:  # up to the baseline's read, not up to now
                seconds = max(seconds - max(now - state.at, 0.0), 0.0)
            baseline = Reading(r.component, r.device, r.source, state.raw, wrap_joules=r.wrap_joules,
                               max_watts=r.max_watts, hardware_counter=r.hardware_counter,
                               counter_epoch=state.epoch, in_node_total=r.in_node_total, info=r.info)
            joules, kind = judge_gap(saved, baseline, seconds, restart.rebooted)
            fields = {"component": r.component, "device": r.device, "source": r.source, "how": HOW.get(kind, kind),
                      "gap_seconds": "unknown" if seconds is None else round(seconds, 3)}
            if joules is None:
                self._reject(r.key, kind, fields)
                continue
            restart.gaps.append(PendingGap(r.component, r.device, r.source, r.in_node_total, joules))
            log.info("recovered energy drawn while the exporter was down",
                     extra={**fields, "joules": round(joules, 6)})
        expired = now >= restart.deadline
        if expired:
            for key in list(restart.waiting):
                del restart.waiting[key]
                self._reject(key, "not_read", {"component": key[0], "device": key[1], "how": HOW["not_read"],
                                               "waited_seconds": round(now - restart.started, 3)})
        if restart.waiting:
            return
        answered = self.grid is None or self.grid.settled()
        if answered or expired:
            self._charge(restart, readings, answered, now)

    def _reject(self, key: Key, reason: str, fields: Mapping[str, Any]) -> None:
        self.ledger.add(GAP_REJECTED, (*key, reason), 1.0, self.wall())
        level = logging.INFO if reason == "not_a_counter" else logging.WARNING
        log.log(level, "energy while the exporter was down not recovered", extra={**fields, "reason": reason})

    def _charge(self, restart: _Restart, readings: Iterable[Reading], answered: bool, now: float) -> None:
        self._restart = None
        if self.grid is None:
            return
        intensity = self.grid.accounting_intensity()
        wall = self.wall()
        gaps = {g.key: g for g in restart.gaps}
        energy: list[tuple[Reading, float]] = []
        for r in readings:  # every device now, so embodied emissions accrue for the downtime
            gap = gaps.pop(r.key, None)
            energy.append((r, gap.joules if gap else 0.0))
        for g in gaps.values():  # measured before a restart, the device not read this sample
            energy.append((Reading(g.component, g.device, g.source, 0.0, in_node_total=g.in_node_total), g.joules))
        recovered = sum(g.joules for g in restart.gaps)
        with self.ledger.transaction():  # the whole gap or nothing, like a sample
            for g in restart.gaps:
                self.ledger.add(GAP_JOULES, g.key, g.joules, wall)
            self.accountant.account(self.ledger, energy, restart.seconds or 0.0, intensity, wall,
                                    [] if self.attribution else None)
        waited = round(now - restart.started, 3)
        basis = intensity.basis or "unknown"
        self.last_gap = {"at": wall, "joules": recovered, "intensity_g_per_kwh": intensity.value,
                         "provider": intensity.provider, "signal": intensity.signal, "basis": basis,
                         "grid_answered": answered, "waited_seconds": waited,
                         "gap_seconds": restart.seconds}
        message = ("charged the gap's emissions at the intensity the grid chain gives after its first answer"
                   if answered else
                   "charged the gap's emissions at the intensity in use: the grid chain did not answer within "
                   "state.gap-wait")
        log.log(logging.INFO if answered else logging.WARNING, message,
                extra={"joules": round(recovered, 6), "intensity_g_per_kwh": intensity.value,
                       "provider": intensity.provider, "signal": intensity.signal, "basis": basis,
                       "waited_seconds": waited, "rebooted": restart.rebooted,
                       "gap_seconds": "unknown" if restart.seconds is None else round(restart.seconds, 3)})

    # --- running ---

    def sampled(self, readings: Iterable[Reading] = ()) -> None:
        """In the sampler thread after each sample (before it becomes visible): settle what a restart
        still owes, then keep a consistent copy of everything for the writer."""
        if self.path is None:
            return
        readings = list(readings)
        for r in readings:
            uuid = r.info.get("uuid", "")
            if uuid:
                self._gpus[r.key] = uuid
        with self.ledger.lock:
            if self._restart is not None:
                self._settle(readings)
            self._seq += 1
            self._latest = SavedState(
                self._seq,
                {m: dict(s) for m, s in self.ledger.totals.items()},
                {m: dict(s) for m, s in self.ledger.created.items()},
                self._counters(),
                tuple(self._restart.gaps) if self._restart else (),
                self.last_gap,
                self._pending(),
            )

    def _pending(self) -> dict[Key, tuple[float, float]]:
        gauges = self.pending()
        joules, grams = gauges.get(PENDING_ENERGY, {}), gauges.get(PENDING_EMISSIONS, {})
        return {(k[0], k[1]): (j, grams.get(k, 0.0)) for k, j in joules.items() if len(k) == 2}

    def _counters(self) -> dict[Key, SavedCounter]:
        """Tracker baselines with when they were read, plus the saved counters still waiting."""
        now, boot, wall = time.monotonic(), boottime(), self.wall()
        out = dict(self._restart.waiting) if self._restart else {}
        for key, s in self.ledger.counters.states.items():
            if not s.hardware or key in out:
                continue
            if s.at is None:
                continue  # not read by this process (never a baseline here)
            ago = max(now - s.at, 0.0)
            out[key] = SavedCounter(s.raw, s.epoch, self._gpus.get(key, ""),
                                    None if boot is None else boot - ago, wall - ago)
        return out

    def start(self) -> None:
        if self.path is None:
            return
        self._due = time.monotonic() + self.interval
        self._worker.start(delay=self.interval)

    def _step(self) -> float:
        """Write every interval, and sooner when a scrape asks (collect)."""
        self.write()
        return self._due - time.monotonic()

    def write(self) -> bool:
        """Write the latest snapshot if it is not on disk yet. False when the write failed."""
        if self.path is None:
            return True
        with self._write_lock:
            self._due = time.monotonic() + self.interval
            snapshot = self._latest
            if snapshot is None or snapshot.seq == self._written_seq:
                return True
            now = self.wall()
            identity = {**self.identity, "gpus": ",".join(sorted(set(self._gpus.values())))}
            try:
                write_atomically(self.path, encode(snapshot, identity, self.boot_id, now, boottime()))
            except OSError as exc:
                self.failures += 1
                if not self._failing:
                    log.warning("cannot write the checkpoint; still running, the previous one is kept",
                                extra={"file": str(self.path), "error": exc.strerror or str(exc)})
                self._failing = True
                return False
            else:
                if self._failing:
                    log.info("checkpoint writes work again", extra={"file": str(self.path)})
                self._failing = False
                self._written_seq = snapshot.seq
                self.last_success = now
                return True
            finally:
                with self._attempted:
                    self._attempted_seq = snapshot.seq
                    self._attempted.notify_all()

    def stop(self) -> None:
        """Final checkpoint (the sampler has stopped), then end the writer thread and release the lock."""
        if self.path is None or self._worker.stopping:
            return
        self._worker.request_stop()
        with self._attempted:
            self._attempted.notify_all()
        self._worker.join(timeout=10)
        if self.write():
            log.info("final checkpoint written", extra={"file": str(self.path)})
        self.close()

    def status(self) -> CheckpointStatus | None:
        """Checkpoint health (None without a state file). Asked once per sample, by the first scrape that
        renders it: before those values go out, the writer puts them on disk (see the module docstring).
        The wait is bounded, and a failing disk answers at once, so a scrape is never held for long."""
        if self.path is None:
            return None
        snapshot = self._latest
        if snapshot is not None and snapshot.seq != self._written_seq and self._worker.started:
            self._worker.wake()
            with self._attempted:
                self._attempted.wait_for(lambda: self._attempted_seq >= snapshot.seq or self._worker.stopping,
                                         timeout=WRITE_WAIT_SECONDS)
        return CheckpointStatus(self.failures, self.last_success)


def describe_last_gap(settings: Settings) -> list[str]:
    """Doctor lines: the restart-gap rule and, from the state file (read only), the last gap charged."""
    lines = [f"restart gaps: saved counters wait up to {settings.state_gap_wait:g}s (state.gap-wait) for their "
             "device's first read; the gap is charged at the intensity the grid chain gives after its first answer"]
    if not settings.state_file:
        return ["state: no state file (state.file): totals start from zero at every restart"]
    try:
        checkpoint = decode(Path(settings.state_file).read_bytes())
    except FileNotFoundError:
        return [*lines, f"state: {settings.state_file}: no checkpoint yet"]
    except (OSError, CheckpointError) as exc:
        return [*lines, f"state: {settings.state_file}: not usable: {exc}"]
    written = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(checkpoint.written_at))
    lines.append(f"state: {settings.state_file}: written {written}"
                 f" by {checkpoint.exporter_version}, {len(checkpoint.counters)} hardware counter(s),"
                 f" {len(checkpoint.gaps)} gap(s) waiting for the grid")
    g = checkpoint.last_gap
    if not g:
        lines.append("restart gaps: none charged yet")
        return lines
    try:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(g["at"])))
        lines.append(
            f"restart gaps: last one {float(g['joules']):.6g} J charged {when} at {float(g['intensity_g_per_kwh']):g}"
            f" g/kWh ({g['signal']}, provider {g['provider']}, basis {g['basis']})"
            + ("" if g.get("grid_answered") else "; the grid chain had not answered within state.gap-wait")
        )
    except (KeyError, TypeError, ValueError):
        lines.append("restart gaps: the last gap's record is unreadable")
    return lines
