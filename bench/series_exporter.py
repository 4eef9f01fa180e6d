"""The real exporter, plus a second port whose every scrape renders afresh (bench/scrape.py runs it).

`python bench/series_exporter.py --fresh-port=P -- <exporter flags>` builds `footprint.app.Exporter`
from the flags exactly as `footprint-exporter` does and starts it (its own port serves the cached
bytes, as always). The second port serves the same exposition but marks it stale before each
request, so every scrape there pays the rendering: what Prometheus sees whenever the sample interval
(1 s) is shorter than its scrape interval (15 s), i.e. always in practice. Repeated scrapes within
one sample (HA Prometheus pairs) get the cached bytes of the first port.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

# The exporter package under test; BENCH_EXPORTER_DIR points at another tree (a proposed patch).
sys.path.insert(0, os.environ.get("BENCH_EXPORTER_DIR") or str(Path(__file__).resolve().parents[1]
                                                                      / "exporter"))

from footprint import cli, config
from footprint.app import Exporter

try:
    from footprint.exposition.metrics import Exposition
    from footprint.web.server import Routes, Server
except ImportError:  # a snapshot from before the package's house move (issue 20), measured for "before" figures
    from footprint.metrics import Exposition  # type: ignore[no-redef]
    from footprint.server import Routes, Server  # type: ignore[no-redef]


class AlwaysFresh:
    """The exporter's exposition, marked stale before every render (a sample happened since the last scrape)."""

    def __init__(self, exposition: Exposition) -> None:
        self.exposition = exposition

    def invalidate(self) -> None:
        self.exposition.invalidate()

    def render(self, openmetrics: bool = False) -> bytes:
        self.exposition.invalidate()
        return self.exposition.render(openmetrics)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh-port", type=int, required=True)
    parser.add_argument("flags", nargs="*")
    args = parser.parse_args()
    settings = config.load(args.flags, env={})
    exporter = Exporter(settings)
    assert exporter.exposition is not None
    fresh = Server(f"127.0.0.1:{args.fresh_port}",
                   Routes(AlwaysFresh(exporter.exposition), exporter.grid.api_payload, lambda: True))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    exporter.start()
    settle = getattr(cli, "keep_start_up_out_of_collections", None)  # as footprint-exporter does (absent before)
    if settle is not None:
        settle()
    fresh.start()
    done.wait()
    fresh.stop()
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
