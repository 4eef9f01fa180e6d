"""The pieces of measure that are pure: the run file round trip, option parsing, --from's increase and
bounds, and the table. (The split itself is shown end to end, on real processes, in test_measure.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from footprint.config import ConfigError
from footprint.track import IntensitySeen, Run
from footprint.tracking import exporter_counters, runlog
from footprint.tracking.measure import parse_args, render
from hypothesis import given
from hypothesis import strategies as st

finite = st.floats(min_value=0, max_value=1e12, allow_nan=False)
# Commands hold quotes, commas and newlines (a `python -c` script): the CSV must quote them.
text = st.text(st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=12)
label = st.text(st.characters(whitelist_categories=("Ll", "Nd")), min_size=1, max_size=8)


@st.composite
def rows(draw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in runlog.COLUMNS:
        if column == "tags":
            row[column] = draw(st.dictionaries(label, label, max_size=3))
        elif column == "devices":
            row[column] = draw(st.dictionaries(label, st.fixed_dictionaries(
                {"source": label, "joules": finite, "run_joules": finite, "in_node_total": st.booleans()}),
                max_size=3))
        elif column in runlog.TEXT:
            row[column] = draw(text)
        elif column in runlog.INTEGER:
            row[column] = draw(st.none() | st.integers(0, 255)) if column == "exit_code" else draw(st.integers(0, 9))
        elif column == "intensity_changed":
            row[column] = draw(st.booleans())
        else:
            row[column] = draw(st.none() | finite)
    return row


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@given(many=st.lists(rows(), min_size=1, max_size=3))
def test_rows_read_back_as_written_in_either_format(tmp_path_factory: Any, suffix: str,
                                                   many: list[dict[str, Any]]) -> None:
    path = tmp_path_factory.mktemp("runs") / f"runs{suffix}"
    for row in many:
        runlog.write_row(path, row)
    assert runlog.read_rows(path) == many


def test_a_csv_file_with_other_columns_is_refused_before_the_run(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("run_id,energy_joules\nold,1\n")
    with pytest.raises(runlog.RunFileError, match="header"):
        runlog.check(path)


def test_options_settings_and_the_command_are_told_apart() -> None:
    opts = parse_args(["--name", "r1", "--tag=a=b=c", "--grid.zone=DE", "--mlflow", "--output=x.csv", "--",
                       "python", "--name=not-ours", "--"])
    assert (opts.name, opts.tags, opts.output, opts.mlflow) == ("r1", {"a": "b=c"}, "x.csv", True)
    assert opts.settings_args == ["--grid.zone=DE"]
    assert opts.command == ["python", "--name=not-ours", "--"]
    for argv, key in ([["--tag=x", "--", "true"], "tag"], [["--from=127.0.0.1:1", "--", "true"], "from"],
                      [["--name"], "measure"], [["--mlflow=1", "--", "true"], "mlflow"]):
        with pytest.raises(ConfigError, match=f"^{key}:"):
            parse_args(argv)


@given(st.lists(finite, min_size=2, max_size=6))
def test_from_counts_a_smaller_counter_from_zero_as_increase_does(values: list[float]) -> None:
    before, after = exporter_counters.Counters(), exporter_counters.Counters()
    key = ("footprint_node_energy_joules_total", ())
    before.series[key], after.series[key] = values[0], values[-1]
    got = exporter_counters.increase(before, after)[key]
    assert got >= 0
    assert got == (values[-1] - values[0] if values[-1] >= values[0] else values[-1])


def test_exporter_numbers_that_are_not_plausible_are_dropped() -> None:
    counters = exporter_counters.parse(
        "# TYPE footprint_node_energy_joules_total counter\nfootprint_node_energy_joules_total NaN\n"
        "# TYPE footprint_energy_joules_total counter\n"
        'footprint_energy_joules_total{component="gpu",device="0",source="nvml"} 12.5\n'
        'footprint_energy_joules_total{component="gpu",device="1",source="nvml"} -3\n'
        "# TYPE footprint_pue_ratio gauge\nfootprint_pue_ratio 1.4\n")
    assert counters.series == {("footprint_energy_joules_total", ("gpu", "0", "nvml")): 12.5}
    assert counters.pue == 1.4


def test_the_table_names_the_rest_of_the_machine_and_the_equivalences_sources() -> None:
    seen = IntensitySeen()
    seen.add(380.0, "static", "DE")
    seen.add(410.0, "electricitymaps", "DE")
    run = Run("r", exit_code=0, started_at=0.0, ended_at=60.0, energy_joules=3.6e6, gpu_joules=3.6e6,
              emissions_grams=400.0, pue=1.0, intensity=seen, machine_energy_joules=4.0e6,
              rest_of_machine_energy_joules=0.4e6,
              devices={"gpu/0": {"source": "nvml", "joules": 4.0e6, "run_joules": 3.6e6, "in_node_total": True}})
    table = render(run)
    assert "| gpu 0 (nvml)" in table and "rest of machine" in table
    assert "changed during the run (380-410 gCO2e/kWh)" in table and "electricitymaps, static DE" in table
    assert "1.61 km by an average passenger car (US EPA" in table and "Strubell et al. 2019" in table


def test_the_documented_columns_are_the_run_files() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "measure.md").read_text()
    documented = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", docs, flags=re.M)
    assert [int(n) for n, _ in documented] == list(range(1, len(runlog.COLUMNS) + 1))
    assert tuple(name for _, name in documented) == runlog.COLUMNS
