"""Generated documentation is up to date with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from footprint.exposition.catalog import SPECS
from prometheus_client.parser import text_string_to_metric_families

from tests.support.exporter import REPO, start_exporter


def test_generated_docs_have_no_drift() -> None:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for path, make in gen.GENERATED.items():
        assert (REPO / path).read_text() == make(), f"{path} is stale: run `make docs`"


def test_every_family_served_has_the_catalogs_help_and_labels(tmp_path: Path) -> None:
    """docs/metrics.md is the catalog; what the real exporter serves (grid chain, attribution, checkpoint
    included) must say the same HELP and carry the same labels, not only the same names."""
    args = ["--sample.interval=50ms", "--no-meter.nvml", f"--path.sysfs={tmp_path}", "--attribution.processes",
            f"--state.file={tmp_path / 'state.json'}", "--pue=1.2", "--water.wue=1.8"]
    with start_exporter(args) as exp:
        text = exp.wait_until(lambda t: t if "footprint_checkpoint_last_success_timestamp_seconds" in t else None)
    seen = 0
    for fam in text_string_to_metric_families(text):
        spec = SPECS.get(fam.name) or SPECS.get(fam.name + "_total")
        assert spec is not None, f"{fam.name} is not in the catalog"
        assert fam.documentation == spec.help, fam.name
        for s in fam.samples:
            labels, documented = set(s.labels) - {"le"}, set(spec.labels) - {"..."}
            if "..." in spec.labels:  # info families: the documented labels, and more
                assert documented <= labels, (s.name, sorted(labels), spec.labels)
            else:
                assert labels == documented, (s.name, sorted(labels), spec.labels)
        seen += 1
    assert seen >= 20
