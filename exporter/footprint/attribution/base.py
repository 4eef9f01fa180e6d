"""The contract between attribution and the accountant.

An attributor looks at the interval that just ended and says which consumers used each device and
how much of the device's energy delta is theirs, in joules. The accountant keeps the remainder as
unattributed, so consumers + unattributed == device, exactly; an attributor must never hand out more
than a device's delta (the accountant checks and scales down if it does).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.core import Metric


@dataclass(frozen=True)
class EnergyDelta:
    component: str
    device: str
    joules: float
    info: tuple[tuple[str, str], ...] = ()  # e.g. (("uuid", "GPU-..."),) so GPUs can be matched to pods


@dataclass(frozen=True)
class Consumer:
    namespace: str
    pod: str
    container: str
    workload: str  # training | inference | unknown

    @property
    def labels(self) -> tuple[str, str, str, str]:
        return (self.namespace, self.pod, self.container, self.workload)


@dataclass(frozen=True)
class WorkloadShare:
    consumer: Consumer
    component: str
    device: str
    joules: float


class Attributor(Protocol):
    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        """Shares of the interval's deltas. Must not raise: on failure return fewer shares."""
        ...

    def gone(self, now_wall: float) -> list[Consumer]:
        """Consumers whose grace period ended: their series leave the ledger."""
        ...

    def adopt(self, series: list[tuple[str, ...]]) -> None:
        """Workload energy series restored from a checkpoint (namespace, pod, container, workload,
        component): they count toward the cap and leave after the grace period like live ones."""
        ...

    def collect(self) -> Iterable[Metric]:
        """Attribution's own health metrics (e.g. footprint_workload_series_dropped_total)."""
        ...

    def describe(self) -> list[str]: ...

    def close(self) -> None: ...
