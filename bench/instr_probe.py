"""Runs under callgrind for bench/instructions.py: the exporter built in-process, sections counted.

`python bench/instr_probe.py MARKS_SO SAMPLES RENDERS -- <exporter flags>` builds the exporter's parts
from the flags exactly as `footprint-exporter` does (no HTTP server, no sampler thread; the grid's
threads run, so a sample reads the fetched slot as in the exporter), samples until its series hold
still, then counts two sections with the marks library (bench/callgrind_marks.c): `sample-K` (each
of SAMPLES calls of the sampler's own `sample()`, SETTLE apart, the whole per-sample path: meters,
ledger, accountant, attribution when its interval is 0) and `render-K` (each of RENDERS renders of the
exposition, each after a sample of its own that is not counted, as every scrape after a sample pays).
Prints one JSON line: the series count. With pods, the kubelet/API refresh runs once before the
sections, as the exporter's background thread would.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.environ.get("BENCH_EXPORTER_DIR") or str(Path(__file__).resolve().parents[1] / "exporter"))

from footprint import config
from footprint.app import Exporter

SETTLE = 0.15  # seconds before each counted sample: longer than one step of the RAPL fixture (0.1 s)


def lines(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def main() -> int:
    marks_path, samples, renders = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    flags = sys.argv[sys.argv.index("--") + 1:]
    marks = ctypes.CDLL(marks_path)
    marks.fp_section_end.argtypes = [ctypes.c_char_p]
    exporter = Exporter(config.load(flags, env={}))
    sampler, exposition = exporter.sampler, exporter.exposition
    assert exposition is not None
    exporter.grid.start()  # as the exporter does: a sample then reads the fetched slot, not the static fallback
    deadline = time.monotonic() + 30
    while not exporter.grid.settled() and time.monotonic() < deadline:
        time.sleep(0.05)
    refresh = getattr(exporter.attributor, "refresh", None)
    if refresh is not None:
        refresh()
    interval = exporter.settings.sample_interval
    counts: list[int] = []
    # Warm-up until the series hold still for 3 samples (every container seen drawing CPU): first reads,
    # first series, caches filled.
    while len(counts) < 60 and (len(counts) < 4 or len(set(counts[-4:])) > 1):
        sampler.sample()
        exposition.invalidate()
        counts.append(lines(exposition.render()))
        time.sleep(interval)
    # Each sample after the fixtures' counters moved (the RAPL fixture advances at 10 Hz), as at 1 Hz: back
    # to back, a sample would find RAPL unchanged and take the path that checks the file was not replaced.
    marks.fp_dump.argtypes = [ctypes.c_char_p]
    marks.fp_section_begin()
    for k in range(samples):  # one dump a sample: the waits between them are not counted
        time.sleep(SETTLE)
        marks.fp_zero()
        sampler.sample()
        marks.fp_dump(f"sample-{k}".encode())
    marks.fp_section_end(b"after-samples")
    exposition.invalidate()
    body = exposition.render()
    # Each render after a sample of its own (not counted), as a scrape finds it: the gauges of the sample
    # have moved, and a render that only repeated the last one would flatter what is kept between renders.
    marks.fp_section_begin()
    for k in range(renders):
        time.sleep(SETTLE)
        sampler.sample()
        marks.fp_zero()
        exposition.invalidate()
        exposition.render()
        marks.fp_dump(f"render-{k}".encode())
    marks.fp_section_end(b"after-renders")
    print(json.dumps({"series": lines(body), "payload_bytes": len(body), "samples": samples, "renders": renders,
                      "warmup_samples": len(counts)}), flush=True)
    if exporter.attributor is not None:
        exporter.attributor.close()
    exporter.grid.stop()
    for meter in exporter.meters:
        meter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
