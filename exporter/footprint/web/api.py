"""/api/v1/summary and /api/v1/history: what the live page shows, as JSON (docs/api.md).

A request takes the ledger's node totals and the history's mark of the latest charged sample in one hold
of the ledger lock (`LiveView._catch_up`), so the energy figures of one summary belong to one sample,
and reads the grid feed's payload and the top workloads: no I/O. Between requests, the sampler thread
records only the samples that may end a history step (`LiveView.sampled`). Sizes are bounded:
MAX_DEVICES devices, TOP_WORKLOADS workloads, FORECAST_POINTS forecast hours, history.POINTS points a
series.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from footprint import __version__
from footprint.accounting.accountant import (
    EMBODIED,
    ENERGY,
    NODE_EMISSIONS,
    NODE_ENERGY,
    WORKLOAD_EMISSIONS,
    WORKLOAD_ENERGY,
)
from footprint.accounting.ledger import Ledger
from footprint.grid.feed import upcoming
from footprint.sampler import Sample, Sampler
from footprint.web.history import MAX_SERIES, SECONDS_PER_DAY, Mark, PowerHistory, Totals
from footprint.web.runs import RecentRuns

log = logging.getLogger("footprint.api")

API_VERSION = 1
MAX_DEVICES = MAX_SERIES
TOP_WORKLOADS = 10
FORECAST_POINTS = 48
LOOKAHEAD_SAMPLES = 1.5  # a sample this many sample intervals before the end of its history step may be its last

# What a `source` says about the number: read from a hardware energy counter, hardware power
# integrated over time by the exporter, or modelled (CPU utilisation x configured watts).
PROVENANCE = {"nvml": "measured", "rapl": "measured", "nvml_power": "integrated", "estimate": "estimated"}
_RANK = {"measured": 0, "integrated": 1, "estimated": 2}


def provenance(source: str) -> str:
    """Unknown sources count as estimated: never claim a measurement we cannot vouch for."""
    return PROVENANCE.get(source, "estimated")


def _num(value: float | None, digits: int | None = None) -> float | None:
    """A finite number (times rounded to the millisecond), else None: NaN and inf are not JSON."""
    if value is None or not math.isfinite(value):
        return None
    return float(value) if digits is None else round(value, digits)


class PageFigures(NamedTuple):
    """The latest charged sample as the page shows it, taken when a page asks. A tuple, like Totals."""

    number: int
    at: float
    node_watts: float | None  # None before the first interval (the first sample is a baseline)
    sample: Sample
    lifetime: Totals
    lifetime_since: float | None
    embodied_grams: float
    started: Totals
    today: Totals


_totals = partial(tuple.__new__, Totals)
_mark = partial(tuple.__new__, Mark)
_figures = partial(tuple.__new__, PageFigures)


@dataclass
class LiveView:
    """Summary and history of this exporter, for the live page and its JSON API."""

    sampler: Sampler
    ledger: Ledger
    history: PowerHistory
    grid_payload: Callable[[], dict[str, Any]]
    pue: float
    attribution: bool
    runs: RecentRuns = field(default_factory=lambda: RecentRuns(""))
    started_at: float = field(default_factory=time.time)
    wall: Callable[[], float] = time.time
    _quiet_until: float = -math.inf  # a sample before this wall time cannot be the last of its step or day

    def sampled(self) -> None:
        """After each sample (sampler thread). Only a sample that may be the last of its history step or of
        the UTC day is recorded (`_quiet_until`): the history measures a step between such marks, and a
        request brings it up to the latest sample itself (`_catch_up`), so most samples return at once
        (a record copies ledger series on cold caches: ~15 % of a 1 Hz sample). A bug here must not stop
        sampling: it is logged and the page catches up at the next request."""
        try:
            at = self.wall()
            if at < self._quiet_until:
                return
            self._quiet_until = self._end_of_quiet(at)
            if at >= self._quiet_until or self.history.started is None:
                self._catch_up()
        except Exception:
            log.exception("live page: recording the sample failed")

    def _end_of_quiet(self, at: float) -> float:
        """From when a sample may be the last of the step (or the day) `at` is in: the next sample is due
        an interval later, and may be half an interval late. A later sample can still be the last (a
        stall): the step then ends at its last recorded mark, or is a gap where it has none (history.py)."""
        ends = min((math.floor(at / self.history.step) + 1) * self.history.step,
                   (math.floor(at / SECONDS_PER_DAY) + 1) * SECONDS_PER_DAY)
        return ends - LOOKAHEAD_SAMPLES * self.sampler.interval

    def _catch_up(self) -> PageFigures | None:
        """The latest charged sample as the page shows it, recorded into the history (the mark of a sample
        counts once, however often it is recorded); None before the first sample. The ledger's figures and
        the mark are taken in one hold of its lock. The power figures are the published sample's: a request
        that meets a sample between its charge and its publication sees that sample's energy with the power
        of the one before, as a scrape at that moment does. The tuples are made by tuple.__new__: a
        NamedTuple's own __new__ is a Python frame each."""
        ledger = self.ledger
        with ledger.lock:
            at = self.sampler.charged_at
            if at is None:
                return None
            state: Sample = self.sampler.state
            totals = _totals((at, ledger.get(NODE_ENERGY), ledger.get(NODE_EMISSIONS)))
            devices = dict(ledger.series(ENERGY))  # one C-level copy: the history divides once a step
            since = ledger.created_series(NODE_ENERGY).get(())
            embodied = float(sum(ledger.series(EMBODIED).values()))
            started, today = self.history.record(_mark((totals, devices, state.power)))
        if started is None or today is None:  # no mark with a finite time recorded yet
            return None
        return _figures((state.samples, at, state.node_watts, state, totals, since, embodied, started, today))

    def summary(self) -> dict[str, Any]:
        snap = self._catch_up()
        now = self.wall()
        out: dict[str, Any] = {
            "version": API_VERSION,
            "generated_at": _num(now, 3),
            "exporter": {"version": __version__, "started_at": _num(self.started_at, 3),
                         "sample_interval_seconds": self.sampler.interval},
            "sample": None,
            "power": None,
            "energy": None,
            "embodied": None,
            "pue": {"ratio": self.pue, "provenance": "configured"},
            "grid": grid_summary(self.grid_payload(), now),
            "workloads": self._workloads(),
            "runs": self.runs.payload(),
        }
        if snap is None:
            return out
        out["sample"] = {"number": snap.number, "at": _num(snap.at, 3)}
        every = _devices(snap.sample, snap.sample.known_devices)
        devices = every[:MAX_DEVICES]
        provenances = {d["provenance"] for d in devices if d["in_node_total"] and d["watts"] is not None}
        out["power"] = {
            "unit": "W",
            "node_watts": _num(snap.node_watts),
            "node_provenance": max(provenances, key=_RANK.__getitem__) if provenances else None,
            "devices": devices,
            "devices_dropped": max(0, len(every) - MAX_DEVICES),
        }

        def since(base: Totals | None, at: float | None) -> dict[str, Any]:
            energy = snap.lifetime.energy_joules - (base.energy_joules if base else 0.0)
            grams = snap.lifetime.emissions_grams - (base.emissions_grams if base else 0.0)
            return {"since": _num(at, 3), "energy_joules": _num(max(energy, 0.0)),
                    "emissions_grams": _num(max(grams, 0.0))}

        out["energy"] = {
            "energy_unit": "J",
            "emissions_unit": "gCO2e",
            "emissions_provenance": "computed",  # energy x PUE x grid intensity of each interval
            "lifetime": since(None, snap.lifetime_since),
            "since_start": since(snap.started, snap.started.at),
            "today": since(snap.today, snap.today.at),
        }
        operational = snap.lifetime.emissions_grams
        total = operational + snap.embodied_grams
        out["embodied"] = {
            "unit": "gCO2e",
            "provenance": "estimated",  # manufacturing figures amortised over the lifetime
            "grams_total": _num(snap.embodied_grams),
            "share": _num(snap.embodied_grams / total) if total > 0 else None,
        }
        return out

    def history_payload(self) -> dict[str, Any]:
        self._catch_up()  # the step in progress ends at the latest sample
        snap = self.history.snapshot()
        devices: list[dict[str, Any]] = snap["devices"]
        for d in devices:
            d["provenance"] = provenance(d["source"])
        return {"version": API_VERSION, "unit": "W", **snap, "devices": devices[:MAX_DEVICES],
                "dropped_series": self.history.dropped_series}

    def _workloads(self) -> dict[str, Any]:
        if not self.attribution:
            return {"enabled": False, "count": 0, "top": []}
        energy: dict[tuple[str, ...], float] = {}
        with self.ledger.lock:
            for labels, joules in self.ledger.series(WORKLOAD_ENERGY).items():
                energy[labels[:4]] = energy.get(labels[:4], 0.0) + joules
            grams = dict(self.ledger.series(WORKLOAD_EMISSIONS))
        top = heapq.nlargest(TOP_WORKLOADS, energy.items(), key=lambda kv: (kv[1], kv[0]))
        return {
            "enabled": True,
            "count": len(energy),
            "energy_unit": "J",
            "emissions_unit": "gCO2e",
            "top": [
                {"namespace": k[0], "pod": k[1], "container": k[2], "workload": k[3],
                 "energy_joules": _num(j), "emissions_grams": _num(grams.get(k, 0.0))}
                for k, j in top
            ],
        }


