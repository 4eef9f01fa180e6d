"""A small scrape client for bench/scrape.py: GET one URL back to back on one keep-alive connection.

Runs as its own process, so nothing else in the benchmark driver (fixture threads) shares its GIL.
Each latency is from sending the request to having read the whole body. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import sys
import time
import urllib.parse


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long")
    parser.add_argument("--max", type=int, default=5000, help="stop after this many requests")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--accept", default="", help="Accept header (Prometheus sends OpenMetrics first)")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    headers = {"Accept": args.accept} if args.accept else {}
    latencies: list[float] = []
    body = b""
    reconnects = 0
    deadline = None
    for i in range(args.warmup + args.max):
        if i == args.warmup:
            deadline = time.monotonic() + args.seconds
        if deadline is not None and time.monotonic() > deadline:
            break
        started = time.perf_counter()
        try:
            conn.request("GET", url.path, headers=headers)
            resp = conn.getresponse()
            body = resp.read()
        except (http.client.HTTPException, OSError):
            conn.close()  # the server closed an idle keep-alive: reconnect, do not count this one
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            reconnects += 1
            continue
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            print(json.dumps({"error": f"HTTP {resp.status}"}))
            return 1
        if i >= args.warmup:
            latencies.append(elapsed * 1e3)
    conn.close()
    print(json.dumps({
        "latencies_ms": latencies,
        "payload_bytes": len(body),
        "gzip_bytes": len(gzip.compress(body, 6)),
        "sample_lines": sum(1 for line in body.splitlines() if line and not line.startswith(b"#")),
        "reconnects": reconnects,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
