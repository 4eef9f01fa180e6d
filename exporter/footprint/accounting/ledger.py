"""Monotonic totals, and the hardware counter state that makes them monotonic.

Two jobs, kept together because the checkpoint must persist both atomically:
- `CounterTracker` turns successive cumulative readings into energy deltas, each judged by
  `judge_delta` against the device's power ceiling: wraps and resets are recovered when plausible,
  a glitch (a dip, a garbage value, a jump no device can draw) charges nothing and keeps the baseline.
- `Ledger` holds every counter the exporter exposes, keyed by metric name and label values. It only
  ever adds finite, non-negative amounts, a whole sample at a time, so exported counters never go
  backwards and node totals always equal the sum of their devices.
"""

from __future__ import annotations

import collections
import inspect
import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import NamedTuple

from footprint import numbers
from footprint.meters.base import Reading

try:  # the optional C twins of `_rule` and of the additions in `Transaction.__exit__` (accounting/_fastledger.c)
    from footprint.accounting import _fastledger
except ImportError:  # not built here: the Python code below does it all
    _fastledger = None  # type: ignore[assignment]


_Probe = collections.namedtuple("_Probe", "x")
_TUPLE_GETTER = type(_Probe.x)  # what a namedtuple's field descriptor is


def tuple_positions(cls: type[tuple[object, ...]]) -> dict[str, int]:
    """Each field of a NamedTuple class that is still the plain descriptor namedtuple made (not shadowed by
    a property), by its item position: what _fastledger may read by index on exact instances of `cls`."""
    positions = {}
    for name in getattr(cls, "_fields", ()):
        descriptor = inspect.getattr_static(cls, name, None)
        if type(descriptor) is _TUPLE_GETTER:
            positions[name] = int(descriptor.__reduce__()[1][0])
    return positions


if _fastledger is not None:
    _fastledger.use_reading_type(Reading, tuple_positions(Reading))

log = logging.getLogger("footprint.ledger")

Labels = tuple[str, ...]

# Power ceilings (watts per device) for readings whose meter knows no better bound. Physics bounds, not
# typical draw: a delta above ceiling x elapsed is a glitch, never energy. Meters put the device's own
# limit in `Reading.max_watts` (NVML power limit + margin, RAPL constraint_*_max_power_uw) and any
# --counter.max-watts override; these apply only when neither exists.
DEFAULT_MAX_WATTS: dict[str, float] = {
    "gpu": 1500.0,  # above every board's limit today (H200 700 W, B200 1000 W, GB200 superchip 1200 W)
    "cpu": 800.0,  # one RAPL package or the estimate; server TDPs reach 500 W, PL2 bursts above that
    "dram": 200.0,  # one RAPL dram zone: tens of DIMMs at 3-8 W each
    "psys": 2000.0,  # the whole platform (client machines), exported for reference
}
FALLBACK_MAX_WATTS = 2000.0  # a component not in the table

# A delta may exceed ceiling x elapsed by this much: the meter reads its counter a little after (or
# before) the sampler stamps the time, and counters update in steps (NVML ~every 20-100 ms, RAPL ~1 ms).
SLACK_RATIO = 0.05
SLACK_SECONDS = 0.01

REJECTED = ("non_finite", "out_of_range", "backwards", "jump", "implausible_wrap", "ambiguous_wrap",
            "implausible_reset")


def parse_max_watts(entries: Sequence[str]) -> dict[str, float]:
    """`--counter.max-watts` entries (component=watts) as a map; ValueError names the bad entry."""
    ceilings = {}
    for entry in entries:
        component, sep, watts = entry.partition("=")
        if not sep or not component.strip():
            raise ValueError(f"{entry!r} is not component=watts (e.g. gpu=1500)")
        ceilings[component.strip().lower()] = numbers.bounded(watts, 1.0, 1e6)
    return ceilings


