"""The run file of `measure --output` and `track(output=)`: one row per run, appended; columns stable.

CSV (RFC 4180) when the name ends in .csv, else JSON Lines. The columns (documented in docs/measure.md) only ever
grow at the end; a CSV file with another header is refused rather than mixed. `read_rows` gives the
rows back with their types (numbers, booleans, None for empty, `tags` and `devices` as dicts), whichever
format the file is in, so other tools (the web page) can list runs.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLUMNS: tuple[str, ...] = (
    "run_id", "started_at", "ended_at", "duration_seconds", "exit_code", "command", "tags", "source",
    "source_url", "host", "energy_joules", "energy_kwh", "gpu_joules", "cpu_joules", "dram_joules",
    "facility_energy_joules", "pue", "emissions_grams", "intensity_grams_per_kwh",
    "intensity_min_grams_per_kwh", "intensity_max_grams_per_kwh", "intensity_providers", "intensity_changed",
    "embodied_grams", "water_liters", "cost", "cost_currency", "rest_of_machine_energy_joules",
    "rest_of_machine_emissions_grams", "machine_energy_joules", "machine_emissions_grams", "devices", "samples",
    "footprint_version",
)
TEXT = {"run_id", "started_at", "ended_at", "command", "source", "source_url", "host", "intensity_providers",
        "cost_currency", "footprint_version"}
INTEGER = {"exit_code", "samples"}


class RunFileError(ValueError):
    """The file cannot take or give rows (another header, unreadable line); the message names the file."""


def is_csv(path: str | Path) -> bool:
    return str(path).lower().endswith(".csv")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "tags":
        return ";".join(f"{k}={v}" for k, v in sorted(value.items()))
    if column == "devices":
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)


def _typed(column: str, text: str) -> Any:
    if column == "tags":
        return dict(pair.split("=", 1) for pair in text.split(";") if pair) if text else {}
    if column == "devices":
        return json.loads(text) if text else {}
    if column in TEXT:
        return text
    if text == "":
        return None
    if column == "intensity_changed":
        return text == "true"
    return int(text) if column in INTEGER else float(text)


def write_row(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append one run (a dict with every column) to the file, creating it (and its header) if needed."""
    path = Path(path)
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"run row lacks {missing}")
    if not is_csv(path):
        line = json.dumps({c: row[c] for c in COLUMNS}, sort_keys=False) + "\n"
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
        return
    check(path)
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    writer = csv.writer(buf)  # RFC 4180: CRLF rows, so a lone CR in a cell is quoted too
    if new:
        writer.writerow(COLUMNS)
    writer.writerow([_cell(c, row[c]) for c in COLUMNS])
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, buf.getvalue().encode("utf-8"))  # one write: rows of concurrent runs never interleave
    finally:
        os.close(fd)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every run in the file, typed as `write_row` was given it (columns this version lacks are kept)."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as fh:
        if is_csv(path):
            return [{k: _typed(k, v) if k in COLUMNS else v for k, v in r.items()} for r in csv.DictReader(fh)]
        rows = []
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunFileError(f"{path}:{n}: not a JSON object: {exc.msg}") from None
        return rows


def check(path: str | Path) -> None:
    """Fail before the run, not after it, if the file could not take its row."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RunFileError(f"{path}: its directory does not exist")
    if is_csv(path) and path.exists() and path.stat().st_size > 0:
        with open(path, encoding="utf-8", newline="") as fh:
            if tuple(next(csv.reader(fh), [])) != COLUMNS:
                raise RunFileError(f"{path}: its header is not this version's columns (see docs/measure.md)")
