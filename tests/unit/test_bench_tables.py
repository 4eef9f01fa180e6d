"""The README's benchmark summary and bench/README.md's tables are the committed results, redrawn."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

from tests.support.exporter import REPO

BLOCK = re.compile(r"<!-- results:start -->\n(.*?)<!-- results:end -->", re.S)


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(path: Path) -> str:
    found = BLOCK.search(path.read_text())
    assert found, f"{path}: no results block"
    return found.group(1)


def test_tables_match_the_committed_results() -> None:
    report = _report()
    docs = report.load(REPO / "bench" / "results")
    assert set(docs) >= {"overhead", "scrape", "memory", "accuracy"}
    assert _block(REPO / "README.md") == report.summary(docs), "run `.venv/bin/python bench/run.py --report-only`"
    assert _block(REPO / "bench" / "README.md") == report.render(docs), "run `bench/run.py --report-only`"


def test_a_history_result_from_an_older_bench_still_renders() -> None:
    """A quick run's folder (.cache/bench/results) can hold a history result written before the bench
    recorded RSS after the fill: the table leaves that figure out instead of the run crashing at the end."""
    report = _report()
    doc = report.load(REPO / "bench" / "results")["history"]
    dropped = ("rss_mib_end", "seconds_after_full")
    older = {**doc, "figures": {k: v for k, v in doc["figures"].items() if k not in dropped}}
    table = report.history_table(older)
    assert f"{doc['figures']['rss_mib_history_full']:.1f} MiB |" in table
    assert "s later" not in table
    assert "s later" in report.history_table(doc)
