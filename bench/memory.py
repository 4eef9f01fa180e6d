"""Benchmark 3: resident memory after a long run, and start-up time to the first valid scrape.

Soak: the exporter with 8 fake GPUs, the RAPL fixture and 200 pods x 3 containers (the overhead
load), scraped every 15 s like Prometheus would, for 10 minutes (--quick: 2.5 minutes). RSS and PSS
are read from /proc at every scrape; the figure is the value at the end, with the peak and the growth
over the second half (a leak shows there). bench/run.py runs the soak in the background while the
other benchmarks run, so the whole run stays short.

Start-up: from spawning `python -m footprint` to the first /metrics answer that has every GPU and
both RAPL packages (polled every 10 ms), over several starts; with and without attribution.

Live page: RSS with the page's power history empty and full (history_full), and what its JSON weighs.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import threading
import time
import tracemalloc

import common
import pods as k8s
from common import Proc

SCRAPE_INTERVAL = 15.0
PODS = 200


class Soak:
    """The long-running exporter; start() returns at once, result() waits for the end."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._result: dict[str, object] = {}
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name="soak", daemon=True)

    def start(self) -> Soak:
        self._thread.start()
        return self

    def result(self) -> dict[str, object]:
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"soak failed: {self._error}") from self._error
        return self._result

    def cancel(self) -> None:
        """Another benchmark failed: end the soak now, so its exporter and fakes are cleaned up."""
        self._cancelled.set()
        self._thread.join(timeout=60)

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported from result(), in the main thread
            self._error = exc

    def _run(self) -> None:
        with common.fixture() as fx, k8s.pods(PODS * k8s.CONTAINERS_PER_POD) as p:
            p.start_advancing()
            port = common.free_port()
            url = f"http://127.0.0.1:{port}/metrics"
            with Proc(common.exporter_cmd(port, fx, *p.flags), common.exporter_env(fx), "soak") as proc:
                startup = common.wait_for(proc, lambda: common.valid_scrape(common.http_get(url).decode()), 60,
                                          "valid scrape")
                started = time.monotonic()
                timeline: list[tuple[float, float, float]] = []  # (seconds, RSS MiB, PSS MiB)
                scrapes = 0
                series = 0
                while True:
                    elapsed = time.monotonic() - started
                    body = common.http_get(url)
                    scrapes += 1
                    series = common.sample_lines(body)
                    timeline.append((round(elapsed, 1), round(common.rss_mib(proc.pid), 2),
                                     round(common.pss_mib(proc.pid), 2)))
                    if elapsed >= self.seconds or self._cancelled.wait(
                            min(SCRAPE_INTERVAL, max(self.seconds - elapsed, 0.0))):
                        break
                half = [rss for t, rss, _ in timeline if t >= self.seconds / 2]
                self._result = {
                    "seconds": round(timeline[-1][0], 1),
                    "pods": PODS,
                    "containers": p.containers,
                    "scrapes": scrapes,
                    "series": series,
                    "rss_mib_end": timeline[-1][1],
                    "pss_mib_end": timeline[-1][2],
                    "rss_mib_peak": max(rss for _, rss, _ in timeline),
                    "rss_mib_growth_second_half": round(half[-1] - half[0], 2) if half else None,
                    "startup_seconds": round(startup, 3),
                    "timeline": timeline,
                }


def ready(url: str) -> bool:
    return common.valid_scrape(common.http_get(url).decode())


def startup_runs(runs: int, flags: list[str], fx: common.Fixture) -> dict[str, object]:
    times, rss = [], []
    for _ in range(runs):
        port = common.free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        with Proc(common.exporter_cmd(port, fx, *flags), common.exporter_env(fx), "startup") as proc:
            times.append(common.wait_for(proc, functools.partial(ready, url), 60,
                                         "valid scrape"))
            rss.append(common.rss_mib(proc.pid))
    return {
        "runs": runs,
        "median_seconds": round(statistics.median(times), 3),
        "max_seconds": round(max(times), 3),
        "min_seconds": round(min(times), 3),
        "rss_mib_at_start": round(statistics.median(rss), 2),
    }