def ceiling_watts(r: Reading) -> float:
    """The most this device can draw: its meter's bound (device limit or override), else the default."""
    bound = r.max_watts
    if bound is not None and 0 < bound < math.inf:  # positive and finite (a comparison is false for NaN)
        return bound
    return DEFAULT_MAX_WATTS.get(r.component, FALLBACK_MAX_WATTS)


def budget_joules(max_watts: float, elapsed_seconds: float) -> float:
    """The most energy a device under `max_watts` can draw in `elapsed_seconds`, timing slack included."""
    return max_watts * (elapsed_seconds * (1.0 + SLACK_RATIO) + SLACK_SECONDS)


class Verdict(NamedTuple):
    """A tuple, not a frozen dataclass: one is made for every counter reading of every sample."""

    joules: float | None  # None: rejected, charge nothing, keep the previous baseline
    kind: str  # accepted: "ok", "wrap", "reset"; rejected: one of REJECTED (the `reason` label)


def judge_delta(prev_raw: float, new_raw: float, elapsed_seconds: float, max_watts: float,
                wrap_joules: float | None, restarted: bool) -> Verdict:
    """The ONE rule for every hardware counter delta, live samples and restart gaps alike.

    `elapsed_seconds` is the real time between the two reads (a stalled sampler or a restart gap, not
    the configured interval). A delta counts only if it is at most `budget_joules(max_watts, elapsed)`:
    - larger: the counter rises (or is read) with no wrap in between ("ok"), unless it rose more than
      the device can draw ("jump") or a wrap could hide in the time elapsed ("ambiguous_wrap": the
      budget reaches the range, so the true delta may be this plus any number of ranges);
    - smaller: a wrap (`new + range - prev`) if that is plausible ("wrap"), else a reset from 0 if the
      new value itself is plausible for the time elapsed ("reset"), else a glitch ("implausible_wrap"
      with a range, "backwards" without);
    - `restarted` (the epoch changed on purpose: driver load, boot): new_raw itself is the delta
      ("reset" or "implausible_reset");
    - a value that is not a finite number ("non_finite"), or is negative or above the counter's range
      ("out_of_range"), is never a reading.
    A rejected verdict has joules None: charge nothing and keep the previous baseline.
    """
    return _verdict(_rule(prev_raw, new_raw, elapsed_seconds, max_watts, wrap_joules, restarted))


def _python_rule(prev_raw: float, new_raw: float, elapsed_seconds: float, max_watts: float,
                 wrap_joules: float | None, restarted: bool) -> tuple[float | None, str]:
    """judge_delta's body, as a plain (joules, kind) tuple: the tracker calls it for every reading of
    every sample, and a named tuple costs five times a plain one to make. `_rule` is its C twin where
    that is built (the same verdict for every input: tests/unit/test_fastledger.py)."""
    finite = math.isfinite
    if not (finite(prev_raw) and finite(new_raw) and finite(elapsed_seconds) and finite(max_watts)) or (
            elapsed_seconds < 0 or max_watts <= 0):
        return (None, "non_finite")
    if wrap_joules is not None and not (math.isfinite(wrap_joules) and wrap_joules > 0):
        wrap_joules = None  # a range we cannot use: judge as a counter that never wraps
    if new_raw < 0 or (wrap_joules is not None and new_raw > wrap_joules):
        return (None, "out_of_range")
    budget = max_watts * (elapsed_seconds * (1.0 + SLACK_RATIO) + SLACK_SECONDS)  # budget_joules, inlined
    if restarted:
        return (new_raw, "reset") if new_raw <= budget else (None, "implausible_reset")
    if prev_raw < 0 or (wrap_joules is not None and prev_raw > wrap_joules):
        return (None, "out_of_range")
    if wrap_joules is not None and budget >= wrap_joules:
        return (None, "ambiguous_wrap")
    if new_raw >= prev_raw:
        delta = new_raw - prev_raw
        return (delta, "ok") if delta <= budget else (None, "jump")
    if wrap_joules is not None:
        wrapped = new_raw + wrap_joules - prev_raw
        if wrapped <= budget:
            return (wrapped, "wrap")
    if new_raw <= budget:
        return (new_raw, "reset")
    return (None, "implausible_wrap" if wrap_joules is not None else "backwards")


