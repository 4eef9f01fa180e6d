"""The only place where joules become grams (and litres and money).

For each sample interval: grams = delta joules x PUE x intensity valid during that interval / 3.6e6.
Never total energy x current intensity. Everything is added to the ledger, which only grows.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass

from footprint.attribution.base import Consumer, EnergyDelta, WorkloadShare
from footprint.config import ConfigError, Settings
from footprint.embodied import EmbodiedFigure, EmbodiedModel
from footprint.grid.base import IntensityReading
from footprint.ledger import Ledger
from footprint.meters.base import Reading

log = logging.getLogger("footprint.accountant")

JOULES_PER_KWH = 3.6e6

# Metric names the accountant writes into the ledger (exposition renders them).
ENERGY = "footprint_energy_joules_total"  # component, device, source
EMISSIONS = "footprint_emissions_grams_total"  # component, device
NODE_ENERGY = "footprint_node_energy_joules_total"
NODE_EMISSIONS = "footprint_node_emissions_grams_total"
FACILITY_OVERHEAD = "footprint_facility_overhead_energy_joules_total"
EMBODIED = "footprint_embodied_emissions_grams_total"  # component, device
WATER = "footprint_water_liters_total"  # scope
COST = "footprint_energy_cost_total"  # currency
WORKLOAD_ENERGY = "footprint_workload_energy_joules_total"  # namespace, pod, container, workload, component
WORKLOAD_EMISSIONS = "footprint_workload_emissions_grams_total"  # namespace, pod, container, workload
UNATTRIBUTED_ENERGY = "footprint_unattributed_energy_joules_total"  # component, device
UNATTRIBUTED_EMISSIONS = "footprint_unattributed_emissions_grams_total"  # component, device

_SCHEDULE_RE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})=(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class PriceWindow:
    start_minute: int  # minutes after midnight UTC
    end_minute: int  # exclusive; may be < start (wraps past midnight)
    price: float

    def contains(self, minute: int) -> bool:
        if self.start_minute <= self.end_minute:
            return self.start_minute <= minute < self.end_minute
        return minute >= self.start_minute or minute < self.end_minute


def parse_schedule(entries: tuple[str, ...]) -> list[PriceWindow]:
    windows = []
    for entry in entries:
        m = _SCHEDULE_RE.match(entry.replace(" ", ""))
        if not m:
            raise ConfigError(f"cost.schedule: {entry!r} is not HH:MM-HH:MM=price")
        h1, m1, h2, m2 = (int(m.group(i)) for i in range(1, 5))
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ConfigError(f"cost.schedule: {entry!r} has an invalid time")
        windows.append(PriceWindow(h1 * 60 + m1, h2 * 60 + m2, float(m.group(5))))
    return windows


class Accountant:
    def __init__(self, settings: Settings, embodied: EmbodiedModel | None = None) -> None:
        self.pue = settings.pue
        self.wue = settings.water_wue
        self.grid_water = settings.water_grid_intensity
        self.price = settings.cost_price_per_kwh
        self.currency = settings.cost_currency
        self.schedule = parse_schedule(settings.cost_schedule)
        self.embodied = embodied or EmbodiedModel(settings)
        self._figures: dict[tuple[str, str], EmbodiedFigure | None] = {}

    def grams(self, joules: float, intensity: float) -> float:
        return joules * self.pue * intensity / JOULES_PER_KWH

    def price_at(self, wall: float) -> float | None:
        if self.schedule:
            t = time.gmtime(wall)
            minute = t.tm_hour * 60 + t.tm_min
            for window in self.schedule:
                if window.contains(minute):
                    return window.price
        return self.price

    def embodied_figure(self, component: str, device: str, model: str) -> EmbodiedFigure | None:
        key = (component, device)
        if key not in self._figures:
            self._figures[key] = self.embodied.figure(component, model)
        return self._figures[key]

    def account(
        self,
        ledger: Ledger,
        energy: list[tuple[Reading, float]],
        seconds: float,
        intensity: IntensityReading,
        now_wall: float,
        shares: list[WorkloadShare] | None = None,
    ) -> None:
        """Charge one interval: `energy` holds each reading with its delta joules over `seconds`.

        `shares` is None when attribution is off (then no unattributed series are written either).
        """
        g_per_j = self.pue * intensity.value / JOULES_PER_KWH
        node_joules = 0.0
        for r, joules in energy:
            ledger.add(ENERGY, (r.component, r.device, r.source), joules, now_wall)
            if r.in_node_total:
                node_joules += joules
                ledger.add(EMISSIONS, (r.component, r.device), joules * g_per_j, now_wall)
                figure = self.embodied_figure(r.component, r.device, r.info.get("model", ""))
                if figure is not None and seconds > 0:
                    ledger.add(EMBODIED, (r.component, r.device), self.embodied.grams(figure, seconds), now_wall)
        server = self.embodied.figure("server", "")
        if server is not None and seconds > 0:
            ledger.add(EMBODIED, ("server", "node"), self.embodied.grams(server, seconds), now_wall)
        ledger.add(NODE_ENERGY, (), node_joules, now_wall)
        ledger.add(NODE_EMISSIONS, (), node_joules * g_per_j, now_wall)
        facility_joules = node_joules * self.pue
        ledger.add(FACILITY_OVERHEAD, (), facility_joules - node_joules, now_wall)
        if self.wue is not None:
            ledger.add(WATER, ("site",), node_joules / JOULES_PER_KWH * self.wue, now_wall)
        if self.grid_water is not None:
            ledger.add(WATER, ("grid",), facility_joules / JOULES_PER_KWH * self.grid_water, now_wall)
        price = self.price_at(now_wall)
        if price is not None:
            ledger.add(COST, (self.currency,), facility_joules / JOULES_PER_KWH * price, now_wall)
        if shares is not None:
            self._attribute(ledger, energy, shares, g_per_j, now_wall)

    def _attribute(
        self,
        ledger: Ledger,
        energy: list[tuple[Reading, float]],
        shares: list[WorkloadShare],
        g_per_j: float,
        now_wall: float,
    ) -> None:
        """Consumers get their shares; the rest of each device's delta is unattributed (conservation)."""
        by_device: dict[tuple[str, str], list[WorkloadShare]] = defaultdict(list)
        for share in shares:
            by_device[(share.component, share.device)].append(share)
        for r, joules in energy:
            if not r.in_node_total:
                continue
            device_shares = by_device.pop(r.key, [])
            handed_out = sum(s.joules for s in device_shares)
            scale = 1.0
            if handed_out > joules > 0 or (handed_out > 0 and joules <= 0):
                log.warning("attribution handed out more than the device drew; scaling down",
                            extra={"component": r.component, "device": r.device})
                scale = joules / handed_out if handed_out > 0 else 0.0
            attributed = 0.0
            for s in device_shares:
                j = s.joules * scale
                attributed += j
                ledger.add(WORKLOAD_ENERGY, (*s.consumer.labels, s.component), j, now_wall)
                ledger.add(WORKLOAD_EMISSIONS, s.consumer.labels, j * g_per_j, now_wall)
            rest = max(joules - attributed, 0.0)
            ledger.add(UNATTRIBUTED_ENERGY, r.key, rest, now_wall)
            ledger.add(UNATTRIBUTED_EMISSIONS, r.key, rest * g_per_j, now_wall)


    def forget(self, ledger: Ledger, consumer: Consumer) -> None:
        """A consumer's grace period ended: its workload series leave (the node totals keep its energy)."""
        for labels in [k for k in ledger.series(WORKLOAD_ENERGY) if k[:4] == consumer.labels]:
            ledger.remove(WORKLOAD_ENERGY, labels)
        ledger.remove(WORKLOAD_EMISSIONS, consumer.labels)


def deltas_for_attribution(energy: list[tuple[Reading, float]]) -> list[EnergyDelta]:
    return [
        EnergyDelta(r.component, r.device, joules, tuple(sorted(r.info.items())))
        for r, joules in energy
        if r.in_node_total
    ]
