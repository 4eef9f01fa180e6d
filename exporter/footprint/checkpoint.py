"""Restart-safe accounting: the ledger and the hardware counter readings, persisted atomically.

What is saved: every ledger counter (value and `_created` time) and the last raw reading of every
*hardware* energy counter (NVML since driver load, RAPL since boot), taken together in the sampler
thread so the two always agree. On restart the totals resume where they were, and the energy drawn
while the exporter was down is recovered from the hardware counters that kept running:

- same counter epoch: the delta since the saved reading, exactly. A counter that wraps (RAPL) is
  trusted only while the gap is too short for a wrap to hide in it (`ASSUMED_MAX_WATTS`).
- the counter restarted (driver reload, reboot): the counter's value is the energy since it restarted,
  for counters that start at 0 and never wrap (NVML); energy before the restart is lost. Wrapping
  counters (RAPL) recover nothing: their value at boot is not documented to be 0.
- estimated or integrated energy (hardware_counter=False) is process-local: nothing is invented.

The gap is charged at the intensity in use at restart (the grid's intensity during the gap is not
known), is unattributed (nobody knows who used it), and is counted again in
footprint_checkpoint_restored_gap_joules_total so users can see it.

When: every `state.checkpoint-interval`, on SIGTERM/SIGINT, and before a scrape shows values newer
than the last checkpoint (the first scrape after a sample waits for that write, at most
WRITE_WAIT_SECONDS; later scrapes of the same sample are served from cache). The last one is what
keeps counters monotonic *as Prometheus saw them*: after a crash, values resume from a checkpoint at
least as new as anything scraped, so no counter goes backwards (which Prometheus would read as a
reset, and rate() would count the whole total again). So the disk sees at most one write per sample,
and only as often as someone scrapes or the interval passes.

Faults: a corrupt, truncated, foreign or unsupported file gives one warning, is renamed aside and the
exporter starts fresh. A failed write (disk full, read-only) warns once per change of state, leaves
the previous checkpoint intact, and shows in footprint_checkpoint_write_failures_total.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from footprint import __version__
from footprint.accountant import Accountant
from footprint.config import Settings
from footprint.grid.base import IntensityReading
from footprint.ledger import CounterState, Labels, Ledger
from footprint.meters.base import Reading
from footprint.metrics import SPECS

log = logging.getLogger("footprint.checkpoint")

FORMAT = 1
MAGIC = "footprint-checkpoint"
GAP_JOULES = "footprint_checkpoint_restored_gap_joules_total"
LAST_SUCCESS = "footprint_checkpoint_last_success_timestamp_seconds"
WRITE_FAILURES = "footprint_checkpoint_write_failures_total"
# Above what any one RAPL domain (CPU package, DRAM) draws: a gap longer than wrap range / this could
# hide a whole wrap, so a wrapping counter's delta is not trusted for it.
ASSUMED_MAX_WATTS = 1000.0
WRITE_WAIT_SECONDS = 1.0  # the longest a scrape waits for the checkpoint of the values it is about to show


class CheckpointError(Exception):
    """The file is not a checkpoint this exporter can use; `kind` names why (corrupt, unsupported, foreign)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Snapshot:
    """Ledger totals and hardware counter states at the end of one sample."""

    seq: int
    totals: dict[str, dict[Labels, float]]
    created: dict[str, dict[Labels, float]]
    counters: dict[tuple[str, str], CounterState]


@dataclass(frozen=True)
class Checkpoint:
    exporter_version: str
    written_at: float  # Unix seconds
    boot_id: str
    boottime: float | None  # CLOCK_BOOTTIME at writing: exact gap length when the boot is the same
    identity: dict[str, str]
    series: list[tuple[str, Labels, float, float]]  # metric, labels, value, created
    counters: dict[tuple[str, str], CounterState]


def machine_identity(settings: Settings) -> dict[str, str]:
    """Who wrote a checkpoint. Strongest first: node name, machine id, host name (see `is_foreign`)."""
    machine_id = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine_id = Path(path).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if machine_id:
            break
    return {
        "node_name": settings.kubernetes_node_name or os.environ.get("NODE_NAME", ""),
        "machine_id": machine_id,
        "hostname": socket.gethostname(),
    }


def is_foreign(saved: Mapping[str, str], ours: Mapping[str, str]) -> bool:
    """Compare the strongest identity both sides have; with none in common the file is foreign.

    In a Kubernetes pod the host name is the pod's and changes with every pod, while the node name
    stays: that is why the node name comes first.
    """
    for key in ("node_name", "machine_id", "hostname"):
        if saved.get(key) and ours.get(key):
            return saved[key] != ours[key]
    return True


def read_boot_id(procfs: str) -> str:
    try:
        return Path(procfs, "sys", "kernel", "random", "boot_id").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def boottime() -> float | None:
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        return None


# --- file format -----------------------------------------------------------------------------------
# Line 1: "footprint-checkpoint <format> sha256=<hex> length=<bytes>", then the JSON body. The header
# catches truncation (length) and damage (checksum) before any value is trusted.


