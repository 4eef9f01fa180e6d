"""Generated documentation is up to date with the code."""

from __future__ import annotations

import importlib.util

from tests.support.exporter import REPO


def test_generated_docs_have_no_drift() -> None:
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for path, make in gen.GENERATED.items():
        assert (REPO / path).read_text() == make(), f"{path} is stale: run `make docs`"
