"""One run's footprint: `with footprint.track("run-42") as run: ...`, and the engine `measure` runs on.

In-process, a `Tracker` wires the exporter's own parts (meters.registry.detect, Ledger, Accountant,
GridFeed, Sampler) with a TreeAttributor whose only consumer is the run's process tree, so the run's
figures follow the exporter's rules exactly: workload energy is the run, unattributed energy is the
rest of the machine. With `source_url` (measure --from), a running exporter's counters are read
before and after instead (see exporter_counters.py) and the same attributor and accountant split
their increase over one window.

The ledger starts empty, so at the end its totals are the run's deltas; `settle()` turns them into a
`Run` (docs/measure.md names every field and column).
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from footprint import __version__, config
from footprint.accounting import accountant as acct
from footprint.accounting.accountant import JOULES_PER_KWH, Accountant, AttributionWindow
from footprint.accounting.ledger import Ledger
from footprint.config import ConfigError, Settings
from footprint.grid.base import IntensityReading
from footprint.grid.feed import GridFeed
from footprint.meters.base import Meter, MeterUnavailable, Reading
from footprint.meters.registry import detect
from footprint.sampler import Sampler
from footprint.tracking import exporter_counters, mlflow_log, runlog
from footprint.tracking.tree import RUN, ProcessTree, TreeAttributor

log = logging.getLogger("footprint.track")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


@dataclass
class IntensitySeen:
    """The intensities the accountant charged with during the run (each sample's, or the exporter's gauge)."""

    low: float | None = None
    high: float | None = None
    providers: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    first: tuple[float, str] | None = None
    changed: bool = False

    def add(self, value: float, provider: str, zone: str) -> None:
        self.low = value if self.low is None else min(self.low, value)
        self.high = value if self.high is None else max(self.high, value)
        self.providers.add(provider)
        if zone:
            self.zones.add(zone)
        if self.first is None:
            self.first = (value, provider)
        elif self.first != (value, provider):
            self.changed = True


class RecordingGrid:
    """The grid feed as the sampler sees it, remembering every value it hands out."""

    def __init__(self, grid: GridFeed) -> None:
        self.grid = grid
        self.seen = IntensitySeen()

    def accounting_intensity(self) -> IntensityReading:
        r: IntensityReading = self.grid.accounting_intensity()
        self.seen.add(r.value, r.provider, r.zone)
        return r


@dataclass
class Run:
    """A run's figures. Zero until the run ends; then every column of the run file (see `row()`)."""

    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    command: str = ""
    source: str = "in-process"
    source_url: str = ""
    host: str = field(default_factory=socket.gethostname)
    started_at: float = 0.0
    ended_at: float = 0.0
    exit_code: int | None = None
    energy_joules: float = 0.0
    gpu_joules: float = 0.0
    cpu_joules: float = 0.0
    dram_joules: float = 0.0
    pue: float = 1.0
    emissions_grams: float = 0.0
    intensity: IntensitySeen = field(default_factory=IntensitySeen)
    embodied_grams: float = 0.0
    water_liters: float | None = None
    cost: float | None = None
    cost_currency: str = ""
    rest_of_machine_energy_joules: float = 0.0
    rest_of_machine_emissions_grams: float = 0.0
    machine_energy_joules: float = 0.0
    machine_emissions_grams: float = 0.0
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    samples: int = 0
    footprint_version: str = __version__

    @property
    def duration_seconds(self) -> float:
        return max(self.ended_at - self.started_at, 0.0)

    @property
    def energy_kwh(self) -> float:
        return self.energy_joules / JOULES_PER_KWH

    @property
    def facility_energy_joules(self) -> float:
        return self.energy_joules * self.pue

    @property
    def intensity_grams_per_kwh(self) -> float | None:
        """Energy-weighted: the run's grams over its facility kWh (the one intensity seen if it drew nothing)."""
        if self.facility_energy_joules > 0:
            return self.emissions_grams / (self.facility_energy_joules / JOULES_PER_KWH)
        return self.intensity.low if self.intensity.low == self.intensity.high else None

    def row(self) -> dict[str, Any]:
        """The run file's columns (runlog.COLUMNS), typed."""
        return {
            "run_id": self.run_id, "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
            "duration_seconds": self.duration_seconds, "exit_code": self.exit_code, "command": self.command,
            "tags": dict(self.tags), "source": self.source, "source_url": self.source_url, "host": self.host,
            "energy_joules": self.energy_joules, "energy_kwh": self.energy_kwh, "gpu_joules": self.gpu_joules,
            "cpu_joules": self.cpu_joules, "dram_joules": self.dram_joules,
            "facility_energy_joules": self.facility_energy_joules, "pue": self.pue,
            "emissions_grams": self.emissions_grams, "intensity_grams_per_kwh": self.intensity_grams_per_kwh,
            "intensity_min_grams_per_kwh": self.intensity.low, "intensity_max_grams_per_kwh": self.intensity.high,
            "intensity_providers": ";".join(sorted(self.intensity.providers)),
            "intensity_changed": self.intensity.changed, "embodied_grams": self.embodied_grams,
            "water_liters": self.water_liters, "cost": self.cost, "cost_currency": self.cost_currency,
            "rest_of_machine_energy_joules": self.rest_of_machine_energy_joules,
            "rest_of_machine_emissions_grams": self.rest_of_machine_emissions_grams,
            "machine_energy_joules": self.machine_energy_joules,
            "machine_emissions_grams": self.machine_emissions_grams, "devices": self.devices,
            "samples": self.samples, "footprint_version": self.footprint_version,
        }