def encode(snapshot: Snapshot, identity: Mapping[str, str], boot_id: str, written_at: float,
           boot_seconds: float | None) -> bytes:
    series = [
        [metric, list(labels), value, snapshot.created.get(metric, {}).get(labels, written_at)]
        for metric, by_labels in sorted(snapshot.totals.items())
        for labels, value in sorted(by_labels.items())
    ]
    counters = [
        [component, device, state.raw, state.epoch]
        for (component, device), state in sorted(snapshot.counters.items())
        if state.hardware
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
        },
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()
    header = f"{MAGIC} {FORMAT} sha256={hashlib.sha256(body).hexdigest()} length={len(body)}\n"
    return header.encode() + body


def decode(data: bytes) -> Checkpoint:
    """Parse and check a checkpoint. Raises CheckpointError; never returns half a checkpoint."""
    header, newline, body = data.partition(b"\n")
    parts = header.decode("ascii", errors="replace").split(" ")
    if not newline or len(parts) != 4 or parts[0] != MAGIC:
        raise CheckpointError("corrupt", "not a footprint checkpoint (bad header)")
    if not parts[1].isdigit():
        raise CheckpointError("corrupt", "bad format version")
    if int(parts[1]) != FORMAT:
        raise CheckpointError("unsupported", f"format {parts[1]}, this exporter reads format {FORMAT}")
    if parts[3] != f"length={len(body)}":
        raise CheckpointError("corrupt", f"truncated or padded: {len(body)} bytes, header says {parts[3]}")
    if parts[2] != f"sha256={hashlib.sha256(body).hexdigest()}":
        raise CheckpointError("corrupt", "checksum mismatch")
    try:
        raw = json.loads(body)
        return _checked(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError("corrupt", f"bad content: {exc}") from None


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what}: not a finite number")
    return float(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what}: not a string")
    return value


