"""A meter test's rig over a C fake (tests/fakes/nvml, tests/fakes/amdsmi): one scenario file, the
fake's clock, which the meter reads too (so sampling times are exact and nothing sleeps), and the
meters made on it, closed after the test."""

from __future__ import annotations

from pathlib import Path
from typing import Generic, Protocol, TypeVar


class ScenarioFile(Protocol):
    time: float | None

    def write(self, path: Path) -> None: ...


class Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=ScenarioFile)
M = TypeVar("M", bound=Closable)


class MeterRig(Generic[S, M]):
    """Subclasses say how to make their meter on `self.clock` (`make`)."""

    def __init__(self, path: Path, scenario: S) -> None:
        self.path = path
        self.scenario = scenario
        self.meters: list[M] = []

    def set(self, **changes: object) -> S:
        for key, value in changes.items():
            setattr(self.scenario, key, value)
        self.scenario.write(self.path)
        return self.scenario

    def at(self, t: float) -> None:
        self.set(time=t)

    def clock(self) -> float:
        assert self.scenario.time is not None
        return self.scenario.time

    def make(self) -> M:
        raise NotImplementedError

    def meter(self) -> M:
        meter = self.make()
        self.meters.append(meter)
        return meter

    def close(self) -> None:
        for meter in self.meters:
            meter.close()