def settle(run: Run, ledger: Ledger, by_device: Mapping[tuple[str, str], float], pue: float) -> None:
    """Fill `run` from a ledger that holds only the run's interval, and the attributor's per-device shares."""
    run.pue = pue
    in_node = set(ledger.series(acct.EMISSIONS))  # only devices in the node total get emissions
    run.devices = {}
    for (component, device, source), joules in sorted(ledger.series(acct.ENERGY).items()):
        entry = run.devices.setdefault(f"{component}/{device}", {"source": source, "joules": 0.0, "run_joules": 0.0})
        entry["joules"] += joules
        entry["in_node_total"] = (component, device) in in_node
        entry["run_joules"] = by_device.get((component, device), 0.0)
    workload = ledger.series(acct.WORKLOAD_ENERGY)
    by_component = {labels[-1]: v for labels, v in workload.items() if labels[:4] == RUN.labels}
    run.gpu_joules = by_component.get("gpu", 0.0)
    run.cpu_joules = by_component.get("cpu", 0.0)
    run.dram_joules = by_component.get("dram", 0.0)
    run.energy_joules = sum(by_component.values())
    run.emissions_grams = ledger.get(acct.WORKLOAD_EMISSIONS, RUN.labels)
    run.machine_energy_joules = ledger.get(acct.NODE_ENERGY)
    run.machine_emissions_grams = ledger.get(acct.NODE_EMISSIONS)
    run.rest_of_machine_energy_joules = max(run.machine_energy_joules - run.energy_joules, 0.0)
    run.rest_of_machine_emissions_grams = max(run.machine_emissions_grams - run.emissions_grams, 0.0)
    node_share = run.energy_joules / run.machine_energy_joules if run.machine_energy_joules > 0 else 0.0
    embodied = 0.0
    for (component, device), grams in ledger.series(acct.EMBODIED).items():
        if (component, device) == ("server", "node"):
            embodied += grams * node_share
        else:
            drawn = run.devices.get(f"{component}/{device}", {}).get("joules", 0.0)
            embodied += grams * by_device.get((component, device), 0.0) / drawn if drawn > 0 else 0.0
    run.embodied_grams = embodied
    water = ledger.series(acct.WATER)
    run.water_liters = sum(water.values()) * node_share if water else None
    cost = ledger.series(acct.COST)
    if cost:
        (currency,), total = next(iter(cost.items()))
        run.cost, run.cost_currency = total * node_share, currency
    else:
        run.cost, run.cost_currency = None, ""


def default_name(now: float) -> str:
    return "run-" + datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def mlflow_wanted(flag: bool | None, env: Mapping[str, str] = os.environ) -> bool:
    return flag if flag is not None else bool(env.get("MLFLOW_TRACKING_URI"))


