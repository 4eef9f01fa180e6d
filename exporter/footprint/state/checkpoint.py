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

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from footprint.accounting.accountant import (
    PENDING_EMISSIONS,
    PENDING_ENERGY,
    UNATTRIBUTED_EMISSIONS,
    UNATTRIBUTED_ENERGY,
    Accountant,
)
from footprint.accounting.ledger import Labels, Ledger
from footprint.config import ConfigError, Settings
from footprint.exposition.catalog import GAP_REJECTED, SPECS
from footprint.meters.base import Reading, boot_id
from footprint.state.format import (
    Checkpoint,
    CheckpointError,
    Key,
    PendingGap,
    SavedCounter,
    SavedState,
    boottime,
    decode,
    encode,
    machine_identity,
    same_machine,
    write_atomically,
)
from footprint.state.gaps import HOW, GapGrid, judge_gap
from footprint.worker import Worker

log = logging.getLogger("footprint.checkpoint")

WRITE_WAIT_SECONDS = 1.0  # the longest a scrape waits for the checkpoint of the values it is about to show


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
    """Owns the state file: restore at start, then writes from its own thread, each of a copy it takes at a
    sample boundary (under the ledger lock).

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
        self._seq = 0  # samples taken (sampled() calls)
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
        states = self.ledger.counters.baselines()
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
        self.accountant.charge_gap(self.ledger, [(g.key, g.joules) for g in restart.gaps], energy,
                                   restart.seconds or 0.0, intensity, wall, self.attribution)
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

    def sampled(self, readings: Sequence[Reading] = (), steady: bool = False) -> None:
        """In the sampler thread after each sample (before it becomes visible): settle what a restart
        still owes, and note that there is something new to write. `steady`: the sample read the devices
        the last one read, with the same facts (the sampler followed the meters' plans), so no GPU's UUID
        can be new.

        The copy that is written is taken by the writer (`_take`, under the ledger lock) when it writes:
        every interval, when a scrape asks and at stop, not after every sample. The sampler judges and
        charges a sample in one hold of that lock, so whenever the lock is free the totals, counter
        baselines and pending window belong to one sample boundary. Copying every series every second
        cost the sampler O(series) for a file written every 15-30 s (bench/README.md, fourth pass).
        """
        if self.path is None:
            return
        if not steady:
            for r in readings:
                uuid = r.info.get("uuid", "")
                if uuid:
                    self._gpus[r.key] = uuid
        if self._restart is not None:
            with self.ledger.lock:
                self._settle(readings)
        self._seq += 1  # after the sample's totals: a copy labelled `seq` holds at least that sample

    def _take(self, seq: int) -> SavedState:
        """Everything the file keeps, labelled `seq` (read before the lock: the copy holds at least that
        sample). Call under the ledger lock."""
        return SavedState(seq, *self.ledger.copy(), self._counters(),
                          tuple(self._restart.gaps) if self._restart else (), self.last_gap, self._pending())

    def _pending(self) -> dict[Key, tuple[float, float]]:
        gauges = self.pending()
        joules, grams = gauges.get(PENDING_ENERGY, {}), gauges.get(PENDING_EMISSIONS, {})
        return {(k[0], k[1]): (j, grams.get(k, 0.0)) for k, j in joules.items() if len(k) == 2}

    def _counters(self) -> dict[Key, SavedCounter]:
        """Tracker baselines with when they were read, plus the saved counters still waiting."""
        now, boot, wall = time.monotonic(), boottime(), self.wall()
        out = dict(self._restart.waiting) if self._restart else {}
        for key, s in self.ledger.counters.baselines().items():
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
            seq = self._seq
            if seq == 0 or seq == self._written_seq:  # no sample yet, or this one is on disk
                return True
            with self.ledger.lock:
                snapshot = self._take(seq)
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
        seq = self._seq
        if seq and seq != self._written_seq and self._worker.started:
            self._worker.wake()
            with self._attempted:
                self._attempted.wait_for(lambda: self._attempted_seq >= seq or self._worker.stopping,
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
