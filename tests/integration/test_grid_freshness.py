"""Issue 16, through the real exporter and a real peer (a grid pod's /api/v1/grid over HTTP): a value
published in the future (the grid pod's clock, or this node's a day behind) or at NaN must not stay in
use forever once the peer dies. It used to: age = max(0, now - t) = 0, never stale, no fallback."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakes.grid_servers import PeerFake, serving
from tests.support.exporter import start_exporter
from tests.support.promtext import parse, pick, value

IN_USE = "footprint_grid_accounting_intensity_grams_per_kilowatt_hour"


def payload(published: Callable[[], float]) -> Callable[[], dict[str, Any]]:
    def answer() -> dict[str, Any]:
        now = time.time()
        reading = {"value": 123.0, "signal": "average", "provider": "electricitymaps", "zone": "DE",
                   "published_at": published(), "fetched_at": now, "basis": "lifecycle"}
        return {"version": 1, "generated_at": now, "accounting": reading, "marginal": None}

    return answer


def run(tmp_path: Path, url: str) -> list[str]:
    (tmp_path / "sys").mkdir(exist_ok=True)
    return ["--sample.interval=100ms", "--no-meter.nvml", f"--path.sysfs={tmp_path / 'sys'}", "--grid.provider=peer",
            f"--grid.peer.url={url}", "--grid.zone=DE", "--grid.max-age=2s", "--grid.refresh-interval=1s",
            "--grid.timeout=1s"]


def test_a_value_a_day_in_the_future_goes_stale_after_max_age_once_the_peer_dies(tmp_path: Path) -> None:
    peer = PeerFake(payload(lambda: time.time() + 86400.0))
    with serving(peer), start_exporter(run(tmp_path, peer.url)) as exp:
        s = exp.wait_until(lambda text: p if pick(p := parse(text), IN_USE, provider="peer") else None)
        assert value(s, IN_USE, provider="peer") == 123.0
        assert value(s, "footprint_grid_clock_skew_total", provider="peer") >= 1.0
        peer.stop()  # the peer is gone: its last value ages out, measured from when it was fetched
        s = exp.wait_until(lambda text: p if pick(p := parse(text), IN_USE, provider="static") else None, timeout=15)
        assert value(s, "footprint_grid_provider_up", provider="peer") == 0.0
        assert "in our future (clock skew)" in exp.log()


def test_a_value_published_at_nan_is_refused(tmp_path: Path) -> None:
    with serving(PeerFake(payload(lambda: math.nan))) as peer, start_exporter(run(tmp_path, peer.url)) as exp:
        s = exp.wait_until(lambda text: p if (p := parse(text)) and value(
            p, "footprint_grid_fetch_errors_total", provider="peer", reason="malformed") >= 1 else None)
        assert value(s, IN_USE, provider="static") > 0  # the peer's value was never used
        assert not pick(s, "footprint_grid_carbon_intensity_grams_per_kilowatt_hour", provider="peer")
