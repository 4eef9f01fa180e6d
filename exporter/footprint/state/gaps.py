"""The restart-gap rule: how much energy a saved counter says was drawn while the exporter was down."""

from __future__ import annotations

import math
from typing import Protocol

from footprint.accounting.ledger import ceiling_watts, judge_delta
from footprint.grid.base import IntensityReading
from footprint.meters.base import Reading
from footprint.state.format import SavedCounter


class GapGrid(Protocol):
    """What the gap needs from the grid feed."""

    def accounting_intensity(self) -> IntensityReading: ...

    def settled(self) -> bool: ...


def judge_gap(saved: SavedCounter, r: Reading, seconds: float | None, rebooted: bool) -> tuple[float | None, str]:
    """Energy a hardware counter saw while the exporter was down, or None, with the verdict's kind.

    `seconds` is the real time between the saved read and `r` (None: unknown); `rebooted` says the
    machine booted since (every counter restarted then, whatever its epoch says).
    """
    if not r.hardware_counter:
        return None, "not_a_counter"
    uuid = r.info.get("uuid", "")
    if saved.uuid and uuid and saved.uuid != uuid:
        return None, "other_device"
    restarted = rebooted or saved.epoch != r.counter_epoch
    if restarted and r.wrap_joules:
        return None, "rebooted"  # a wrapping counter's value at boot is not documented to be 0
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None, "unknown_length"
    v = judge_delta(saved.raw, r.energy_joules, seconds, ceiling_watts(r), r.wrap_joules, restarted)
    return v.joules, v.kind


HOW = {
    "ok": "exact",
    "wrap": "exact (one wrap)",
    "reset": "the counter restarted: energy since the restart only",
    "not_a_counter": "estimated energy is process-local: nothing is counted for the gap",
    "other_device": "another device (UUID) at this index: its counter is not the saved one",
    "rebooted": "the counter restarted (reboot) and wraps: the gap cannot be recovered",
    "unknown_length": "the gap's length is unknown (clock set back?)",
    "ambiguous_wrap": "the gap is long enough for the counter to have wrapped unseen",
    "not_read": "the device was not read within state.gap-wait",
}
