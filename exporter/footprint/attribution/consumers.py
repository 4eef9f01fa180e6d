"""What every attributor shares: turning fractions into joules, the cap on series, and the grace period.

Fractions are each consumer's part of a device over the interval (CPU time / CPU capacity, a process's
GPU utilisation). They sum to at most 1; the rest of the device's delta is unattributed (idle, or
used by something no consumer accounts for). If they sum to more than 1 (reads taken a moment apart),
they are scaled down so a device never hands out more than it drew.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import TypeVar

from footprint.attribution.base import AnyConsumer, AttributionHealth, EnergyDelta, WorkloadShare, consumer_of
from footprint.meters.base import GpuProcessSource

log = logging.getLogger("footprint.attribution")

# A multi-consumer split is kept this far below the delta, so float rounding can never make the
# sum of shares exceed the device's joules (the unattributed series takes the sliver).
_HEADROOM = 1e-12
C = TypeVar("C", bound=AnyConsumer)
_share = partial(tuple.__new__, WorkloadShare)  # a share per consumer and device: no Python __new__ frame each


def shares_of(delta: EnergyDelta, fractions: Mapping[C, float]) -> list[WorkloadShare]:
    # A list, not a dict: the consumers are a mapping's keys already, and hashing each again (a Python
    # __hash__, 600 consumers for each CPU and DRAM device) was a tenth of an attribution pass.
    positive = [(c, f) for c, f in fractions.items() if f > 0 and math.isfinite(f)]
    if delta.joules <= 0 or not positive:
        return []
    if len(positive) == 1:
        consumer, fraction = positive[0]
        return [_share((consumer, delta.component, delta.device, delta.joules * min(fraction, 1.0)))]
    total = sum([f for _, f in positive])
    scale = 1.0 if total <= 1.0 - _HEADROOM else (1.0 - _HEADROOM) / total
    return [_share((c, delta.component, delta.device, delta.joules * f * scale)) for c, f in positive]


class ConsumerBook:
    """Consumers that have series, under a cap on energy series; and when departed ones leave.

    The cap counts `footprint_workload_energy_joules_total` series, one per (consumer, component);
    each consumer adds a single emissions series besides. A share that would need a new series past
    the cap is dropped (its joules stay unattributed) and counted once in `dropped`.
    A consumer that stops being live (its pod deleted or finished, its process group gone) keeps
    its series for the grace period, then `gone()` hands it back so the ledger removes them.
    """

    def __init__(self, max_series: int, grace_period: float) -> None:
        self.max_series = max_series
        self.grace_period = grace_period
        self.components: dict[AnyConsumer, set[str]] = {}
        self.left_at: dict[AnyConsumer, float | None] = {}  # None: live
        self.series = 0
        self.refused: set[tuple[AnyConsumer, str]] = set()
        self.dropped = 0

    def admit(self, shares: list[WorkloadShare]) -> list[WorkloadShare]:
        out = []
        # Each consumer's components, by object: the shares of a pass hold the same few hundred consumer
        # objects (once per device), and a consumer's __hash__ is a Python call.
        known: dict[int, set[str] | None] = {}
        for s in shares:
            ident = id(s.consumer)
            have = known[ident] if ident in known else known.setdefault(ident, self.components.get(s.consumer))
            if have is None or s.component not in have:
                if self.series >= self.max_series:
                    key = (s.consumer, s.component)
                    if key not in self.refused:
                        self.refused.add(key)
                        self.dropped += 1
                    continue
                have = known[ident] = self.components.setdefault(s.consumer, set())
                have.add(s.component)
                self.left_at.setdefault(s.consumer, None)
                self.series += 1
            out.append(s)
        return out

    def adopt(self, series: Iterable[tuple[str, ...]]) -> None:
        """Take on workload energy series restored from a checkpoint (label values, component last), so
        they count toward the cap and leave like any other once their consumer is gone."""
        for labels in series:
            found = consumer_of(tuple(labels))
            if found is None:
                continue
            consumer, component = found
            have = self.components.setdefault(consumer, set())
            if component not in have:
                have.add(component)
                self.series += 1
            self.left_at.setdefault(consumer, None)

    def gone(self, now_wall: float, live: Callable[[AnyConsumer], bool]) -> list[AnyConsumer]:
        out = []
        for consumer, left in list(self.left_at.items()):
            if live(consumer):
                self.left_at[consumer] = None
                continue
            if left is None:
                self.left_at[consumer] = left = now_wall
            if now_wall - left >= self.grace_period:
                del self.left_at[consumer]
                self.series -= len(self.components.pop(consumer, ()))
                out.append(consumer)
        self.refused = {key for key in self.refused if live(key[0])}
        return out


def gpu_process_shares(meters: list[object]) -> dict[str, dict[int, float]]:
    """Device id -> pid -> part of the GPU that process used over the last interval (0-1), from every
    meter that measures it (meters.base.GpuProcessSource). A meter that fails gives none."""
    out: dict[str, dict[int, float]] = {}
    for meter in meters:
        if not isinstance(meter, GpuProcessSource):
            continue
        try:
            got = meter.process_shares()
        except Exception:
            log.debug("process shares unavailable", exc_info=True)
            continue
        for device, pids in (got or {}).items():
            out.setdefault(str(device), {}).update({int(pid): float(share) for pid, share in pids.items()})
    return out


def split_deltas(
    deltas: list[EnergyDelta],
    cpu: Mapping[C, float],
    meters: list[object],
    consumer_of_pid: Callable[[int], C | None],
    exclusive: Callable[[EnergyDelta], Mapping[C, float] | None] = lambda _: None,
) -> list[WorkloadShare]:
    """The rules every attributor follows: CPU and DRAM by `cpu` (each consumer's CPU time over the
    capacity); a GPU by `exclusive` where it names the fractions (a dedicated GPU), else by the
    utilisation of its processes, each mapped to a consumer once per call (None: nobody's)."""
    shares: list[WorkloadShare] = []
    process_shares: dict[str, dict[int, float]] | None = None
    owners: dict[int, C | None] = {}
    for delta in deltas:
        if delta.joules <= 0:
            continue
        if delta.component in ("cpu", "dram"):
            shares += shares_of(delta, cpu)
        elif delta.component == "gpu":
            fractions = exclusive(delta)
            if fractions is None:
                if process_shares is None:
                    process_shares = gpu_process_shares(meters)
                by_consumer: dict[C, float] = defaultdict(float)
                for pid, share in process_shares.get(delta.device, {}).items():
                    if pid not in owners:
                        owners[pid] = consumer_of_pid(pid)
                    owner = owners[pid]
                    if owner is not None:
                        by_consumer[owner] += share
                fractions = by_consumer
            shares += shares_of(delta, fractions)
    return shares


def health(
    book: ConsumerBook,
    up: Mapping[str, bool | None],
    cpu_rejected: Mapping[str, int] | None = None,
    skipped: Mapping[tuple[str, str], int] | None = None,
) -> AttributionHealth:
    """An attributor's health: its sources, the cap, the consumers, CPU-time reads refused by reason,
    and listed items (pods) skipped by source and reason."""
    return AttributionHealth(dict(up), book.dropped, len(book.left_at),
                             None if cpu_rejected is None else dict(cpu_rejected),
                             None if skipped is None else dict(skipped))
