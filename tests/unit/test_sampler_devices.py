"""The sampler's device bookkeeping against a plain model, sample by sample.

`Sampler._read_meters` skips the bookkeeping (which meters are up, first sights, each device's last good
reading, devices known but not read) in a sample like the last. This checks, over random runs, that the
published state is what the plain rule gives every sample: a meter is up when its read returned; a known
device keeps its newest good reading; a device known but not read now is lost with that reading; a device
down is named by the component it was first read as (else its meter's default).

The meters here are scripted: each sample one returns the readings of a chosen set of its devices and
names others down, raises MeterError (a device or driver failing), or raises anything else (a bug). Those
are the outcomes every real meter has; how the NVML, RAPL and amdsmi meters reach them is tested in their
own modules against the fake libraries and sysfs trees.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from footprint import config
from footprint.accounting.accountant import Accountant
from footprint.accounting.ledger import Ledger
from footprint.meters.base import Meter, MeterError, Reading
from footprint.sampler import DEFAULT_COMPONENT, Sampler
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fixed_grid import FixedGrid

DEVICES = {"nvml": [("gpu", "0"), ("gpu", "1")], "rapl": [("cpu", "package-0"), ("dram", "package-0")],
           "estimate": [("cpu", "package-1")]}

# One meter's turn: (devices read, devices named down), else "error" (MeterError) or "bug" (RuntimeError).
# Reads are drawn three times as often as failures, and each turn of all three meters is taken one to
# three samples running: runs of samples alike are the case the sampler takes a short way through.
reads = st.tuples(st.frozensets(st.integers(0, 1)), st.frozensets(st.integers(0, 1)))
Turn = str | tuple[frozenset[int], frozenset[int]]
turn = st.one_of(reads, reads, reads, st.sampled_from(["error", "bug"]))


class ScriptedMeter:
    def __init__(self, name: str) -> None:
        self.name = name
        self.script: Turn = (frozenset(), frozenset())
        self.down: Mapping[str, str] = {}
        self.energy = 0.0
        self.last_read: list[Reading] = []  # what the last read returned

    def read(self) -> list[Reading]:
        if self.script == "error":
            self.down = {}
            raise MeterError("driver gone")
        if self.script == "bug":
            self.down = {}
            raise RuntimeError("a bug")
        assert not isinstance(self.script, str)
        read, down = self.script
        self.energy += 10.0
        devices = DEVICES[self.name]
        self.down = {devices[i][1]: "unreadable" for i in sorted(down) if i < len(devices) and i not in read}
        self.last_read = [Reading(devices[i][0], devices[i][1], self.name, self.energy)
                          for i in sorted(read) if i < len(devices)]
        return self.last_read

    def down_devices(self) -> Mapping[str, str]:
        return self.down

    def doctor_lines(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


@settings(max_examples=150)
@given(st.lists(st.tuples(st.tuples(turn, turn, turn), st.integers(1, 3)), min_size=1, max_size=8))
def test_state_is_the_plain_rule_every_sample(
        tmp_path_factory: pytest.TempPathFactory,
        runs: list[tuple[tuple[Turn, Turn, Turn], int]]) -> None:
    meters = [ScriptedMeter(name) for name in DEVICES]
    settings_ = config.load([f"--path.procfs={tmp_path_factory.mktemp('proc')}"], env={})
    ticks = iter(float(k) for k in range(10_000))
    sampler = Sampler(list[Meter](meters), Ledger(), Accountant(settings_), FixedGrid(300.0, "DE"), 1.0,
                      clock=lambda: next(ticks), wall=lambda: 1.7e9)
    known: dict[tuple[str, str], Reading] = {}
    components: dict[tuple[str, str], str] = {}
    for step in [step for step, times in runs for _ in range(times)]:
        for meter, script in zip(meters, step, strict=True):
            meter.script = script
        sampler.sample()
        state = sampler.state
        read = [r for meter in meters if not isinstance(meter.script, str) for r in meter.last_read]
        assert [r.key for r in state.readings] == [r.key for r in read]
        assert dict(state.meter_up) == {m.name: not isinstance(m.script, str) for m in meters}
        for r in read:  # a device's first sight says which component it is when down (the last one read wins)
            if r.key not in known:
                components[(r.source, r.device)] = r.component
        known.update({r.key: r for r in state.readings})
        assert dict(state.lost_devices) == {k: r for k, r in known.items() if k not in {r.key for r in read}}
        assert state.known_devices == known
        want_down = {(components.get((m.name, d), DEFAULT_COMPONENT[m.name]), d): why
                     for m in meters for d, why in m.down.items()}
        assert dict(state.device_down) == want_down
