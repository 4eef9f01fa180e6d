"""report's rendering (golden Markdown of a fixed result), its time and option parsing, and its gap finder."""

from __future__ import annotations

import csv
import itertools
import json
import os
from pathlib import Path

import pytest
from footprint.config import ConfigError
from footprint.tracking.report import (
    UNATTRIBUTED,
    Gap,
    ProviderShare,
    Report,
    Row,
    _gaps,
    parse_args,
    parse_time,
    render_markdown,
    write_output,
)
from hypothesis import given
from hypothesis import strategies as st

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "report_by_namespace.md"
NOW = 1_796_000_000.0  # 2026-11-30T...Z


def fixed_report() -> Report:
    """November 2026 on two nodes: a training and an inference namespace, a fallback, one restart."""
    start = 1_793_491_200.0  # 2026-11-01T00:00:00Z
    end = start + 30 * 86400
    kwh = 3.6e6
    return Report(
        since=start, until=end, by="namespace", step=2592.0,
        rows=[
            Row("ml", 812.5 * kwh, 975.0 * kwh, 312_400.0, 21_050.0, 1462.5, 97.5),
            Row("serving", 120.25 * kwh, 144.3 * kwh, 41_230.5, 3_100.25, 216.45, 14.43, 2.5e8, 1731.6, 0.16492),
            Row(UNATTRIBUTED, 64.0 * kwh, 76.8 * kwh, 24_600.0, 1_650.0, 115.2, 7.68),
        ],
        total=Row("total", 1000.0 * kwh, 1200.0 * kwh, 380_000.0, 25_800.25, 1800.0, 120.0),
        currency="EUR",
        providers=[ProviderShare("electricitymaps", 339_120, 0.981), ProviderShare("static", 6_568, 0.019)],
        static_energy_joules=21.75 * kwh,
        scrapes={"gpu-node-1": (172_800, 412), "gpu-node-2": (172_800, 0)},
        gaps=[Gap("gpu-node-1", start + 10 * 86400, start + 10 * 86400 + 5184.0, "scrapes failed")],
        without_build_info={"gpu-node-2": 3},
        resets={"gpu-node-2": 1},
        versions=["0.1.0"],
    )


def test_golden_markdown() -> None:
    text = render_markdown(fixed_report())
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "report Markdown changed; rerun with UPDATE_GOLDEN=1 if intended"


def test_the_docs_show_the_golden_report() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "report.md").read_text()
    indented = "".join(f"    {line}" if line.strip() else line for line in GOLDEN.read_text().splitlines(True))
    assert indented in docs, "docs/report.md's worked example differs from tests/golden/report_by_namespace.md"


def test_csv_and_json_outputs_hold_every_row_and_the_total(tmp_path: Path) -> None:
    report = fixed_report()
    write_output(report, str(tmp_path / "r.csv"))
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [r["namespace"] for r in rows] == ["ml", "serving", UNATTRIBUTED, "total"]
    assert float(rows[1]["grams_per_1k_tokens"]) == 0.16492 and rows[0]["tokens"] == ""
    write_output(report, str(tmp_path / "r.json"))
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["rows"][0]["energy_joules"] == 812.5 * 3.6e6 and doc["resets"] == {"gpu-node-2": 1}


def test_nothing_missing_is_said_so() -> None:
    report = Report(since=NOW - 3600, until=NOW, by="node", step=3.6, rows=[Row("n1", 1.0)], total=Row("total", 1.0),
                    scrapes={"n1": (240, 0)})
    text = render_markdown(report)
    assert "None: every scrape in the window succeeded." in text
    assert "No intensity data in the window." in text


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW), ("30d", NOW - 30 * 86400), ("1h30m", NOW - 5400), ("1796000000.5", 1_796_000_000.5),
    ("2026-11-01T00:00:00Z", 1_793_491_200.0), ("2026-11-01T01:00:00+01:00", 1_793_491_200.0),
    ("2026-11-01", 1_793_491_200.0),
])
def test_times(text: str, expected: float) -> None:
    assert parse_time(text, NOW, "since") == expected


@pytest.mark.parametrize("text", ["nan", "inf", "-1", "1e400", "-inf"])
def test_a_unix_time_that_is_no_time_names_its_key(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^since:"):
        parse_time(text, NOW, "since")


@given(st.integers(0, 10**8), st.sampled_from(["s", "m", "h", "d"]))
def test_a_duration_counts_back_from_now(amount: int, unit: str) -> None:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert parse_time(f"{amount}{unit}", NOW, "since") == NOW - seconds


def test_since_counts_back_from_until_and_bad_options_name_their_key() -> None:
    opts = parse_args(["--prometheus=http://127.0.0.1:9090", "--since=1d", "--until=2026-11-02T00:00:00Z"], NOW)
    assert (opts["since"], opts["until"]) == (1_793_491_200.0, 1_793_577_600.0)
    for argv, key in ([["--since=1d"], "prometheus"], [["--prometheus=http://x", "--by=team"], "by"],
                      [["--prometheus=http://x", "--until=soon"], "until"], [["--prometheus=http://x", "--nope=1"],
                                                                              "nope"]):
        with pytest.raises(ConfigError, match=f"^{key}:"):
            parse_args(argv, NOW)


@given(st.lists(st.sampled_from([1.0, 0.0, None]), min_size=1, max_size=40))
def test_gaps_cover_exactly_the_steps_without_a_good_scrape(steps: list[float | None]) -> None:
    since, step = 1_000.0, 2.5
    points = [(since + (k + 1) * step, v) for k, v in enumerate(steps) if v is not None]
    gaps = _gaps("n", points, since, since + len(steps) * step, step)
    covered = {}
    for g in gaps:
        assert g.end > g.start
        for k in range(round((g.start - since) / step), round((g.end - since) / step)):
            covered[k] = g.kind
    assert covered == {k: "no data" if v is None else "scrapes failed" for k, v in enumerate(steps) if v != 1.0}
    # Adjacent steps of one kind are one period.
    assert all(not (a.kind == b.kind and a.end == b.start) for a, b in itertools.pairwise(gaps))
