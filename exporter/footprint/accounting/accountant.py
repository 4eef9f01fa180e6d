"""The only place where joules become grams (and litres and money).

For each sample interval: grams = delta joules x PUE x intensity valid during that interval / 3.6e6.
Never total energy x current intensity. Everything is added to the ledger, which only grows.

One signal per counter: the location-based average always drives footprint_emissions_grams_total.
With `--grid.accounting-signal=marginal`, marginal grams go to their own counter
(footprint_marginal_emissions_grams_total) at a fresh marginal value only; energy drawn while no
fresh marginal value exists is added to footprint_uncharged_energy_joules_total{signal="marginal"},
never charged at an average.

Attribution may run less often than sampling (--attribution.interval): each device's joules and grams
then wait in an `AttributionWindow` (each sample's grams at that sample's intensity) until the next
pass, which gives every consumer its fraction of the window's joules and the same fraction of its
grams, so workload + unattributed + pending == device, in joules and in grams, at every sample.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from footprint.accounting.embodied import EmbodiedFigure, EmbodiedModel, amortised_grams
from footprint.accounting.ledger import Labels, Ledger, _fastledger
from footprint.attribution.base import AnyConsumer, EnergyDelta, WorkloadShare
from footprint.config import ConfigError, Settings
from footprint.exposition.catalog import (  # noqa: F401 (the ledger's series names, used by importers too)
    COST,
    EMBODIED,
    EMISSIONS,
    ENERGY,
    FACILITY_OVERHEAD,
    GAP_JOULES,
    MARGINAL_EMISSIONS,
    NODE_EMISSIONS,
    NODE_ENERGY,
    PENDING_EMISSIONS,
    PENDING_ENERGY,
    PROCESS_GROUP_ENERGY,
    UNATTRIBUTED_EMISSIONS,
    UNATTRIBUTED_ENERGY,
    UNCHARGED_ENERGY,
    WATER,
    WORKLOAD_EMISSIONS,
    WORKLOAD_ENERGY,
)
from footprint.grid.base import IntensityReading
from footprint.meters.base import Reading

log = logging.getLogger("footprint.accountant")

JOULES_PER_KWH = 3.6e6


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


@dataclass
class Pending:
    """One device's energy since the last attribution pass, and its grams at each sample's intensity."""

    reading: Reading  # the latest one: labels and info (GPU UUID) for the attributor
    joules: float = 0.0
    grams: float = 0.0


@dataclass
class AttributionWindow:
    """Device energy and emissions drawn since the last attribution pass (devices in the node total).

    A clean stop attributes it (one last pass); each checkpoint keeps it, and after a kill -9 the
    restart makes it unattributed (who used it cannot be known any more). Mutated only under the
    ledger lock, so a scrape that renders under that lock sees it consistent with the counters.
    """

    devices: dict[tuple[str, str], Pending] = field(default_factory=dict)

    def add(self, r: Reading, joules: float, grams: float) -> None:
        pending = self.devices.get(r.key)
        if pending is None:
            pending = self.devices[r.key] = Pending(r)
        pending.reading = r
        pending.joules += joules
        pending.grams += grams

    def deltas(self) -> list[EnergyDelta]:
        """What the attributor splits: each device's joules over the whole window."""
        return [EnergyDelta(k[0], k[1], p.joules, tuple(sorted(p.reading.info.items())))
                for k, p in self.devices.items()]

    def empty(self) -> bool:
        return not any(p.joules for p in self.devices.values())

    def series(self) -> dict[str, dict[Labels, float]]:
        """The pending gauges, by metric name (a device stays at 0 after a pass)."""
        return {
            PENDING_ENERGY: {k: p.joules for k, p in self.devices.items()},
            PENDING_EMISSIONS: {k: p.grams for k, p in self.devices.items()},
        }


_DEVICE_METRICS = (ENERGY, EMISSIONS, MARGINAL_EMISSIONS, EMBODIED)


