"""`make bench`: run the benchmarks, write bench/results/<name>.json, print the table.

    .venv/bin/python bench/run.py                  # everything, full length (~20 minutes)
    .venv/bin/python bench/run.py --quick          # shorter windows and soak (~4 minutes)
    .venv/bin/python bench/run.py --only overhead,accuracy
    .venv/bin/python bench/run.py --report-only    # redraw the table from the stored results

Full runs write bench/results/ and the table in bench/README.md; --quick writes .cache/bench/results/
(so a quick run never replaces the committed figures) unless --out says otherwise. The memory soak
runs in the background while the other benchmarks run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import report

BENCHMARKS = ("overhead", "instructions", "scrape", "accuracy", "memory", "attribution", "amd")
README = common.BENCH / "README.md"
TOP_README = common.REPO / "README.md"  # shows the summary: machine and goals
START, END = "<!-- results:start -->", "<!-- results:end -->"
ATTRIBUTION_BENCH = common.BENCH / "attribution_bench.py"


def update_readme(path: Path, text: str) -> None:
    doc = path.read_text()
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{text}{END}{tail}")


def run_attribution(quick: bool, out: Path) -> None:
    """The attribution engineer's benchmark (one pass for 200 pods x 3 containers) writes its own JSON."""
    cmd = [sys.executable, str(ATTRIBUTION_BENCH), f"--out={out}", *(["--passes=40"] if quick else [])]
    subprocess.run(cmd, check=True, cwd=common.REPO, timeout=1200)


def main() -> int:
    parser = argparse.ArgumentParser(description="Footprint benchmarks")
    parser.add_argument("--quick", action="store_true", help="short windows and soak (~4 minutes)")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    parser.add_argument("--report-only", action="store_true", help="print the table from stored results")
    parser.add_argument("--no-readme", action="store_true", help="do not rewrite the table in bench/README.md")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    out = args.out or (common.CACHE / "results" if args.quick else common.RESULTS)
    selected = [b for b in (args.only.split(",") if args.only else BENCHMARKS) if b]
    unknown = set(selected) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    write_readme = not args.no_readme and out.resolve() == common.RESULTS.resolve()

    if not args.report_only:
        started = time.monotonic()
        import memory

        soak = memory.Soak(memory.soak_seconds(args.quick)).start() if "memory" in selected else None
        try:
            if "overhead" in selected:
                import overhead

                common.write_result(out, "overhead", mode, overhead.run(args.quick))
            if "instructions" in selected:
                import instructions

                common.write_result(out, "instructions", mode, instructions.run(args.quick))
            if "scrape" in selected:
                import scrape

                common.write_result(out, "scrape", mode, scrape.run(args.quick))
            if "accuracy" in selected:
                import accuracy

                common.write_result(out, "accuracy", mode, accuracy.run(args.quick))
            if "amd" in selected:
                import amd

                # its own folder: not in the README tables
                common.write_result(out / "amd", "amd", mode, amd.run(args.quick))
            if "attribution" in selected:
                if ATTRIBUTION_BENCH.exists():
                    common.log("attribution: bench/attribution_bench.py")
                    run_attribution(args.quick, out)
                else:
                    common.log("attribution: bench/attribution_bench.py not there yet; skipped")
        except BaseException:
            if soak is not None:
                soak.cancel()  # its exporter and fakes must not outlive a failed run
            raise
        if soak is not None:
            figures = {"startup": memory.startup(args.quick)}
            common.log("memory: the live page's history, filled")
            common.write_result(out, "history", mode, memory.history_full(args.quick))
            common.log("memory: waiting for the soak to end")
            figures["soak"] = soak.result()
            common.write_result(out, "memory", mode, figures)
        common.log(f"done in {time.monotonic() - started:.0f} s")

    docs = report.load(out)
    text = report.render(docs)
    print(text)
    if write_readme and not args.quick:
        update_readme(README, text)
        update_readme(TOP_README, report.summary(docs))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
