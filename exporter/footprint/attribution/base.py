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
from typing import ClassVar, NamedTuple, Protocol

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


class _SeriesKeys:
    """A consumer's series keys, made once: an attribution pass looks consumers up in dicts and writes
    their series thousands of times (a generated dataclass __hash__ rebuilt a tuple for every lookup).
    Plain attributes, not dataclass fields: they stay out of the subclasses' __init__, repr and eq."""

    labels: tuple[str, ...]
    _hash: int
    energy_series: dict[str, tuple[str, ...]]  # component -> energy_labels(component), made once each

    def _keys(self, labels: tuple[str, ...]) -> None:
        object.__setattr__(self, "labels", labels)  # frozen: set once, here
        object.__setattr__(self, "_hash", hash((type(self).__name__, labels)))
        object.__setattr__(self, "energy_series", {})

    def __hash__(self) -> int:
        return self._hash

    def energy_labels(self, component: str) -> tuple[str, ...]:
        """The labels of this consumer's energy series for `component` (its labels, then the component)."""
        found = self.energy_series.get(component)
        if found is None:
            found = self.energy_series[component] = (*self.labels, component)
        return found


@dataclass(frozen=True)
class Consumer(_SeriesKeys):
    """A pod's container: footprint_workload_* series, labelled (namespace, pod, container, workload)."""

    namespace: str
    pod: str
    container: str
    workload: str  # training | inference | unknown

    energy_metric: ClassVar[str] = WORKLOAD_ENERGY
    emissions_metric: ClassVar[str] = WORKLOAD_EMISSIONS

    def __post_init__(self) -> None:
        self._keys((self.namespace, self.pod, self.container, self.workload))

    __hash__ = _SeriesKeys.__hash__


@dataclass(frozen=True)
class ProcessGroup(_SeriesKeys):
    """A group of processes on a machine without pods (--attribution.processes): its own series,
    footprint_process_group_*{process_group}, so no pod-less name ever lands in `pod` beside an empty
    `namespace`, where the per-namespace rules and dashboards would take it for a workload."""

    group: str

    energy_metric: ClassVar[str] = PROCESS_GROUP_ENERGY
    emissions_metric: ClassVar[str] = PROCESS_GROUP_EMISSIONS

    def __post_init__(self) -> None:
        self._keys((self.group,))

    __hash__ = _SeriesKeys.__hash__


AnyConsumer = Consumer | ProcessGroup


def consumer_of(labels: tuple[str, ...]) -> tuple[AnyConsumer, str] | None:
    """(consumer, component) of a restored energy series: 5 labels are a container's, 2 a process
    group's; anything else is not an energy series of a consumer."""
    if len(labels) == 5:
        return Consumer(*labels[:4]), labels[4]
    if len(labels) == 2:
        return ProcessGroup(labels[0]), labels[1]
    return None


class WorkloadShare(NamedTuple):
    """A tuple: an attribution pass makes one per consumer and device (2,400 with 200 pods)."""

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
