"""The contract between attribution and the accountant.

An attributor looks at the window that just ended (every --attribution.interval, default 5 s: one or
more samples) and says which consumers used each device and how much of the device's energy over
the window is theirs, in joules. The accountant keeps the remainder as unattributed, and gives each
consumer the same fraction of the window's grams (each sample's at its own intensity), so consumers
+ unattributed == device, exactly; an attributor must never hand out more than a device's delta (the
accountant checks and scales down if it does). CPU time and NVML process shares are read "since the
last split", so they cover the same window as the energy.

Until the window closes, its energy and grams are exposed as pending
(footprint_attribution_pending_*), so attributed + unattributed + pending == device at any scrape.
Pending lives only in the process: a clean stop attributes it before the final checkpoint; after
kill -9 it is never attributed (the device totals keep it, so attributed + unattributed then stay
short of the device total by at most one window).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

from footprint.exposition.catalog import (
    PROCESS_GROUP_EMISSIONS,
    PROCESS_GROUP_ENERGY,
    WORKLOAD_EMISSIONS,
    WORKLOAD_ENERGY,
)


@dataclass(frozen=True)
class AttributionHealth:
    """An attributor's own state as plain values (exposition/attribution.py builds the families)."""

    sources_up: Mapping[str, bool | None]  # None: not tried yet (shown as 0)
    series_dropped: int  # consumers refused by the series cap
    consumers: int
    cpu_time_rejected: Mapping[str, int] | None = None  # by reason; None: this attributor reads none
    items_skipped: Mapping[tuple[str, str], int] | None = None  # (source, reason); None: it lists none


@dataclass(frozen=True)
class EnergyDelta:
    component: str
    device: str
    joules: float
    info: tuple[tuple[str, str], ...] = ()  # e.g. (("uuid", "GPU-..."),) so GPUs can be matched to pods


@dataclass(frozen=True)
class Consumer:
    """A pod's container: footprint_workload_* series, labelled (namespace, pod, container, workload)."""

    namespace: str
    pod: str
    container: str
    workload: str  # training | inference | unknown

    energy_metric: ClassVar[str] = WORKLOAD_ENERGY
    emissions_metric: ClassVar[str] = WORKLOAD_EMISSIONS

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.namespace, self.pod, self.container, self.workload)


@dataclass(frozen=True)
class ProcessGroup:
    """A group of processes on a machine without pods (--attribution.processes): its own series,
    footprint_process_group_*{process_group}, so no pod-less name ever lands in `pod` beside an empty
    `namespace`, where the per-namespace rules and dashboards would take it for a workload."""

    group: str

    energy_metric: ClassVar[str] = PROCESS_GROUP_ENERGY
    emissions_metric: ClassVar[str] = PROCESS_GROUP_EMISSIONS

    @property
    def labels(self) -> tuple[str, ...]:
        return (self.group,)


AnyConsumer = Consumer | ProcessGroup


def consumer_of(labels: tuple[str, ...]) -> tuple[AnyConsumer, str] | None:
    """(consumer, component) of a restored energy series: 5 labels are a container's, 2 a process
    group's; anything else is not an energy series of a consumer."""
    if len(labels) == 5:
        return Consumer(*labels[:4]), labels[4]
    if len(labels) == 2:
        return ProcessGroup(labels[0]), labels[1]
    return None


@dataclass(frozen=True)
class WorkloadShare:
    consumer: AnyConsumer
    component: str
    device: str
    joules: float


class Attributor(Protocol):
    def split(self, deltas: list[EnergyDelta], seconds: float) -> list[WorkloadShare]:
        """Shares of the window's deltas (`seconds` long). Must not raise: on failure return fewer shares."""
        ...

    def gone(self, now_wall: float) -> list[AnyConsumer]:
        """Consumers whose grace period ended: their series leave the ledger."""
        ...

    def adopt(self, series: list[tuple[str, ...]]) -> None:
        """Energy series restored from a checkpoint (a container's: namespace, pod, container, workload,
        component; a process group's: process_group, component): they count toward the cap and leave
        after the grace period like live ones."""
        ...

    def health(self) -> AttributionHealth | None:
        """Attribution's own health (sources up, series dropped...); None: nothing to show."""
        ...

    def doctor_lines(self) -> list[str]: ...

    def close(self) -> None: ...
