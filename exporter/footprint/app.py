"""Wiring: build every part from the settings, in the one direction data flows, and run them."""

from __future__ import annotations

import importlib
import logging
import threading

from footprint.accounting.accountant import PROCESS_GROUP_ENERGY, WORKLOAD_ENERGY, Accountant
from footprint.accounting.ledger import Ledger
from footprint.attribution.base import Attributor
from footprint.config import Settings
from footprint.exposition.attribution import attribution_families
from footprint.exposition.grid import grid_families
from footprint.exposition.metrics import Exposition, Families, FootprintCollector
from footprint.exposition.state import checkpoint_families
from footprint.grid.feed import GridFeed
from footprint.meters.base import Meter
from footprint.meters.registry import detect
from footprint.sampler import Sampler
from footprint.state.checkpoint import Checkpointer
from footprint.web import page
from footprint.web.api import LiveView
from footprint.web.history import PowerHistory
from footprint.web.runs import RecentRuns
from footprint.web.server import Routes, Server

log = logging.getLogger("footprint")


def build_attributor(settings: Settings, meters: list[Meter]) -> Attributor | None:
    if not (settings.kubernetes_enabled or settings.attribution_processes):
        return None
    factory = importlib.import_module("footprint.attribution.factory")
    return factory.build(settings, meters)


class Exporter:
    """Every long-lived part of a running exporter. `start()` then `wait()`; `stop()` from a signal."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.detection = detect(settings)
        self.meters = self.detection.meters
        self.grid = GridFeed(settings)
        self.attributor = build_attributor(settings, self.meters)
        self.ledger = Ledger()
        self.accountant = Accountant(settings, marginal=self.grid.marginal)
        # Takes the state file's lock: a second exporter on the same file exits 2 here.
        self.checkpoint = Checkpointer(settings, self.ledger, self.accountant, self.attributor is not None,
                                       self.grid)
        self.exposition: Exposition | None = None
        self.sampler = Sampler(
            self.meters,
            self.ledger,
            self.accountant,
            self.grid,
            settings.sample_interval,
            attributor=self.attributor,
            on_sample=self._sampled,
            attribution_interval=settings.attribution_interval,
        )
        grid, checkpoint, attributor = self.grid, self.checkpoint, self.attributor
        extra: list[Families] = [lambda: grid_families(grid.status()),
                                 lambda: checkpoint_families(checkpoint.status())]
        if attributor is not None:
            extra.append(lambda: attribution_families(attributor.health()))
        self.checkpoint.pending = self.sampler.pending  # kept in each checkpoint: a kill -9 leaves it unattributed
        self.exposition = Exposition(FootprintCollector(self.sampler, settings.pue, extra),
                                     settings.web_enable_created_series)
        history = PowerHistory(max(settings.web_history_step, settings.sample_interval))
        self.live = LiveView(self.sampler, self.ledger, history, self.grid.api_payload, settings.pue,
                             self.attributor is not None, RecentRuns(settings.web_runs_file))
        self.server = Server(
            settings.web_listen_address,
            Routes(self.exposition, self.grid.api_payload, lambda: self.sampler.state.samples > 0,
                   page.pages(self.live)),
            settings.web_config_file,
        )
        self._done = threading.Event()

    def _sampled(self) -> None:
        # Before the sample becomes visible to scrapes; also settles a restart's gap, device by device.
        if self.checkpoint.path is not None:
            self.checkpoint.sampled(self.sampler.state.readings, self.sampler.followed)
        self.live.sampled()  # the live page's history, at the samples that may end a step
        if self.exposition is not None:
            self.exposition.invalidate()

    def start(self) -> None:
        self.grid.start()
        self.checkpoint.restore()  # totals and _created resume before the first sample
        if self.attributor is not None:  # restored workload series: capped and retired like live ones
            restored = [*self.ledger.series(WORKLOAD_ENERGY), *self.ledger.series(PROCESS_GROUP_ENERGY)]
            self.attributor.adopt(restored)
        self.sampler.sample()  # the first sample (a baseline) before the first scrape can arrive
        self.checkpoint.start()
        self.sampler.start()
        self.server.start()
        log.info(
            "listening",
            extra={"address": self.settings.web_listen_address, "meters": ",".join(m.name for m in self.meters)},
        )

    def wait(self) -> None:
        self._done.wait()

    def stop(self) -> None:
        self.server.stop()
        self.sampler.stop()
        self.checkpoint.stop()  # the final checkpoint, after the last sample
        self.grid.stop()
        if self.attributor is not None:
            self.attributor.close()
        for meter in self.meters:
            meter.close()
        self._done.set()