_rule = _python_rule if _fastledger is None else _fastledger.rule


class CounterState(NamedTuple):
    """A tuple, made with tuple.__new__ (`_state`), so the C twin can make one too: one per counter per sample."""

    raw: float  # last accepted cumulative value, joules: the baseline
    epoch: str
    hardware: bool
    at: float | None = None  # monotonic time of the read behind `raw`; None: not read by this process


@dataclass(frozen=True)
class _Suspect:
    """A reading not taken as the baseline yet: a rejected value, or a reset awaiting confirmation."""

    raw: float
    epoch: str
    at: float
    reset_joules: float | None  # a plausible reset: its energy, charged once the next reading confirms it
    reason: str  # why it is (or, for a reset the counter comes back from, will be) counted as rejected


class Judged(NamedTuple):
    """A tuple for the same reason as Verdict: one per reading per sample."""

    joules: float  # to charge for this reading (0 when nothing is)
    rejected: tuple[str, ...] = ()  # reasons, one per reading found to be a glitch now
    seconds: float = 0.0  # the time `joules` were drawn in (longer than a sample after a glitch)


# The public results are made with tuple.__new__ directly (a NamedTuple's own __new__ is a Python frame);
# the hot path (every reading of every sample: `_rule`, `CounterTracker.delta`) makes plain tuples.
_verdict = partial(tuple.__new__, Verdict)
_judged = partial(tuple.__new__, Judged)
_state = partial(tuple.__new__, CounterState)


