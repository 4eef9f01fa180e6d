"""`_created` series: absent by default in both formats, back with --web.enable-created-series.

Why both formats follow the flag: Prometheus asks for OpenMetrics first (its scrape Accept header puts
`application/openmetrics-text` ahead of `text/plain`), and without created-timestamp ingestion it stores an
OpenMetrics `_created` line as one more series per counter, exactly as it does in the text format. The
real Prometheus below shows both: a target recording its Accept header, and the flagged exporter's
counters stored with `_created` series, the default one's without. OpenMetrics 1.0 makes `_created`
optional for counters ("SHOULD"), so both outputs stay valid (promtool checks the text format).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.exporter import start_exporter
from tests.support.prometheus import start_prometheus, static_job, wait_until
from tests.support.tools import tool

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--sample.interval=0.05s", "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path}", *extra]


def _created_lines(body: bytes) -> list[str]:
    return [line for line in body.decode().splitlines() if "_created" in line]


def _promtool_check(text: bytes) -> None:
    proc = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_created_series_only_with_the_flag_in_both_formats_and_in_prometheus(tmp_path: Path) -> None:
    counter = "footprint_node_energy_joules"
    with start_exporter(_args(tmp_path)) as plain, \
            start_exporter(_args(tmp_path, "--web.enable-created-series")) as flagged:
        for exp in (plain, flagged):
            exp.wait_until(lambda text: f"{counter}_total " in text)
        plain_text, plain_om = plain.get(), plain.get(headers=OPENMETRICS)
        flagged_text, flagged_om = flagged.get(), flagged.get(headers=OPENMETRICS)
        assert f"{counter}_total " in plain_text.decode() and f"{counter}_total " in plain_om.decode()
        assert _created_lines(plain_text) == [] and _created_lines(plain_om) == []
        assert any(line.startswith(f"{counter}_created ") for line in _created_lines(flagged_text))
        assert any(line.startswith(f"{counter}_created ") for line in _created_lines(flagged_om))
        assert plain_om.endswith(b"# EOF\n") and flagged_om.endswith(b"# EOF\n")
        _promtool_check(plain_text)
        _promtool_check(flagged_text)

        with _accept_recorder() as (port, accepts):
            jobs = [static_job("plain", [plain.port]), static_job("flagged", [flagged.port]),
                    static_job("accept", [port])]
            with start_prometheus(jobs) as prom:
                wait_until(lambda: len(prom.query(f"{counter}_total")) == 2, timeout=60,
                           what="both exporters scraped", context=prom.log)
                created = prom.query('count by (job) ({__name__=~".+_created", job=~"plain|flagged"})')
                assert {r["metric"]["job"] for r in created} == {"flagged"}
                assert prom.query(f'{counter}_created{{job="flagged"}}')
                # Prometheus spreads its targets over the interval: the recorder may not be scraped yet.
                wait_until(lambda: accepts, timeout=60, what="the Accept recorder scraped", context=prom.log)
            # What Prometheus asked for: OpenMetrics first, so that format's `_created` lines matter too.
            assert accepts and accepts[0].split(",")[0].startswith("application/openmetrics-text")


@contextmanager
def _accept_recorder() -> Iterator[tuple[int, list[str]]]:
    """A scrape target that records the Accept header of each scrape and answers one gauge."""
    accepts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            accepts.append(self.headers.get("Accept", ""))
            body = b"# TYPE up_probe gauge\nup_probe 1\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], accepts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