class Tracker:
    """Measures one run: `start()`, the work, `stop()`. `tree.root` is the process whose tree is the run."""

    def __init__(
        self,
        name: str | None = None,
        *,
        args: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        settings: Settings | None = None,
        source_url: str = "",
        output: str | None = None,
        mlflow: bool | None = None,
        root: int | None = None,
        reaped_by_us: bool = False,
        command: Sequence[str] = (),
    ) -> None:
        self.settings = settings if settings is not None else config.load(list(args))
        self.run = Run(name or default_name(time.time()), dict(tags or {}), shlex.join(command) if command else "")
        self.output = output
        if output:
            runlog.check(output)
        self.mlflow = mlflow_wanted(mlflow)
        if self.mlflow:
            try:
                mlflow_log.require()
            except ConfigError:
                if mlflow is True:
                    raise
                log.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed: the run is not logged there")
                self.mlflow = False
        self.tree = ProcessTree(root, reaped_by_us)
        self.ledger = Ledger()
        self.accountant = Accountant(self.settings)
        self._source_url = source_url.rstrip("/")
        self._grid: GridFeed | None = None
        self._before = exporter_counters.Counters()
        self._started_mono = 0.0
        if self._source_url:
            self.run.source, self.run.source_url = "exporter", self._source_url
            self._meters = self._gpu_process_meters()
        else:
            self._grid = GridFeed(self.settings)
            self._meters = detect(self.settings).meters
        self.attributor = TreeAttributor(self.tree, list(self._meters), self.settings.path_procfs)
        self._sampler: Sampler | None = None
        if self._grid is not None:
            recording = RecordingGrid(self._grid)
            self.run.intensity = recording.seen
            self._sampler = Sampler(
                self._meters, self.ledger, self.accountant, recording, self.settings.sample_interval,
                attributor=self.attributor, attribution_interval=self.settings.attribution_interval,
            )

    def _gpu_process_meters(self) -> list[Meter]:
        """With --from: NVML only for its per-process utilisation (its energy comes from the exporter)."""
        if not self.settings.meter_nvml:
            return []
        try:
            from footprint.meters.registry import nvml_meter

            return [nvml_meter(self.settings)]
        except MeterUnavailable:
            return []

    def start(self) -> None:
        """The baseline (the first sample, or the exporter's counters) is taken here."""
        self.run.started_at = time.time()
        self._started_mono = time.monotonic()
        if self._source_url:
            self._before = exporter_counters.scrape(self._source_url, self.settings.grid_timeout)
            self.attributor.split([], 0.0)
            return
        assert self._grid is not None and self._sampler is not None
        self._grid.refresh_due()  # the chain's first values, so the first sample is not charged at the fallback
        self._grid.start()
        self._sampler.sample()
        self._sampler.start()

    def stop(self, exit_code: int | None = None) -> Run:
        """End the run (a last sample, the last attribution pass), fill `self.run`, write and log it."""
        run = self.run
        run.exit_code = exit_code
        if self._source_url:
            self._settle_from_exporter()
        else:
            assert self._grid is not None and self._sampler is not None
            self._sampler.stop()
            self._grid.stop()
            for meter in self._meters:
                meter.close()
            run.ended_at = time.time()
            run.samples = self._sampler.state.samples
            settle(run, self.ledger, self.attributor.by_device, self.settings.pue)
        if self.output:
            runlog.write_row(self.output, run.row())
        if self.mlflow:
            try:
                mlflow_log.log_run(run)
            except Exception as exc:  # the tracking server is down: the run's figures are still returned
                log.warning("the run could not be logged to MLflow: %s", exc)
        return run

    def _settle_from_exporter(self) -> None:
        after = exporter_counters.scrape(self._source_url, self.settings.grid_timeout)
        run = self.run
        run.ended_at = time.time()
        seconds = time.monotonic() - self._started_mono
        run.samples = 2
        now = run.ended_at
        increase = exporter_counters.increase(self._before, after)
        for (metric, labels), amount in increase.items():
            self.ledger.add(metric, labels, amount, now)
        window = AttributionWindow()
        for (component, device), grams in self.ledger.series(acct.EMISSIONS).items():
            joules = sum(v for (c, d, _), v in self.ledger.series(acct.ENERGY).items() if (c, d) == (component, device))
            window.add(Reading(component, device, "exporter", 0.0), joules, grams)
        shares = self.attributor.split(window.deltas(), seconds)
        self.accountant.attribute(self.ledger, window, shares, now)
        for r in (self._before, after):
            for value, provider, zone in r.intensities:
                run.intensity.add(value, provider, zone)
        for meter in self._meters:
            meter.close()
        settle(run, self.ledger, self.attributor.by_device, after.pue if after.pue is not None else 1.0)


@contextmanager
def track(
    name: str | None = None,
    *,
    tags: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    output: str | None = None,
    mlflow: bool | None = None,
    source_url: str = "",
) -> Iterator[Run]:
    """Measure the block: the calling process and its children are the run, the rest of the machine apart.

    `args` are exporter settings as flags (`["--grid.zone=DE", "--pue=1.2"]`); FOOTPRINT_* variables
    apply as for the exporter. The Run's figures are filled in when the block ends, also when it raises.
    Raises ConfigError for bad settings.
    """
    tracker = Tracker(name, args=args, tags=tags, output=output, mlflow=mlflow, source_url=source_url,
                      root=os.getpid())
    tracker.start()
    try:
        yield tracker.run
    finally:
        tracker.stop()


__all__ = ["ConfigError", "Run", "Tracker", "track"]