def stage_devices(stage: Callable[[tuple[str, Labels, float, float]], None], energy: list[tuple[Reading, float]],
                  figures: Mapping[tuple[str, str], EmbodiedFigure | None], lifetime: float, g_per_j: float,
                  m_per_j: float | None, seconds: float, now_wall: float) -> float:
    """The per-device additions of one interval, staged in order, and the node's joules: each reading's
    energy; for one in the node total its emissions, its marginal emissions (`m_per_j` set) and its embodied
    grams (`figures`: every such device's, None for none). Twin of _fastledger.stage_energy, which the
    accountant calls where it is built (tests/unit/test_fastledger.py holds them equal)."""
    node_joules = 0.0
    for r, joules in energy:
        stage((ENERGY, (r.component, r.device, r.source), joules, now_wall))
        if r.in_node_total:
            key = r.key
            figure = figures[key]
            node_joules += joules
            stage((EMISSIONS, key, joules * g_per_j, now_wall))
            if m_per_j is not None:
                stage((MARGINAL_EMISSIONS, key, joules * m_per_j, now_wall))
            if figure is not None and seconds > 0:
                stage((EMBODIED, key, amortised_grams(figure.kgco2e, seconds, lifetime), now_wall))
    return node_joules


def stage_shares(stage: Callable[[tuple[str, Labels, float, float]], None], shares: list[WorkloadShare],
                 scale: float, g_per_j: float, now_wall: float) -> float:
    """One device's shares of a window staged in order, two additions each (the consumer's energy for
    the component, its emissions at the window's grams per joule), and the joules handed out. Twin of
    _fastledger.stage_shares, which the accountant calls where it is built (tests/unit/test_fastledger.py
    holds them equal): ~2,400 shares a pass with 200 pods."""
    attributed = 0.0
    for consumer, component, _, share_joules in shares:
        j = share_joules * scale
        attributed += j
        labels = consumer.energy_series.get(component) or consumer.energy_labels(component)  # a call once
        stage((consumer.energy_metric, labels, j, now_wall))
        stage((consumer.emissions_metric, consumer.labels, j * g_per_j, now_wall))
    return attributed


