"""CPU-time counters between attribution passes: what a consumer used in the window, or nothing.

Every pass reads a cumulative CPU-time counter per key (a container's `usage_usec`, a process's
utime + stime). The window's use is the counter minus its last good value. The rules, so one bad
read never becomes a wrong share:
- unreadable (the cgroup or process is still there, but the file is partial, lacks the field or does
  not parse): the last good value is carried over. No share this window; the next good read is
  measured against the carried value (it then covers the windows since, which is what was used).
- gone from the listing: its last value is kept for a few passes (a scan that missed it for a moment
  must not make it look new), then forgotten.
- new since the last pass: counted from 0 (created in this window), bounded like any delta. A key
  first seen unreadable has no baseline: its first good read is the baseline.
- backwards (a counter is monotonic for its lifetime): rejected; measuring restarts from the new value.
- a jump beyond all online CPUs for the whole time since the last good read: rejected, and measuring
  restarts from the new value (the impossible value says the baseline cannot be trusted either).
Rejections are counted by reason (footprint_attribution_cpu_time_rejected_total) and never charged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

REASONS = ("unreadable", "backwards", "jump")
KEEP_ABSENT_PASSES = 3
# A read is taken a moment after the pass's clock, so a counter may cover slightly more than the
# window: this much slack (relative, plus seconds) before a delta counts as impossible.
SLACK_RATIO, SLACK_SECONDS = 1.25, 0.25


@dataclass
class _Last:
    value: int | None  # None: seen, never read well (no baseline yet)
    elapsed: float  # seconds of windows since `value` was read
    absent: int  # passes it has not been listed


class CpuTimeBook(Generic[K]):
    """Counter values per key across passes; `deltas()` applies the rules above."""

    def __init__(self, units_per_cpu_second: float) -> None:
        self.units_per_cpu_second = units_per_cpu_second
        self.rejected: Counter[str] = Counter({reason: 0 for reason in REASONS})
        self._last: dict[K, _Last] = {}
        self._first = True

    def deltas(self, reads: Mapping[K, int | None], seconds: float, cpus: int) -> dict[K, int]:
        """Each key's counter increase in this window (only positive, accepted ones).

        `reads`: every key listed now, with its value or None when present but unreadable.
        `seconds`: the window's length; `cpus`: online CPUs (the most a key can use per second).
        """
        first = self._first or seconds <= 0  # no window to measure: only baselines
        self._first = False
        out: dict[K, int] = {}
        for key in [k for k in self._last if k not in reads]:
            gone = self._last[key]
            gone.absent += 1
            gone.elapsed += seconds
            if gone.absent > KEEP_ABSENT_PASSES:
                del self._last[key]
        for key, value in reads.items():
            last = self._last.get(key)
            if value is None:
                if last is None:
                    self._last[key] = _Last(None, 0.0, 0)
                else:
                    self.rejected["unreadable"] += 1
                    last.elapsed += seconds
                    last.absent = 0
                continue
            if last is None and first:
                self._last[key] = _Last(value, 0.0, 0)
                continue
            if last is not None and last.value is None:
                last.value, last.elapsed, last.absent = value, 0.0, 0
                continue
            before, elapsed = (0, seconds) if last is None else (last.value or 0, last.elapsed + seconds)
            self._last[key] = _Last(value, 0.0, 0)
            delta = value - before
            if delta < 0:
                self.rejected["backwards"] += 1
            elif delta > cpus * (elapsed * SLACK_RATIO + SLACK_SECONDS) * self.units_per_cpu_second:
                self.rejected["jump"] += 1
            elif delta > 0:
                out[key] = delta
        return out

    def remembered(self) -> list[K]:
        """Keys with a remembered value (listed lately)."""
        return list(self._last)

    def clear(self) -> None:
        """Forget every baseline (the next pass only measures)."""
        self._last.clear()
        self._first = True