class CounterTracker:
    """Last accepted raw counter per (component, device); yields judged deltas in joules.

    Every hardware delta goes through `judge_delta` with the real time between the two reads. A
    rejected reading keeps the baseline and becomes a suspect: if the next reading continues from
    the baseline, the suspect was a one-off glitch and the whole span is charged exactly; if it
    continues from the suspect, the counter really moved (VM migration, a reset we could not prove)
    and the baseline moves there, losing only the rejected interval. A reset without an epoch change
    (a smaller, plausible value: 0 once looks just like one) is charged only when the next reading
    confirms it, so a dip the counter comes back from costs nothing. The suspect is confirmed only by a
    reading that moved on from it: the same value read twice (a stuck glitch) proves nothing.
    """

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], CounterState] = {}
        self._suspects: dict[tuple[str, str], _Suspect] = {}
        self._logged: set[tuple[str, str, str]] = set()
        # What _fastledger.charge_steady judges with, as steady_deltas: the dicts themselves, so they are
        # only ever changed in place (rollback too).
        self.judging = (self.states, self._suspects, CounterState, DEFAULT_MAX_WATTS, FALLBACK_MAX_WATTS)

    def observe(self, r: Reading, now: float) -> Judged:
        """Judge reading `r`, read at monotonic time `now`, against the device's baseline (as the sampler
        judges each sample's readings: through deltas())."""
        return _judged(self.deltas([r], [now])[0])

    def deltas(self, readings: list[Reading], read_at: list[float]) -> list[tuple[float, tuple[str, ...], float]]:
        """delta() of every reading of a sample (`read_at`: when each was read; a device at most once). Where
        the C twin is built, it judges the steady readings in one call (a hardware counter with a baseline of
        this process, the same epoch, no suspect, a verdict "ok" or "wrap": all of them, nearly every sample)
        and hands the rest, from the first one it cannot judge on, to delta() in order."""
        if _fastledger is None:
            return [self.delta(r, at) for r, at in zip(readings, read_at, strict=True)]
        steady = _fastledger.steady_deltas(readings, read_at, self.states, self._suspects, CounterState,
                                           DEFAULT_MAX_WATTS, FALLBACK_MAX_WATTS)
        if None not in steady:  # all of them: nearly every sample
            return steady  # type: ignore[return-value]
        return [self.delta(r, at) if got is None else got for r, at, got in zip(readings, read_at, steady, strict=True)]

    def delta(self, r: Reading, now: float) -> tuple[float, tuple[str, ...], float]:
        """observe() as a plain (joules, rejected, seconds) tuple."""
        key = r.key
        prev = self.states.get(key)
        if not r.hardware_counter:
            return self._integrated(r, prev, now)
        if prev is None or not prev.hardware or prev.at is None:
            return self._baseline(r, now)  # first sight, or a new kind of source: nothing to count yet
        ceiling = ceiling_watts(r)
        restarted = prev.epoch != r.counter_epoch
        joules, kind = _rule(prev.raw, r.energy_joules, now - prev.at, ceiling, r.wrap_joules, restarted)
        suspect = self._suspects.pop(key, None) if self._suspects else None
        if joules is not None and (kind != "reset" or restarted):
            self.states[key] = _state((r.energy_joules, r.counter_epoch, True, now))  # _accept, inlined
            if restarted:
                log.info("counter restarted", extra={"component": r.component, "device": r.device})
            if suspect is not None and suspect.reset_joules is not None:
                reasons = self._reject(r, suspect.reason, prev.raw, suspect.raw, suspect.at - prev.at)
                return (joules, reasons, now - prev.at)
            return (joules, (), now - prev.at)
        if suspect is not None and suspect.epoch == r.counter_epoch and r.energy_joules == suspect.raw:
            self._suspects[key] = suspect  # the same value again: wait until the counter moves
            return (0.0, (), 0.0)
        if kind == "ambiguous_wrap":
            # More than one wrap could hide in the time since the baseline: nothing since it can be
            # known, nor can a suspect be confirmed against it. The span is refused and this reading,
            # in range, is the new baseline (a suspect would only let a later glitch decide).
            self._accept(r, now)
            dropped: tuple[str, ...] = ()
            if suspect is not None and suspect.reset_joules is not None:  # an unconfirmed reset, dropped
                dropped = self._reject(r, suspect.reason, prev.raw, suspect.raw, suspect.at - prev.at)
            return (0.0, dropped + self._reject(r, kind, prev.raw, r.energy_joules, now - prev.at), 0.0)
        if suspect is not None and suspect.epoch == r.counter_epoch:
            w_joules, w_kind = _rule(suspect.raw, r.energy_joules, now - suspect.at, ceiling, r.wrap_joules, False)
            if w_joules is not None and w_kind != "reset":  # it continues from the suspect: take it
                self._accept(r, now)
                if suspect.reset_joules is not None:
                    log.info("counter reset", extra={"component": r.component, "device": r.device})
                    return (suspect.reset_joules + w_joules, (), now - prev.at)
                return (w_joules, (), now - suspect.at)
        rejected: tuple[str, ...] = ()
        if suspect is not None and suspect.reset_joules is not None:  # an unconfirmed reset, replaced
            rejected = self._reject(r, suspect.reason, prev.raw, suspect.raw, suspect.at - prev.at)
        if joules is not None:  # a plausible reset: wait for the next reading to confirm it
            reason = "implausible_wrap" if r.wrap_joules else "backwards"
            self._suspects[key] = _Suspect(r.energy_joules, r.counter_epoch, now, joules, reason)
            return (0.0, rejected, 0.0)
        self._suspects[key] = _Suspect(r.energy_joules, r.counter_epoch, now, None, kind)
        return (0.0, rejected + self._reject(r, kind, prev.raw, r.energy_joules, now - prev.at), 0.0)

    def _accept(self, r: Reading, now: float) -> None:
        self.states[r.key] = _state((r.energy_joules, r.counter_epoch, r.hardware_counter, now))

    def _baseline(self, r: Reading, now: float) -> tuple[float, tuple[str, ...], float]:
        self._suspects.pop(r.key, None)
        joules, kind = _rule(r.energy_joules, r.energy_joules, 0.0, ceiling_watts(r), r.wrap_joules, False)
        if joules is None:  # even a first value must be a counter value
            return (0.0, self._reject(r, kind, r.energy_joules, r.energy_joules, 0.0), 0.0)
        self._accept(r, now)
        return (0.0, (), 0.0)

    def _integrated(self, r: Reading, prev: CounterState | None,
                    now: float) -> tuple[float, tuple[str, ...], float]:
        """A meter's own integral (estimate, NVML power): rises by construction; still never negative."""
        if not math.isfinite(r.energy_joules):
            return (0.0, (), 0.0)  # never a baseline
        self._accept(r, now)
        if prev is None or prev.hardware or prev.epoch != r.counter_epoch:
            return (0.0, (), 0.0)
        delta = r.energy_joules - prev.raw
        return (delta if math.isfinite(delta) and delta > 0 else 0.0, (), now - (prev.at or now))

    def _reject(self, r: Reading, reason: str, prev: float, new: float, elapsed: float) -> tuple[str, ...]:
        key = (r.component, r.device, reason)
        if key not in self._logged:  # once per device and reason: a flapping counter must not flood the log
            self._logged.add(key)
            log.warning(
                "counter reading rejected: charged nothing, baseline kept",
                extra={"component": r.component, "device": r.device, "reason": reason, "previous_joules": prev,
                       "reading_joules": new, "elapsed_seconds": round(elapsed, 6),
                       "ceiling_watts": ceiling_watts(r), "wrap_joules": r.wrap_joules},
            )
        return (reason,)

    def baselines(self) -> Mapping[tuple[str, str], CounterState]:
        """The accepted baseline of every counter (read-only: the checkpoint saves them)."""
        return MappingProxyType(self.states)

    def mark(self) -> tuple[dict[tuple[str, str], CounterState], dict[tuple[str, str], _Suspect]]:
        """The baselines as they are now, for `rollback` when a sample is dropped after judging."""
        return dict(self.states), dict(self._suspects)

    def rollback(self, mark: tuple[dict[tuple[str, str], CounterState], dict[tuple[str, str], _Suspect]]) -> None:
        """Back to `mark`: the next sample charges the dropped one's energy too (judged over both). In place:
        `judging` holds these dicts."""
        self.states.clear()
        self.states.update(mark[0])
        self._suspects.clear()
        self._suspects.update(mark[1])


