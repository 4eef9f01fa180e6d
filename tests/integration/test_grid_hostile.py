"""A node exporter process fed by a broken or hostile peer keeps answering /metrics (issue 16).

Before: a forecast point with `start` NaN (Python's json reads NaN and +-Infinity) reached
`int(nan)` while /metrics was built, so every scrape of every node got no answer at all.
"""

from __future__ import annotations

import time

from tests.fakes.grid_servers import PeerFake, serving
from tests.support.exporter import start_exporter
from tests.support.promtext import parse

DROPPED = "footprint_grid_points_dropped_total"


def test_nan_and_infinite_forecast_starts_from_a_peer_are_dropped_and_counted() -> None:
    def payload() -> dict[str, object]:
        now = time.time()
        forecast = [{"start": float("nan"), "value": 100.0}, {"start": float("inf"), "value": 100.0},
                    {"start": float("-inf"), "value": 100.0}, {"start": now + 3600, "value": 120.0}]
        return {"version": 1, "marginal": None, "accounting": {
            "value": 250.0, "signal": "average", "provider": "electricitymaps", "zone": "DE", "published_at": now,
            "fetched_at": now, "estimated": False, "forecast": forecast}}

    with serving(PeerFake(payload)) as peer, start_exporter([
            "--no-meter.nvml", "--no-meter.rapl", "--grid.provider=peer", f"--grid.peer.url={peer.url}",
            "--grid.zone=DE", "--grid.refresh-interval=1s"]) as exp:
        key = (DROPPED, frozenset({"provider": "peer", "reason": "non_finite"}.items()))
        series = exp.wait_until(lambda text: s if (s := parse(text)).get(key, 0) >= 6 else None)
        assert series[("footprint_grid_forecast_min_grams_per_kilowatt_hour",
                       frozenset({"grid_zone": "DE", "provider": "peer", "signal": "average"}.items()))] == 120.0
        internal = ("footprint_grid_fetch_errors_total", frozenset({"provider": "peer", "reason": "internal"}.items()))
        assert series[internal] == 0 and "Traceback" not in exp.log()