class Accountant:
    def __init__(self, settings: Settings, embodied: EmbodiedModel | None = None,
                 marginal: Callable[[], IntensityReading | None] | None = None) -> None:
        """`marginal` gives a fresh marginal value or None; set, it drives the marginal counter
        (`--grid.accounting-signal=marginal`)."""
        self.marginal = marginal if settings.grid_accounting_signal == "marginal" else None
        self.pue = settings.pue
        self.wue = settings.water_wue
        self.grid_water = settings.water_grid_intensity
        self.price = settings.cost_price_per_kwh
        self.currency = settings.cost_currency
        self.schedule = parse_schedule(settings.cost_schedule)
        self.embodied = embodied or EmbodiedModel(settings)
        self._figures: dict[tuple[str, str], EmbodiedFigure | None] = {}
        self.server_figure = self.embodied.figure("server", "")  # settled at start: no lookup per sample
        # The node's series, in account()'s order, for _fastledger.charge_sample.
        self._node_series = ((EMBODIED, ("server", "node")), (NODE_ENERGY, ()), (NODE_EMISSIONS, ()),
                             (UNCHARGED_ENERGY, ("marginal",)), (FACILITY_OVERHEAD, ()), (WATER, ("site",)),
                             (WATER, ("grid",)), (COST, (self.currency,)))

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

    def charge_gap(
        self,
        ledger: Ledger,
        recovered: Iterable[tuple[Labels, float]],
        energy: list[tuple[Reading, float]],
        seconds: float,
        intensity: IntensityReading,
        now_wall: float,
        attribution: bool,
    ) -> None:
        """Charge a restart gap, all or nothing like a sample: the joules the hardware counters say were
        drawn while the exporter was down go into the gap counter per (component, device), and `energy`
        (every device, so embodied emissions accrue for the downtime) is charged like one long interval.
        With attribution on, the gap's energy is unattributed: who drew it is gone with the old process."""
        with ledger.transaction():
            for key, joules in recovered:
                ledger.add(GAP_JOULES, key, joules, now_wall)
            self.account(ledger, energy, seconds, intensity, now_wall, [] if attribution else None)

    def rates(self, intensity: IntensityReading, seconds: float,
              now_wall: float) -> tuple[float, float | None, float | None, bool, float | None]:
        """What charging an interval takes besides its energy: grams a joule (average, and marginal or None),
        the server's embodied grams over `seconds` (None without a figure), whether the marginal counter
        goes uncharged (marginal accounting on, no fresh marginal value) and the price now (None: none)."""
        if intensity.signal != "average":
            raise ValueError(f"{EMISSIONS} takes the average signal only, not {intensity.signal}")
        g_per_j = self.pue * intensity.value / JOULES_PER_KWH
        marginal = self.marginal() if self.marginal is not None else None
        if marginal is not None and marginal.signal != "marginal":
            marginal = None  # never an average in the marginal counter
        m_per_j = None if marginal is None else self.pue * marginal.value / JOULES_PER_KWH
        server = None if self.server_figure is None or seconds <= 0 else self.embodied.grams(
            self.server_figure, seconds)
        price = self.price_at(now_wall) if self.schedule else self.price  # price_at's answer without a schedule
        return g_per_j, m_per_j, server, self.marginal is not None and m_per_j is None, price

    def charging(self, ledger: Ledger) -> tuple[object, ...]:
        """What _fastledger.charge_steady charges `ledger` with besides a sample's own numbers (the rest of
        charge_sample's arguments, fixed at start; the ledger's dicts are never replaced)."""
        return (ledger.totals, ledger.created, self._figures, float(self.embodied.lifetime), _DEVICE_METRICS,
                self._node_series, self.pue, self.wue, self.grid_water)

    def charge(self, ledger: Ledger, energy: list[tuple[Reading, float]], seconds: float,
               intensity: IntensityReading, now_wall: float) -> bool:
        """account() for a sample with nothing else to charge (no rejection, no attribution), outside any
        transaction: added into the ledger at once, all or nothing as a transaction would add it, in C
        (_fastledger.charge_sample, in account()'s order and arithmetic). False: nothing was added (the C
        twins not built, or a case they hand back: a device's first sight, a bad amount); the caller then
        charges it with account() in a transaction. Why: the transaction and the staged additions were a
        dozen cold Python frames in a 1 Hz sample (bench/README.md)."""
        if _fastledger is None:
            return False
        g_per_j, m_per_j, server, uncharged, price = self.rates(intensity, seconds, now_wall)
        made = _fastledger.charge_sample(
            ledger.totals, ledger.created, energy, self._figures, float(self.embodied.lifetime), g_per_j, m_per_j,
            seconds, now_wall, _DEVICE_METRICS, self._node_series, server, uncharged, self.pue, self.wue,
            self.grid_water, price)
        if made is None:
            return False
        ledger.layout += made
        return True

    def account(
        self,
        ledger: Ledger,
        energy: list[tuple[Reading, float]],
        seconds: float,
        intensity: IntensityReading,
        now_wall: float,
        shares: list[WorkloadShare] | None = None,
        window: AttributionWindow | None = None,
    ) -> None:
        """Charge one interval: `energy` holds each reading with its delta joules over `seconds`.

        `shares` attributes this interval now; `window` (attribution on its own cadence) instead
        collects the devices' joules and grams for the next `attribute()`. With neither, attribution
        is off and no unattributed series are written. (A sample with nothing else to charge goes
        through charge() first.)
        """
        g_per_j, m_per_j, server, uncharged, price = self.rates(intensity, seconds, now_wall)
        ops = ledger.staging()
        lifetime = float(self.embodied.lifetime)
        if shares is not None:
            window = AttributionWindow()
        stage = ops.append if ops is not None else (lambda op: ledger.add(*op))
        node_joules = None if ops is None or _fastledger is None else _fastledger.stage_energy(
            ops, energy, self._figures, lifetime, g_per_j, m_per_j, seconds, now_wall, _DEVICE_METRICS)
        if node_joules is None:  # not built, outside a transaction, or a case it hands back (a first sight)
            for r, _ in energy:
                if r.in_node_total and r.key not in self._figures:
                    self.embodied_figure(r.component, r.device, r.info.get("model", ""))
            node_joules = stage_devices(stage, energy, self._figures, lifetime, g_per_j, m_per_j, seconds, now_wall)
        if window is not None:
            for r, joules in energy:
                if r.in_node_total:
                    window.add(r, joules, joules * g_per_j)
        if server is not None:
            stage((EMBODIED, ("server", "node"), server, now_wall))
        stage((NODE_ENERGY, (), node_joules, now_wall))
        stage((NODE_EMISSIONS, (), node_joules * g_per_j, now_wall))
        if uncharged:
            stage((UNCHARGED_ENERGY, ("marginal",), node_joules, now_wall))
        facility_joules = node_joules * self.pue
        stage((FACILITY_OVERHEAD, (), facility_joules - node_joules, now_wall))
        if self.wue is not None:
            stage((WATER, ("site",), node_joules / JOULES_PER_KWH * self.wue, now_wall))
        if self.grid_water is not None:
            stage((WATER, ("grid",), facility_joules / JOULES_PER_KWH * self.grid_water, now_wall))
        if price is not None:
            stage((COST, (self.currency,), facility_joules / JOULES_PER_KWH * price, now_wall))
        if shares is not None and window is not None:
            self.attribute(ledger, window, shares, now_wall)

    def attribute(
        self, ledger: Ledger, window: AttributionWindow, shares: list[WorkloadShare], now_wall: float
    ) -> None:
        """Consumers get their shares of the window; the rest of each device's joules is unattributed.

        Grams follow joules: a consumer gets its fraction of the device's joules times the window's
        grams (which carry each sample's own intensity), so energy and grams are both conserved.
        The additions (two per share: ~4,800 with 200 pods) go to the ledger in one call, all or none;
        then the window is empty.
        """
        by_device: dict[tuple[str, str], list[WorkloadShare]] = defaultdict(list)
        for share in shares:
            by_device[(share.component, share.device)].append(share)
        ops: list[tuple[str, Labels, float, float]] = []
        add = ops.append
        for key, pending in window.devices.items():
            joules, grams = pending.joules, pending.grams
            device_shares = by_device.pop(key, [])
            handed_out = sum(s.joules for s in device_shares)
            scale = 1.0
            if handed_out > joules > 0 or (handed_out > 0 and joules <= 0):
                log.warning("attribution handed out more than the device drew; scaling down",
                            extra={"component": key[0], "device": key[1]})
                scale = joules / handed_out if handed_out > 0 else 0.0
            g_per_j = grams / joules if joules > 0 else 0.0
            attributed = None if _fastledger is None else _fastledger.stage_shares(
                ops, device_shares, scale, g_per_j, now_wall)
            if attributed is None:
                attributed = stage_shares(add, device_shares, scale, g_per_j, now_wall)
            rest = max(joules - attributed, 0.0)
            add((UNATTRIBUTED_ENERGY, key, rest, now_wall))
            add((UNATTRIBUTED_EMISSIONS, key, rest * g_per_j, now_wall))
        ledger.add_all(ops)
        for pending in window.devices.values():
            pending.joules = pending.grams = 0.0

    def forget(self, ledger: Ledger, consumer: AnyConsumer) -> None:
        """A consumer's grace period ended: its series leave (the node totals keep its energy)."""
        n = len(consumer.labels)
        for labels in [k for k in ledger.series(consumer.energy_metric) if k[:n] == consumer.labels]:
            ledger.remove(consumer.energy_metric, labels)
        ledger.remove(consumer.emissions_metric, consumer.labels)