class Transaction:
    """The additions and removals of one sample, applied together on exit, or not at all."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.ops: list[tuple[str, Labels, float | None, float]] = []  # amount None: remove the series
        self.dropped = False

    def __enter__(self) -> Transaction:
        self.ledger._tx = self
        return self

    def __exit__(self, *exc: object) -> None:
        self.ledger._tx = None
        ledger = self.ledger
        made = None if exc[0] is not None or _fastledger is None else _fastledger.apply_ops(ledger.totals,
                                                                                             ledger.created, self.ops)
        if made is not None:  # every amount a finite, non-negative float, added in C (the loop below, the same way)
            ledger.layout += made
            return
        bad = [(m, labels, a) for m, labels, a, _ in self.ops if a is not None and not (math.isfinite(a) and a >= 0)]
        if bad or exc[0] is not None:
            self.dropped = True
            if bad:
                log.error("sample dropped: an amount is not a finite non-negative number (a bug upstream)",
                          extra={"metric": bad[0][0], "labels": ",".join(bad[0][1]), "amount": repr(bad[0][2]),
                                 "bad_amounts": len(bad)})
            return
        totals, created = ledger.totals, ledger.created
        for metric, labels, amount, wall in self.ops:  # Ledger._apply inlined: ~30 additions a sample
            if amount is None:
                ledger._remove(metric, labels)
                continue
            series = totals.get(metric)
            if series is None:
                series = totals[metric] = {}
            old = series.get(labels)
            if old is None:
                old = 0.0
                created.setdefault(metric, {})[labels] = wall
                ledger.layout += 1
            series[labels] = old + amount


def _refuse_bad(metric: str, labels: Labels, amount: float) -> None:
    """ValueError unless `amount` is a finite, non-negative number: what a counter may be given."""
    if not (isinstance(amount, (int, float)) and math.isfinite(amount) and amount >= 0):
        raise ValueError(f"{metric}{labels}: refusing to add {amount!r} to a counter")


class Ledger:
    """Counters by metric name -> label values -> total, with the time each series was created.

    Inside `transaction()` (one sample), additions and removals are staged and applied together at
    the end, only if every amount is a finite, non-negative number: a bad amount drops the whole
    sample (logged, `dropped` set), so the ledger never raises halfway and node totals never
    disagree with their devices. Outside a transaction a bad amount raises (a programming error).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, dict[Labels, float]] = {}
        self.created: dict[str, dict[Labels, float]] = {}
        self.counters = CounterTracker()
        self._tx: Transaction | None = None
        # Bumped whenever a series is made or removed: a renderer's sorted series stand while it holds.
        self.layout = 0

    def transaction(self) -> Transaction:
        return Transaction(self)

    def add(self, metric: str, labels: Labels, amount: float, now_wall: float) -> None:
        if self._tx is not None:
            self._tx.ops.append((metric, labels, amount, now_wall))
            return
        _refuse_bad(metric, labels, amount)
        self._apply(metric, labels, amount, now_wall)

    def add_all(self, ops: list[tuple[str, Labels, float, float]]) -> None:
        """Many (metric, labels, amount, now_wall) additions at once (an attribution pass): inside a
        transaction staged with it; outside one all of them, or none when an amount is bad (ValueError,
        as add() raises). Added in one C call where the C twins are built."""
        if self._tx is not None:
            self._tx.ops.extend(ops)
            return
        made = None if _fastledger is None else _fastledger.apply_ops(self.totals, self.created, ops)
        if made is not None:
            self.layout += made
            return
        for metric, labels, amount, _ in ops:
            _refuse_bad(metric, labels, amount)
        for op in ops:
            self._apply(*op)

    def staging(self) -> list[tuple[str, Labels, float | None, float]] | None:
        """The open transaction's staged (metric, labels, amount, now_wall) list, for a loop of additions
        to append to (as `add` would, without a Python frame each); None outside a transaction."""
        return None if self._tx is None else self._tx.ops

    def _apply(self, metric: str, labels: Labels, amount: float, now_wall: float) -> None:
        series = self.totals.setdefault(metric, {})
        if labels not in series:
            series[labels] = 0.0
            self.created.setdefault(metric, {})[labels] = now_wall
            self.layout += 1
        series[labels] += amount

    def get(self, metric: str, labels: Labels = ()) -> float:
        series = self.totals.get(metric)
        return 0.0 if series is None else series.get(labels, 0.0)

    def series(self, metric: str) -> dict[Labels, float]:
        return self.totals.get(metric, {})

    def created_series(self, metric: str) -> dict[Labels, float]:
        """When each series of `metric` was created (wall clock): what `_created` shows."""
        return self.created.get(metric, {})

    def copy(self) -> tuple[dict[str, dict[Labels, float]], dict[str, dict[Labels, float]]]:
        """Every total and its creation time, copied: what the checkpoint saves. Call under `lock`."""
        return ({m: dict(s) for m, s in self.totals.items()}, {m: dict(s) for m, s in self.created.items()})

    def remove(self, metric: str, labels: Labels) -> None:
        """Drop a series that no longer exists (a deleted pod after its grace period)."""
        if self._tx is not None:
            self._tx.ops.append((metric, labels, None, 0.0))
            return
        self._remove(metric, labels)

    def _remove(self, metric: str, labels: Labels) -> None:
        if self.totals.get(metric, {}).pop(labels, None) is not None:
            self.layout += 1
        self.created.get(metric, {}).pop(labels, None)