def _devices(state: Sample, known: Mapping[tuple[str, str], Any]) -> list[dict[str, Any]]:
    """Every device's line: the ones with power first, then those known without (down, first sample)."""
    in_total = {r.key for r in state.readings if r.in_node_total}
    current = {r.key: r for r in state.readings}
    devices = []
    seen = set()
    for (component, device, source), watts in sorted(state.power.items()):
        seen.add((component, device))
        r = current.get((component, device))
        devices.append({
            "component": component, "device": device, "source": source, "provenance": provenance(source),
            "model": r.info.get("model", "") if r else "", "up": (component, device) not in state.device_down,
            "in_node_total": (component, device) in in_total, "watts": _num(watts),
        })
    for key in sorted(set(known) | set(state.device_down)):
        if key in seen:
            continue
        r = known.get(key)
        devices.append({
            "component": key[0], "device": key[1], "source": r.source if r else "",
            "provenance": provenance(r.source) if r else "estimated", "model": r.info.get("model", "") if r else "",
            "up": key in current and key not in state.device_down,
            "in_node_total": bool(r.in_node_total) if r else True, "watts": None,
        })
    return devices


def grid_summary(payload: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The intensity in use, the chain's state and the forecast ahead, from /api/v1/grid's payload."""
    acc = payload.get("accounting") or {}
    marginal = payload.get("marginal")
    chain = payload.get("chain") or []
    forecast_provider, points = None, []
    candidates = [acc] + [r for slot in chain for r in slot.get("readings", [])
                          if r.get("signal") == acc.get("signal")]
    for reading in candidates:
        if reading.get("forecast"):
            forecast_provider, points = reading.get("provider"), reading["forecast"]
            break
    ahead, greenest = forecast_ahead(points, now)
    return {
        "unit": "gCO2e/kWh",
        "value": _num(acc.get("value")),
        "provider": acc.get("provider"),
        "signal": acc.get("signal"),
        "zone": acc.get("zone"),
        "estimated": bool(acc.get("estimated")),
        "published_at": _num(acc.get("published_at"), 3),
        "age_seconds": _num(acc.get("age_seconds"), 3),
        "fallback_active": bool(payload.get("fallback_active")),
        "marginal": None if not marginal else {
            "value": _num(marginal.get("value")), "provider": marginal.get("provider"),
            "age_seconds": _num(marginal.get("age_seconds"), 3),
        },
        "chain": [
            {"provider": s.get("provider"), "signal": s.get("signal"), "up": bool(s.get("up")),
             "last_error": s.get("last_error")}
            for s in chain[:16]
        ],
        "forecast": {"provider": forecast_provider if ahead else None, "points": ahead, "greenest": greenest},
    }


Forecast = tuple[list[dict[str, float]], dict[str, float] | None]


def forecast_ahead(points: Sequence[Mapping[str, Any]], now: float) -> Forecast:
    """Points not over yet within FORECAST_HOURS (at most FORECAST_POINTS), and the lowest of them: the
    greenest window, as footprint_grid_forecast_min_* has it (a point lasts until the next one starts)."""
    clean = sorted(
        (float(p["start"]), float(p["value"])) for p in points
        if isinstance(p.get("start"), (int, float)) and isinstance(p.get("value"), (int, float))
        and math.isfinite(p["start"]) and math.isfinite(p["value"])
    )
    ahead: list[dict[str, float]] = []
    best: dict[str, float] | None = None
    for start, end, value in upcoming(clean, now):
        if len(ahead) >= FORECAST_POINTS:
            break
        ahead.append({"start": start, "value": value})
        if best is None or value < best["value"]:
            best = {"start": start, "end": end, "value": value}
    return ahead, best
