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
