"""The sampling loop: meters -> ledger deltas -> accountant every interval; attribution on its own cadence.

Runs in one thread on the monotonic clock. A failing meter marks itself down and the rest goes on;
nothing in a sample can stop the loop. After each sample the exposition is told to re-render (lazily).

Nearly every sample is like the last: every meter up, the same devices, nothing due. Each meter then holds
a SteadyPlan (meters/base.py) of how its next read goes, and the sampler follows them all in one C call
(`_fastread.read_steady`) instead of calling read(); without attribution it judges and charges the sample
in one more (`_fastledger.charge_steady`). Either hands anything unusual back, having changed nothing,
and the sample goes step by step. Why: at 1 Hz each sample runs on cold caches, and the dozens of Python
frames between the reads and the ledger were most of its cost (bench/README.md, twelfth pass).

Device energy and emissions are charged every sample. Splitting them among workloads costs far more
(cgroup scans, hundreds of cpu.stat reads), so it runs every `attribution_interval` (at the first
sample boundary that reaches it) over everything drawn since the last pass, which waits in an
`AttributionWindow` and is exposed as pending. `stop()` runs one last pass so a clean stop loses
nothing; 0 attributes every sample.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from operator import attrgetter
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from footprint.accounting.accountant import Accountant, AttributionWindow
from footprint.accounting.ledger import Labels, Ledger, _fastledger
from footprint.attribution.base import Attributor
from footprint.exposition.catalog import REJECTED_METRIC
from footprint.grid.base import IntensityReading
from footprint.meters.base import Meter, MeterError, Reading, SteadyPlan
from footprint.worker import Worker, collector_paused

try:  # the optional C reader (meters/_fastread.c): a steady sample's reads in one call
    from footprint.meters import _fastread
except ImportError:  # pragma: no cover - exercised where the extension is not built
    _fastread = None  # type: ignore[assignment]

log = logging.getLogger("footprint.sampler")

# The component of a device that was down from the start (never read), by meter.
DEFAULT_COMPONENT = {"nvml": "gpu", "rapl": "cpu", "estimate": "cpu"}

_EMPTY: Mapping[Any, Any] = MappingProxyType({})  # shared by every sample that has nothing there
_KEY = attrgetter("key")
_STEADY = attrgetter("steady")

DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class IntensitySource(Protocol):
    """What the sampler needs from the grid feed."""

    def accounting_intensity(self) -> IntensityReading: ...


class Sample(NamedTuple):
    """The last sample, published whole and never changed (the exposition and the live page read it, never
    the live sampler: like Kepler's monitor snapshot). A tuple: immutable, and made every second (a frozen
    dataclass sets each field through object.__setattr__)."""

    readings: tuple[Reading, ...] = ()
    meter_up: Mapping[str, bool] = _EMPTY
    device_down: Mapping[tuple[str, str], str] = _EMPTY  # (component, device) -> reason
    intensity: IntensityReading | None = None
    samples: int = 0
    # Power over the last interval: a hardware counter's judged delta over the time it was drawn in
    # (none for a rejected reading); the meter's own figure where it integrates power itself.
    power: Mapping[tuple[str, str, str], float] = _EMPTY
    node_watts: float | None = None  # the power of the devices in the node total; None before the first interval
    # The last good reading of each device known but not read in this sample (down, gone): usually none.
    lost_devices: Mapping[tuple[str, str], Reading] = _EMPTY
    duration_counts: tuple[int, ...] = (0,) * (len(DURATION_BUCKETS) + 1)  # footprint_sample_duration_seconds
    duration_total: float = 0.0

    @property
    def known_devices(self) -> dict[tuple[str, str], Reading]:
        """Every device seen since start, with its last good reading (this sample's, else the one kept)."""
        return {**self.lost_devices, **{r.key: r for r in self.readings}}


_sample = partial(tuple.__new__, Sample)  # a NamedTuple's own __new__ is a Python frame

# What a sample's judged readings give: each reading with its joules, the reasons of those rejected now,
# each device's power by (component, device, source), and the node's (None while no device has power).
Judgement = tuple[list[tuple[Reading, float]], dict[tuple[str, str], tuple[str, ...]],
                  dict[tuple[str, str, str], float], float | None]


def power_of(readings: list[Reading], judged: list[tuple[float, tuple[str, ...], float]], seconds: float) -> Judgement:
    """Each reading's power over the time it was drawn in: a hardware counter's judged delta over its span
    (a delta charged after a glitch spans more than a sample; a rejected reading says nothing about power),
    the meter's own figure where it integrates power itself; the node's is the sum over the devices in the
    node total. Twin of _fastledger.judge_power (tests/unit/test_fastledger.py holds them equal)."""
    energy, rejected, power = [], {}, {}
    node_watts = 0.0
    for r, (joules, reasons, span) in zip(readings, judged, strict=True):
        energy.append((r, joules))
        if reasons:
            rejected[r.key] = reasons
        span = span or seconds
        if r.power_watts is not None and not r.hardware_counter:
            watts = r.power_watts
        elif span > 0 and not reasons:
            watts = joules / span
        else:
            continue
        power[(r.component, r.device, r.source)] = watts
        if r.in_node_total:
            node_watts += watts
    return energy, rejected, power, node_watts if power else None


@dataclass
class DurationHistogram:
    buckets: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0


class Sampler:
    def __init__(
        self,
        meters: list[Meter],
        ledger: Ledger,
        accountant: Accountant,
        grid: IntensitySource,
        interval: float,
        attributor: Attributor | None = None,
        on_sample: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        attribution_interval: float = 0.0,
    ) -> None:
        self.meters = meters
        self.ledger = ledger
        self.accountant = accountant
        self.grid = grid
        self.interval = interval
        self.attributor = attributor
        self.attribution_interval = attribution_interval
        self.window = AttributionWindow() if attributor is not None else None
        self._window_opened: float | None = None  # monotonic time of the last attribution pass
        self.on_sample = on_sample
        self.clock = clock
        self.wall = wall
        self.state = Sample()
        self.charged_at: float | None = None  # wall time of the last sample charged (set under the ledger lock)
        self.followed = False  # the last sample followed the meters' plans: it read what the one before read
        self.duration = DurationHistogram()
        self._last_sample: float | None = None
        self._known_devices: dict[tuple[str, str], Reading] = {}
        self._components: dict[tuple[str, str], str] = {}  # (meter, device) -> component
        # The devices the last sample read, in order, where every meter was up in it (else None): a sample
        # that reads the same with every meter up again is like it (see _read_meters).
        self._steady_keys: tuple[tuple[str, str], ...] | None = None
        # Every meter's SteadyPlan as the last sample left them, where that sample was steady (every meter up
        # with a plan, the same devices, none down), else None: the next sample follows them in C while
        # each meter still holds the same plan (see sample()).
        self._plans: tuple[SteadyPlan, ...] | None = None
        # Off for good if the C reader ever refuses a plan (a bug); a followed sample is charged by the C twins.
        self._planning = _fastread is not None and _fastledger is not None
        self._judging = ledger.counters.judging  # what a steady sample is judged and charged with, in C
        self._charging = accountant.charging(ledger)
        self._worker = Worker("sampler", self._tick)
        self._next_at = 0.0

    def sample(self) -> None:
        started = time.perf_counter()
        now = self.clock()
        now_wall = self.wall()
        seconds = 0.0 if self._last_sample is None else now - self._last_sample
        self._last_sample = now

        plans = self._plans
        got: tuple[list[Reading], list[float]] | None = None
        if plans is not None and tuple(map(_STEADY, self.meters)) == plans:
            try:  # the plans followed in one C call: what read() would give, or None (read() reads)
                got = _fastread.read_steady(plans, self.clock)
            except Exception:  # a plan it cannot follow: a bug, logged once; read() from then on
                log.exception("the steady read failed; reading the meters through read() from now on")
                self._plans, self._planning = None, False
        if got is None:
            readings, read_at, meter_up, device_down, lost = self._read_meters()
        else:  # what read() would give, and the last sample's maps (as _read_meters keeps them in a steady one)
            readings, read_at = got
            meter_up, device_down, lost = self.state.meter_up, self.state.device_down, self.state.lost_devices
        intensity = self.grid.accounting_intensity()
        # Judged and charged in one hold of the ledger lock: whoever holds it between samples (a scrape,
        # the checkpoint writer) sees counter baselines and totals of the same sample boundary.
        if got is not None and self.window is None:  # a steady sample, nothing to attribute: in one C call
            g_per_j, m_per_j, server, uncharged, price = self.accountant.rates(intensity, seconds, now_wall)
            with self.ledger.lock:
                charged = _fastledger.charge_steady(readings, read_at, seconds, self._judging, self._charging,
                                                    g_per_j, m_per_j, server, uncharged, price, now_wall)
                if charged is not None:
                    power, node_watts, made = charged
                    self.ledger.layout += made
                    self.charged_at = now_wall
                else:
                    power, node_watts = self._judge_and_charge(readings, read_at, seconds, intensity, now_wall)
        else:
            with self.ledger.lock:
                power, node_watts = self._judge_and_charge(readings, read_at, seconds, intensity, now_wall)
        if self.attributor is not None and self._attribution_due(now):
            self._attribute(now, now_wall)
        duration, took = self.duration, time.perf_counter() - started
        duration.counts[bisect_left(duration.buckets, took)] += 1  # the first bucket with took <= bound, else +Inf
        duration.total += took
        self.state = _sample((tuple(readings), meter_up, device_down, intensity, self.state.samples + 1,
                              power, node_watts, lost, tuple(self.duration.counts), self.duration.total))
        self.followed = got is not None
        self.on_sample()

    def _judge_and_charge(self, readings: list[Reading], read_at: list[float], seconds: float,
                          intensity: IntensityReading, now_wall: float
                          ) -> tuple[Mapping[tuple[str, str, str], float], float | None]:
        """The sample judged and charged step by step (under the ledger lock): the power of its devices and
        the node's. A sample the ledger drops has its counter baselines rolled back, so the next charges its
        energy too."""
        mark = self.ledger.counters.mark()
        energy, rejected, power, node_watts = self._judge(readings, read_at, seconds)
        if self._charge(energy, rejected, seconds, intensity, now_wall):
            self.charged_at = now_wall
        else:
            self.ledger.counters.rollback(mark)
        return power, node_watts

    def _read_meters(self) -> tuple[list[Reading], list[float], Mapping[str, bool], Mapping[tuple[str, str], str],
                                    Mapping[tuple[str, str], Reading]]:
        """Every meter's readings, each with when its meter's read returned; which meters are up, the devices
        down, and the devices known but not read now with their last good readings. In a sample like the
        last (every meter up again, the same devices read: nearly every sample) the last sample's maps stand
        and the bookkeeping of first sights and lost devices is skipped; the known readings are brought up
        to date only when that changes (the last sample's readings are then the newest of each device)."""
        readings: list[Reading] = []
        read_at: list[float] = []
        counts: list[int] = []  # readings of each meter, in order (0: down)
        last = self.state
        failed: list[str] = []  # the meters whose read raised
        for meter in self.meters:
            try:
                got = meter.read()
            except Exception as exc:  # a bug in one meter must not stop the others
                got = []
                failed.append(meter.name)
                if last.meter_up.get(meter.name, True):
                    if isinstance(exc, MeterError):
                        log.warning("meter down: %s", exc, extra={"meter": meter.name})
                    else:
                        log.error("meter failed", exc_info=exc, extra={"meter": meter.name})
            readings += got
            read_at += [self.clock()] * len(got)
            counts.append(len(got))
        keys = tuple(map(_KEY, readings))
        if not failed and keys == self._steady_keys:
            meter_up, lost = last.meter_up, last.lost_devices
        else:
            meter_up, lost = self._note_devices(readings, keys, counts, failed)
        device_down: Mapping[tuple[str, str], str] = _EMPTY
        for meter in self.meters:
            down = meter.down_devices()
            if down:
                device_down = dict(device_down)
                for device, reason in down.items():
                    component = self._components.get((meter.name, device), DEFAULT_COMPONENT.get(meter.name, "cpu"))
                    device_down[(component, device)] = reason
        self._plans = None
        if self._planning and keys == self._steady_keys and device_down is _EMPTY:
            plans = [getattr(meter, "steady", None) for meter in self.meters]
            made = [plan for plan in plans if plan is not None]
            if len(made) == len(plans) and tuple(r.key for plan in made for r in plan.templates) == keys:
                self._plans = tuple(made)
        return readings, read_at, meter_up, device_down, lost

    def _note_devices(self, readings: list[Reading], keys: tuple[tuple[str, str], ...], counts: list[int],
                      failed: list[str]) -> tuple[dict[str, bool], Mapping[tuple[str, str], Reading]]:
        """A sample unlike the last: which meters are up (a recovery is logged), first sights (the
        component a device of that meter is when it is down), each known device's last good reading,
        and those known but not read now."""
        last = self.state
        meter_up = {meter.name: meter.name not in failed for meter in self.meters}
        for name, up in meter_up.items():
            if up and not last.meter_up.get(name, True):
                log.info("meter recovered", extra={"meter": name})
        known = self._known_devices
        known.update(zip(map(_KEY, last.readings), last.readings, strict=True))  # the newest, as steady ones left them
        at = 0
        for meter, n in zip(self.meters, counts, strict=True):
            for r in readings[at:at + n]:
                if r.key not in known:
                    self._components[(meter.name, r.device)] = r.component
            at += n
        known.update(zip(keys, readings, strict=True))
        self._steady_keys = keys if not failed else None
        lost: Mapping[tuple[str, str], Reading] = _EMPTY  # every known device read now
        if len(readings) != len(known):  # a device is read at most once a sample
            read_now = set(keys)
            lost = {k: r for k, r in known.items() if k not in read_now}
        return meter_up, lost

    def _judge(self, readings: list[Reading], read_at: list[float], seconds: float) -> Judgement:
        """Every reading's delta, judged against its device's ceiling over the real time since its
        last read (a stalled sample is judged over the stall), before anything is charged; then
        `power_of` them (in C where the ledger's twins are built)."""
        judged = self.ledger.counters.deltas(readings, read_at)
        got = None if _fastledger is None else _fastledger.judge_power(readings, judged, seconds)
        return power_of(readings, judged, seconds) if got is None else got

    def _charge(self, energy: list[tuple[Reading, float]], rejected: Mapping[tuple[str, str], tuple[str, ...]],
                seconds: float, intensity: IntensityReading, now_wall: float) -> bool:
        """One sample into the ledger, all or nothing (under the ledger lock): rejected readings are
        counted, the accepted deltas charged. False: the ledger dropped it; the window is restored (and
        the caller rolls the counter baselines back, so the next sample charges this one's energy)."""
        if self.window is None and not rejected and self.accountant.charge(self.ledger, energy, seconds, intensity,
                                                                          now_wall):
            return True
        saved = None if self.window is None else {k: (p.joules, p.grams) for k, p in self.window.devices.items()}
        with self.ledger.transaction() as tx:
            for (component, device), reasons in rejected.items():
                for reason in reasons:
                    self.ledger.add(REJECTED_METRIC, (component, device, reason), 1.0, now_wall)
            self.accountant.account(self.ledger, energy, seconds, intensity, now_wall, window=self.window)
        if tx.dropped and self.window is not None and saved is not None:
            for key in [k for k in self.window.devices if k not in saved]:
                del self.window.devices[key]
            for key, (joules, grams) in saved.items():
                self.window.devices[key].joules, self.window.devices[key].grams = joules, grams
        return not tx.dropped

    def _attribution_due(self, now: float) -> bool:
        """With an attributor (the caller checks, sparing a call a sample without one): the first sample
        opens the window (the attributor's baseline); then the first sample at least `attribution_interval`
        after the last pass, give or take half a sample of jitter."""
        if self._window_opened is None or self.attribution_interval <= 0:
            return True
        return now - self._window_opened >= self.attribution_interval - self.interval / 2

    def _attribute(self, now: float, now_wall: float) -> None:
        """One attribution pass over the window: split it (outside the lock: it reads cgroups, /proc,
        NVML), then charge the shares and empty the window in one step under the lock.

        The cyclic garbage collector is paused for the pass (worker.collector_paused)."""
        assert self.attributor is not None and self.window is not None
        seconds = 0.0 if self._window_opened is None else now - self._window_opened
        with collector_paused():
            try:
                shares = self.attributor.split(self.window.deltas(), seconds)
            except Exception:
                log.exception("attribution failed; this window stays unattributed")
                shares = []
            with self.ledger.lock:
                self.accountant.attribute(self.ledger, self.window, shares, now_wall)
                for consumer in self.attributor.gone(now_wall):
                    self.accountant.forget(self.ledger, consumer)
        self._window_opened = now

    def pending(self) -> dict[str, dict[Labels, float]]:
        """Energy and grams not attributed yet, by gauge name. Read under the ledger lock, so a scrape
        sees them consistent with the counters (attributed + unattributed + pending == device)."""
        return self.window.series() if self.window is not None else {}

    def flush(self) -> None:
        """Attribute the open window now (a clean stop): nothing pending is left for the final checkpoint."""
        if self.window is None or self._window_opened is None or self.window.empty():
            return
        self._attribute(self.clock(), self.wall())
        self.on_sample()

    def _tick(self) -> float:
        """One sample, then the wait to the next tick of the monotonic clock; overruns skip, never pile up."""
        try:
            self.sample()
        except Exception:
            log.exception("sample failed")
        self._next_at += self.interval
        now = self.clock()
        if self._next_at < now:
            skipped = int((now - self._next_at) / self.interval) + 1
            self._next_at += skipped * self.interval
        return self._next_at - now

    def start(self) -> None:
        """Sample every `interval` until stop()."""
        self._next_at = self.clock()
        self._worker.start()

    def stop(self) -> None:
        """End the loop, take a last sample (energy up to this moment counts), then attribute what is
        pending, unless the loop is stuck in a sample."""
        if self._worker.started:
            if not self._worker.stop(timeout=10):
                log.warning("the sampler did not stop; pending attribution is not flushed")
                return
            try:
                self.sample()
            except Exception:
                log.exception("final sample failed")
        self.flush()

