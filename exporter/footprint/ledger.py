"""Monotonic totals, and the hardware counter state that makes them monotonic.

Two jobs, kept together because the checkpoint must persist both atomically:
- `CounterTracker` turns successive cumulative readings into energy deltas. It absorbs RAPL
  wraparound (via `wrap_joules`), counter resets (driver reload: a smaller value, or a new epoch)
  and never yields a negative delta.
- `Ledger` holds every counter the exporter exposes, keyed by metric name and label values. It only
  ever adds non-negative amounts, so exported counters never go backwards.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

from footprint.meters.base import Reading

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

ACCEPTED = ("ok", "wrap", "reset")
REJECTED = ("non_finite", "out_of_range", "backwards", "jump", "implausible_wrap", "ambiguous_wrap",
            "implausible_reset")


def ceiling_watts(r: Reading) -> float:
    """The most this device can draw: its meter's bound (device limit or override), else the default."""
    if r.max_watts is not None and math.isfinite(r.max_watts) and r.max_watts > 0:
        return r.max_watts
    return DEFAULT_MAX_WATTS.get(r.component, FALLBACK_MAX_WATTS)


def budget_joules(max_watts: float, elapsed_seconds: float) -> float:
    """The most energy a device under `max_watts` can draw in `elapsed_seconds`, timing slack included."""
    return max_watts * (elapsed_seconds * (1.0 + SLACK_RATIO) + SLACK_SECONDS)


@dataclass(frozen=True)
class Verdict:
    joules: float | None  # None: rejected, charge nothing, keep the previous baseline
    kind: str  # accepted: "ok", "wrap", "reset"; rejected: one of REJECTED (the `reason` label)

    @property
    def accepted(self) -> bool:
        return self.joules is not None


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
    values = (prev_raw, new_raw, elapsed_seconds, max_watts)
    if not all(math.isfinite(v) for v in values) or elapsed_seconds < 0 or max_watts <= 0:
        return Verdict(None, "non_finite")
    if wrap_joules is not None and not (math.isfinite(wrap_joules) and wrap_joules > 0):
        wrap_joules = None  # a range we cannot use: judge as a counter that never wraps
    if new_raw < 0 or (wrap_joules is not None and new_raw > wrap_joules):
        return Verdict(None, "out_of_range")
    budget = budget_joules(max_watts, elapsed_seconds)
    if restarted:
        return Verdict(new_raw, "reset") if new_raw <= budget else Verdict(None, "implausible_reset")
    if prev_raw < 0 or (wrap_joules is not None and prev_raw > wrap_joules):
        return Verdict(None, "out_of_range")
    if wrap_joules is not None and budget >= wrap_joules:
        return Verdict(None, "ambiguous_wrap")
    if new_raw >= prev_raw:
        delta = new_raw - prev_raw
        return Verdict(delta, "ok") if delta <= budget else Verdict(None, "jump")
    if wrap_joules is not None:
        wrapped = new_raw + wrap_joules - prev_raw
        if wrapped <= budget:
            return Verdict(wrapped, "wrap")
    if new_raw <= budget:
        return Verdict(new_raw, "reset")
    return Verdict(None, "implausible_wrap" if wrap_joules is not None else "backwards")


@dataclass
class CounterState:
    raw: float  # last cumulative value, joules
    epoch: str
    hardware: bool


class CounterTracker:
    """Last raw counter per (component, device); yields deltas in joules."""

    def __init__(self) -> None:
        self.states: dict[tuple[str, str], CounterState] = {}

    def delta(self, r: Reading) -> float:
        prev = self.states.get(r.key)
        self.states[r.key] = CounterState(r.energy_joules, r.counter_epoch, r.hardware_counter)
        if prev is None:
            return 0.0  # first sight: a baseline, nothing to count yet
        if prev.hardware != r.hardware_counter:
            return 0.0  # the source changed kind: start a new baseline, never mix counters
        if prev.epoch != r.counter_epoch:
            # The counter restarted from zero on purpose (reboot, driver load): energy since then.
            log.info("counter restarted", extra={"component": r.component, "device": r.device})
            return max(r.energy_joules, 0.0)
        if r.energy_joules >= prev.raw:
            return r.energy_joules - prev.raw
        if r.wrap_joules:
            return r.energy_joules + r.wrap_joules - prev.raw
        # Smaller without a wrap range: the counter was reset (driver reload). What it shows now is
        # the energy since the reset; what was drawn between our last read and the reset is lost
        # (at most one interval), never counted twice.
        log.warning(
            "energy counter went backwards; treating as a reset",
            extra={"component": r.component, "device": r.device},
        )
        return max(r.energy_joules, 0.0)

    def forget(self, key: tuple[str, str]) -> None:
        self.states.pop(key, None)


class Ledger:
    """Counters by metric name -> label values -> total, with the time each series was created."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.totals: dict[str, dict[Labels, float]] = {}
        self.created: dict[str, dict[Labels, float]] = {}
        self.counters = CounterTracker()

    def add(self, metric: str, labels: Labels, amount: float, now_wall: float) -> None:
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"{metric}{labels}: refusing to add {amount!r} to a counter")
        series = self.totals.setdefault(metric, {})
        if labels not in series:
            series[labels] = 0.0
            self.created.setdefault(metric, {})[labels] = now_wall
        series[labels] += amount

    def get(self, metric: str, labels: Labels = ()) -> float:
        return self.totals.get(metric, {}).get(labels, 0.0)

    def series(self, metric: str) -> dict[Labels, float]:
        return self.totals.get(metric, {})

    def remove(self, metric: str, labels: Labels) -> None:
        """Drop a series that no longer exists (a deleted pod after its grace period)."""
        self.totals.get(metric, {}).pop(labels, None)
        self.created.get(metric, {}).pop(labels, None)
