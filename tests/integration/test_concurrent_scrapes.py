"""100 concurrent scrapers for 30 s against the real exporter on loopback, with slow clients mixed in.

Shows: no failed scrape, slow clients (slowloris) cut off at their deadline without holding anyone
up, and the exporter's memory flat. Latency is printed, not asserted (no timed tests). This is the
one long test of the reliability work; every wait in it is bounded.
"""

from __future__ import annotations

import http.client
import socket
import statistics
import threading
import time
from pathlib import Path

from tests.fakes.sysfs import RaplTree
from tests.support.exporter import start_exporter

SCRAPERS = 100
SLOW_CLIENTS = 20
DURATION = 30.0
WARMUP = 5.0
MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def scraper(port: int, until: float, keep_alive: bool, latencies: list[float], errors: list[str]) -> None:
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until:
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics", headers={"Accept-Encoding": "identity"})
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or b"footprint_build_info" not in body:
                errors.append(f"status {resp.status}, {len(body)} bytes")
            latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            if conn is not None:
                conn.close()
            conn = None
            continue
        if not keep_alive:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def slow_client(port: int, until: float, cut_after: list[float], errors: list[str]) -> None:
    """Slowloris: a request head that never ends, one byte a second. Records when the server hung up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            opened = time.monotonic()
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            s.settimeout(1.0)
            while time.monotonic() < until:
                try:
                    s.sendall(b"X")
                    if s.recv(1024) == b"":
                        break
                except TimeoutError:
                    continue  # nothing from the server yet: keep trickling
                except OSError:
                    break  # reset: the server hung up
            else:
                return  # never cut off within the test: recorded as missing below
            cut_after.append(time.monotonic() - opened)
    except OSError as exc:
        errors.append(repr(exc))


def test_100_concurrent_scrapers_and_slow_clients(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=2, dram=True, psys=True)
    args = ["--sample.interval=100ms", f"--path.sysfs={tmp_path / 'sys'}", "--no-meter.nvml",
            "--grid.provider=constant", "--grid.constant.value=350", f"--state.file={tmp_path / 'state.json'}"]
    with start_exporter(args) as exp:
        pid = exp.proc.pid
        start = time.monotonic()
        until = start + DURATION
        latencies: list[list[float]] = [[] for _ in range(SCRAPERS)]
        errors: list[str] = []
        cut_after: list[float] = []
        threads = [
            threading.Thread(target=scraper, args=(exp.port, until, i % 2 == 0, latencies[i], errors), daemon=True)
            for i in range(SCRAPERS)
        ] + [
            threading.Thread(target=slow_client, args=(exp.port, until, cut_after, errors), daemon=True)
            for _ in range(SLOW_CLIENTS)
        ]
        for t in threads:
            t.start()
        rss: list[tuple[float, int]] = []
        while time.monotonic() < until:
            rss.append((time.monotonic() - start, rss_bytes(pid)))
            tree.advance("intel-rapl:0", 50_000_000)  # the counters move, so every sample re-renders
            time.sleep(1.0)
        for t in threads:
            t.join(timeout=DURATION + 15)
        assert not any(t.is_alive() for t in threads), "a client thread did not finish"
        log = exp.log()

    flat = sorted(seconds for per_client in latencies for seconds in per_client)
    q = statistics.quantiles(flat, n=100)
    warm = [b for t, b in rss if t >= WARMUP]
    print(
        f"\n{len(flat)} scrapes by {SCRAPERS} clients in {DURATION:.0f} s ({len(flat) / DURATION:.0f}/s), "
        f"{len(errors)} errors; latency ms: p50 {q[49] * 1e3:.1f}, p95 {q[94] * 1e3:.1f}, "
        f"p99 {q[98] * 1e3:.1f}, max {flat[-1] * 1e3:.1f}\n"
        f"slow clients cut off after {min(cut_after, default=0):.1f}-{max(cut_after, default=0):.1f} s "
        f"({len(cut_after)}/{SLOW_CLIENTS}); exporter RSS MiB over time: "
        + " ".join(f"{b / MIB:.0f}" for _, b in rss)
    )
    assert errors == []
    assert all(r for r in latencies), "a scraper never got an answer"
    # Each trickled byte comes well within the per-read timeout: only the whole-request deadline
    # (CLIENT_TIMEOUT_SECONDS) can have cut them off before the test ended.
    assert len(cut_after) == SLOW_CLIENTS
    assert max(warm) - warm[0] < 32 * MIB, "exporter memory grew under load"
    assert "Traceback" not in log and "level=error" not in log
