"""Benchmark 2: scrape latency (p50/p99) and payload size at about 100, 1,000 and 10,000 series.

Series come from the real pipeline: the exporter (bench/series_exporter.py: `footprint.app.Exporter`
built from flags) with fake GPUs, the RAPL fixture and pods attributed through the real Kubernetes
code (fake API server, pod-resources and cgroups; bench/pods.py). The number of containers is
calibrated so the payload has about N sample lines ("series" = non-comment lines, `_created`
included, as Prometheus ingests them). 100 is below what 8 GPUs + RAPL alone produce, so that
size runs with one GPU and estimated CPU.

Measured with bench/scrape_client.py in its own process, back to back on one keep-alive connection:
- fresh: every scrape renders (the exporter's normal case: a sample happened since the last scrape);
- cached: repeated scrapes within one sample get the ready bytes;
- fresh, OpenMetrics: what Prometheus asks for first (Accept: application/openmetrics-text);
- node_exporter (Debian package, textfile collector) serving the same text, re-read on every scrape.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
import pods as k8s
from common import Proc

TARGETS = (100, 1000, 10000)
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def client(url: str, seconds: float, max_requests: int, warmup: int, accept: str = "") -> dict[str, object]:
    cmd = [sys.executable, str(common.BENCH / "scrape_client.py"), url, f"--seconds={seconds}",
           f"--max={max_requests}", f"--warmup={warmup}"]
    if accept:
        cmd.append(f"--accept={accept}")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 300).stdout
    raw = json.loads(out)
    lat = raw.pop("latencies_ms")
    return {
        "requests": len(lat),
        "p50_ms": round(common.percentile(lat, 50), 3),
        "p90_ms": round(common.percentile(lat, 90), 3),
        "p99_ms": round(common.percentile(lat, 99), 3),
        "max_ms": round(max(lat), 3),
        "mean_ms": round(sum(lat) / len(lat), 3),
        **raw,
    }


class Harness:
    """series_exporter.py on two free ports, with `containers` containers attributed."""

    def __init__(self, fx: common.Fixture, p: k8s.Pods, extra: list[str]) -> None:
        self.port, self.fresh_port = common.free_port(), common.free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.fresh_url = f"http://127.0.0.1:{self.fresh_port}/metrics"
        flags = [a for a in common.exporter_cmd(self.port, fx, *p.flags, *extra)[3:]]
        cmd = [sys.executable, str(common.BENCH / "series_exporter.py"), f"--fresh-port={self.fresh_port}", "--",
               *flags]
        self.proc = Proc(cmd, common.exporter_env(fx), "series-exporter")
        self.pods = p

    def lines(self) -> int:
        return common.sample_lines(common.http_get(self.url))

    def settle(self, gpus: int) -> int:
        """Advance the pods' CPU time until every container has its series and the count holds still
        for longer than one attribution pass (--attribution.interval, 5 s by default)."""
        common.wait_for(self.proc, lambda: common.gpu_series(common.http_get(self.url).decode()) == gpus, 60,
                        "GPU series")
        self.pods.start_advancing(period=0.5)
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now_lines = self.lines()
            if now_lines != last:
                last, stable_since = now_lines, time.monotonic()
            elif time.monotonic() - stable_since > 7.0:
                break
            time.sleep(0.5)
        self.pods.stop_advancing()
        return last

    def stop(self) -> None:
        self.proc.stop()
        self.proc.cleanup()


def configuration(target: int) -> tuple[int, list[str]]:
    """(GPUs, extra flags) for a size: the smallest runs one GPU with estimated CPU (no RAPL)."""
    return (1, ["--no-meter.rapl"]) if target <= 300 else (common.GPUS, [])


def measure_lines(fx: common.Fixture, gpus: int, extra: list[str], containers: int) -> int:
    with k8s.pods(containers, gpus=gpus) as p:
        h = Harness(fx, p, extra)
        try:
            return h.settle(gpus)
        finally:
            h.stop()


_LINES: dict[tuple[int, tuple[str, ...]], tuple[int, float]] = {}


def calibrate(fx: common.Fixture, gpus: int, extra: list[str], target: int) -> int:
    """Containers that give about `target` lines: two runs (once per configuration) fix the base and
    the lines each container adds."""
    key = (gpus, tuple(extra))
    if key not in _LINES:
        probe = 30
        base = measure_lines(fx, gpus, extra, 0)
        _LINES[key] = (base, (measure_lines(fx, gpus, extra, probe) - base) / probe)
    base, per_container = _LINES[key]
    return max(0, round((target - base) / per_container))


def node_exporter_run(body: bytes, seconds: float, max_requests: int, warmup: int) -> dict[str, object]:
    binary = common.tool("node_exporter")
    with tempfile.TemporaryDirectory(prefix="footprint-bench-textfile-") as tmp:
        (Path(tmp) / "footprint.prom").write_bytes(body)
        port = common.free_port()
        cmd = [binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
               "--collector.textfile", f"--collector.textfile.directory={tmp}", "--web.disable-exporter-metrics",
               "--log.level=error"]
        url = f"http://127.0.0.1:{port}/metrics"
        with Proc(cmd, {}, "node_exporter") as proc:
            common.wait_for(proc, lambda: b"node_textfile_scrape_error 0" in common.http_get(url), 30, "textfile")
            result = client(url, seconds, max_requests, warmup)
            result["version"] = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.split(
                "\n")[0].split("version ")[-1].split(" ")[0]
            return result


def run(quick: bool) -> dict[str, object]:
    seconds, max_requests, warmup = (3.0, 1500, 5) if quick else (10.0, 5000, 20)
    figures: dict[str, object] = {"client_seconds_per_mode": seconds, "sizes": {}}
    sizes: dict[str, object] = {}
    for target in TARGETS:
        gpus, extra = configuration(target)
        with common.fixture(gpus=gpus) as fx:
            common.log(f"scrape: calibrating ~{target} series")
            containers = calibrate(fx, gpus, extra, target)
            common.log(f"scrape: {target} series: {containers} containers, {gpus} GPU(s)")
            with k8s.pods(containers, gpus=gpus) as p:
                h = Harness(fx, p, extra)
                try:
                    lines = h.settle(gpus)
                    body = common.http_get(h.fresh_url)
                    entry: dict[str, object] = {
                        "series": lines, "gpus": gpus, "rapl": not extra, "containers": containers,
                        "payload_bytes": len(body),
                    }
                    entry["fresh_text"] = client(h.fresh_url, seconds, max_requests, warmup)
                    entry["cached_text"] = client(h.url, seconds, max_requests, warmup)
                    entry["fresh_openmetrics"] = client(h.fresh_url, seconds, max_requests, warmup, PROMETHEUS_ACCEPT)
                finally:
                    h.stop()
            common.log(f"scrape: node_exporter, {lines} series")
            entry["node_exporter"] = node_exporter_run(body, seconds, max_requests, warmup)
            sizes[str(target)] = entry
    figures["sizes"] = sizes
    return figures