def _checked(raw: Any) -> Checkpoint:
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
    counters = {}
    for item in raw["counters"]:
        component, device, value, epoch = item
        counters[(_text(component, "component"), _text(device, "device"))] = CounterState(
            _number(value, "raw"), _text(epoch, "epoch"), True
        )
    boot_seconds = raw["boottime"]
    return Checkpoint(
        exporter_version=_text(raw["exporter_version"], "exporter_version"),
        written_at=_number(raw["written_at"], "written_at"),
        boot_id=_text(raw["boot_id"], "boot_id"),
        boottime=None if boot_seconds is None else _number(boot_seconds, "boottime"),
        identity={_text(k, "identity"): _text(v, "identity") for k, v in identity.items()},
        series=series,
        counters=counters,
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename over, fsync the directory.

    A crash at any point leaves either the old file or the new one, never a mix; a failed write
    (ENOSPC, EROFS, EFBIG) removes the temp file and leaves the old checkpoint as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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


def gap_joules(saved: CounterState, r: Reading, gap_seconds: float | None, rebooted: bool) -> tuple[float | None, str]:
    """Energy a hardware counter saw while the exporter was down, or None with the reason why not.

    `gap_seconds` is the gap's length when known; `rebooted` says the machine booted since the
    checkpoint (every counter restarted then, whatever its epoch says).
    """
    if not r.hardware_counter:
        return None, "estimated energy is process-local: nothing is counted for the gap"
    if rebooted or saved.epoch != r.counter_epoch:
        if r.wrap_joules:
            return None, "the counter restarted (reboot) and wraps: the gap cannot be recovered"
        return max(r.energy_joules, 0.0), "the counter restarted: energy since the restart only"
    if r.wrap_joules and (gap_seconds is None or gap_seconds * ASSUMED_MAX_WATTS >= r.wrap_joules):
        return None, "the gap is long enough for the counter to have wrapped unseen"
    if r.energy_joules >= saved.raw:
        return r.energy_joules - saved.raw, "exact"
    if r.wrap_joules:
        return r.energy_joules + r.wrap_joules - saved.raw, "exact (one wrap)"
    return max(r.energy_joules, 0.0), "the counter was reset: energy since the reset only"


class Checkpointer:
    """Owns the state file: restore at start, snapshots from the sampler, writes from its own thread."""

    def __init__(self, settings: Settings, ledger: Ledger, accountant: Accountant, attribution: bool,
                 wall: Callable[[], float] = time.time) -> None:
        self.path = Path(settings.state_file) if settings.state_file else None
        self.interval = settings.state_checkpoint_interval
        self.ledger = ledger
        self.accountant = accountant
        self.attribution = attribution
        self.wall = wall
        self.identity = machine_identity(settings)
        self.boot_id = read_boot_id(settings.path_procfs)
        self.restored: Checkpoint | None = None
        self.last_success: float | None = None
        self.failures = 0
        self._failing = False
        self._seq = 0
        self._latest: Snapshot | None = None
        self._written_seq = -1
        self._attempted_seq = -1  # the last snapshot a write was tried for, successful or not
        self._attempted = threading.Condition()
        self._due = 0.0  # monotonic time of the next interval write
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None

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
            if is_foreign(checkpoint.identity, self.identity):
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
        self.restored = checkpoint
        log.info(
            "restored the checkpoint",
            extra={"file": str(self.path), "series": len(checkpoint.series) - skipped, "skipped": skipped,
                   "age_seconds": round(self.wall() - checkpoint.written_at, 3),
                   "written_by": checkpoint.exporter_version},
        )

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

    def recover_gap(self, readings: Iterable[Reading], intensity: IntensityReading | None) -> None:
        """After the first (baseline) sample: charge what the hardware counters saw while we were down.

        The baseline sample has set the tracker to the current readings, so the gap is exactly the
        difference between the checkpointed raw values and those readings: nothing lost, nothing twice.
        """
        checkpoint, self.restored = self.restored, None
        if checkpoint is None or intensity is None:
            return
        now = self.wall()
        rebooted = bool(checkpoint.boot_id and self.boot_id and checkpoint.boot_id != self.boot_id)
        gap_seconds: float | None = None
        now_boot = boottime()
        if not rebooted and checkpoint.boottime is not None and now_boot is not None and self.boot_id:
            gap_seconds = max(now_boot - checkpoint.boottime, 0.0)
        elif not rebooted:
            gap_seconds = max(now - checkpoint.written_at, 0.0)  # wall clock: may be off if it was set
        energy: list[tuple[Reading, float]] = []
        recovered = 0.0
        for r in readings:
            saved = checkpoint.counters.get(r.key)
            joules: float | None
            if saved is None:
                joules, why = None, ("estimated energy is process-local: nothing is counted for the gap"
                                     if not r.hardware_counter else "no saved reading for this device")
            else:
                joules, why = gap_joules(saved, r, gap_seconds, rebooted)
            fields = {"component": r.component, "device": r.device, "source": r.source, "how": why}
            if joules is None:
                log.info("energy while the exporter was down not recovered", extra=fields)
                energy.append((r, 0.0))
                continue
            energy.append((r, joules))
            recovered += joules
            log.info("recovered energy drawn while the exporter was down",
                     extra={**fields, "joules": round(joules, 3)})
        with self.ledger.lock:
            for r, joules in energy:
                if r.key in checkpoint.counters and r.hardware_counter:
                    self.ledger.add(GAP_JOULES, r.key, joules, now)
            # Embodied emissions accrue with time, measured or not: charge the gap when its length is known.
            self.accountant.account(self.ledger, energy, gap_seconds or 0.0, intensity, now,
                                    [] if self.attribution else None)
        log.info(
            "charged the gap's emissions at the intensity in use now (the intensity during the gap is unknown)",
            extra={"joules": round(recovered, 3), "intensity_g_per_kwh": intensity.value,
                   "provider": intensity.provider, "signal": intensity.signal, "rebooted": rebooted,
                   "gap_seconds": "unknown" if gap_seconds is None else round(gap_seconds, 3)},
        )
        self.sampled()  # the first write carries the recovered gap

    # --- running ---

    def sampled(self) -> None:
        """In the sampler thread after each sample (before it becomes visible): keep a consistent copy."""
        if self.path is None:
            return
        with self.ledger.lock:
            self._seq += 1
            self._latest = Snapshot(
                self._seq,
                {m: dict(s) for m, s in self.ledger.totals.items()},
                {m: dict(s) for m, s in self.ledger.created.items()},
                {k: s for k, s in self.ledger.counters.states.items() if s.hardware},
            )

    def start(self) -> None:
        if self.path is None:
            return
        self._due = time.monotonic() + self.interval
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(max(self._due - time.monotonic(), 0.0))
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.write()

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
            try:
                write_atomically(self.path, encode(snapshot, self.identity, self.boot_id, now, boottime()))
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
        """Final checkpoint (the sampler has stopped), then end the writer thread."""
        if self.path is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        with self._attempted:
            self._attempted.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.write():
            log.info("final checkpoint written", extra={"file": str(self.path)})

    def collect(self) -> Iterable[Metric]:
        """Checkpoint health. Called once per sample, by the first scrape that renders it: before those
        values go out, the writer puts them on disk (see the module docstring). The wait is bounded,
        and a failing disk answers at once, so a scrape is never held for long."""
        if self.path is None:
            return
        snapshot = self._latest
        if snapshot is not None and snapshot.seq != self._written_seq and self._thread is not None:
            self._wake.set()
            with self._attempted:
                self._attempted.wait_for(lambda: self._attempted_seq >= snapshot.seq or self._stopping.is_set(),
                                         timeout=WRITE_WAIT_SECONDS)
        failures = CounterMetricFamily(WRITE_FAILURES, SPECS[WRITE_FAILURES].help)
        failures.add_metric((), float(self.failures))
        yield failures
        if self.last_success is not None:
            last = GaugeMetricFamily(LAST_SUCCESS, SPECS[LAST_SUCCESS].help)
            last.add_metric((), self.last_success)
            yield last

