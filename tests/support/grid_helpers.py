"""Shared by the grid tests: a clock the test moves, and a feed built from real flags."""

from __future__ import annotations

import random
from pathlib import Path

from footprint import config
from footprint.exposition.grid import grid_families
from footprint.grid.feed import GridFeed
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_feed(clock: Clock, *flags: str, seed: int = 0) -> GridFeed:
    return GridFeed(config.load(["--grid.timeout=2s", *flags], env={}), clock=clock, rng=random.Random(seed))


def secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    return str(path)


class _Families:
    """The feed's families as the exporter builds them (exposition/grid.py from GridFeed.status())."""

    def __init__(self, feed: GridFeed) -> None:
        self.feed = feed

    def collect(self) -> list[Metric]:
        return grid_families(self.feed.status())


def exposition(feed: GridFeed) -> str:
    registry = CollectorRegistry()
    registry.register(_Families(feed))
    return generate_latest(registry).decode()


def samples(feed: GridFeed) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed from the rendered text like Prometheus would."""
    out = {}
    for family in text_string_to_metric_families(exposition(feed)):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(feed: GridFeed, name: str, **labels: str) -> float | None:
    return samples(feed).get((name, tuple(sorted(labels.items()))))


TOKEN = "em-token-5ecret-abc123"