def startup(quick: bool) -> dict[str, object]:
    runs = 3 if quick else 7
    with common.fixture() as fx:
        common.log("startup: 8 GPUs + RAPL")
        bare = startup_runs(runs, [], fx)
        common.log(f"startup: 8 GPUs + RAPL + {PODS} pods")
        with k8s.pods(PODS * k8s.CONTAINERS_PER_POD) as p:
            with_pods = startup_runs(runs, p.flags, fx)
    return {"footprint": bare, "footprint_pods": with_pods}


def soak_seconds(quick: bool) -> float:
    return 150.0 if quick else 600.0


HISTORY_STEP = "50ms"  # with 20 Hz sampling the 240-point ring fills in 12 s instead of an hour


def ring_bytes(series: int) -> int:
    """Python heap the history takes once full, measured here with tracemalloc (the same class)."""
    from footprint.web.history import POINTS, Mark, PowerHistory, Totals

    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    h = PowerHistory(1.0)
    keys = [("gpu", str(i), "nvml") for i in range(series)]
    for t in range(POINTS + 5):
        h.record(Mark(Totals(float(t), 100.0 * t, 0.0), dict.fromkeys(keys, 50.0 * t), set(keys)))
    size = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    return size


def history_full(quick: bool) -> dict[str, object]:
    """The exporter (8 GPUs + RAPL) sampling at 20 Hz with a 50 ms history step, while a page is open:
    `/`, /api/v1/summary and /api/v1/history fetched every 0.5 s. RSS when the history has its first
    points, when the ring is full, and after as long again (full mode: three times): no growth past it."""
    with common.fixture() as fx:
        port = common.free_port()
        base = f"http://127.0.0.1:{port}"
        flags = ["--sample.interval=50ms", f"--web.history-step={HISTORY_STEP}"]
        with Proc(common.exporter_cmd(port, fx, *flags), common.exporter_env(fx), "history") as proc:
            common.wait_for(proc, functools.partial(ready, f"{base}/metrics"), 60, "valid scrape")

            def page_load() -> dict[str, bytes]:
                return {path: common.http_get(base + path) for path in ("/", "/api/v1/summary", "/api/v1/history")}

            def held() -> int:
                return len(json.loads(page_load()["/api/v1/history"])["node"])

            common.wait_for(proc, lambda: held() >= 2, 30, "history points", poll=0.5)
            rss_empty = common.rss_mib(proc.pid)
            started = time.monotonic()
            while (points := held()) < 240:
                time.sleep(0.5)
            filled = time.monotonic() - started
            rss_full = common.rss_mib(proc.pid)
            bodies = page_load()
            after = filled if quick else 3 * filled
            until = time.monotonic() + after
            while time.monotonic() < until:
                page_load()
                time.sleep(0.5)
            rss_end = common.rss_mib(proc.pid)
            series = len(json.loads(bodies["/api/v1/history"])["devices"]) + 1  # devices + the node
    return {
        "points": points,
        "series": series,
        "seconds_to_fill": round(filled, 1),
        "rss_mib_history_empty": round(rss_empty, 2),
        "rss_mib_history_full": round(rss_full, 2),
        "seconds_after_full": round(after, 1),
        "rss_mib_end": round(rss_end, 2),
        "ring_bytes_per_series": round(ring_bytes(series) / series),
        "bytes": {path: len(body) for path, body in bodies.items()},
    }


if __name__ == "__main__":
    # python bench/memory.py --history [--quick]: only the live page's memory, into bench/results/history.json
    if "--history" in sys.argv:
        quick = "--quick" in sys.argv
        out = common.CACHE / "results" if quick else common.RESULTS
        print(common.write_result(out, "history", "quick" if quick else "full", history_full(quick)).read_text())
