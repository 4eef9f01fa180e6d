"""The last runs of `measure --output` (runlog.py's file), for the live page: bounded, read only on change.

The file grows without end and anyone who can run `measure` writes to it, so it is never trusted: only
its header line and its last TAIL_BYTES are read, at most MAX_RUNS rows are kept, every number must pass
numbers.bounded, text is cut to MAX_TEXT characters, and a row that does not parse is skipped and
counted. The parse is cached on the file's (size, mtime), so a page refresh re-reads nothing unless a
run was added.
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
from typing import Any

from footprint.numbers import NumberError, bounded
from footprint.tracking import runlog

TAIL_BYTES = 256 * 1024
MAX_RUNS = 10
MAX_TEXT = 200
NUMBERS = ("duration_seconds", "energy_joules", "emissions_grams", "embodied_grams", "intensity_grams_per_kwh",
           "machine_energy_joules")
TEXTS = ("run_id", "started_at", "ended_at", "source", "intensity_providers")


class RecentRuns:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int] | None = None
        self._payload: dict[str, Any] = {"enabled": bool(path), "runs": [], "skipped": 0, "error": None}

    def payload(self) -> dict[str, Any]:
        if not self.path:
            return self._payload
        with self._lock:
            try:
                st = os.stat(self.path)
            except OSError as exc:
                return {**self._payload, "runs": [], "skipped": 0, "error": f"cannot read: {exc.strerror}"}
            key = (st.st_size, st.st_mtime_ns)
            if key != self._key:
                self._payload = {**self._payload, **self._read(st.st_size)}
                self._key = key
            return self._payload

    def _read(self, size: int) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as fh:
                header = fh.readline(64 * 1024)
                fh.seek(max(size - TAIL_BYTES, fh.tell()))
                tail = fh.read(TAIL_BYTES)
        except OSError as exc:
            return {"runs": [], "skipped": 0, "error": f"cannot read: {exc.strerror}"}
        lines = tail.decode("utf-8", "replace").splitlines()
        if size > TAIL_BYTES + len(header) and lines:
            lines = lines[1:]  # the first line of the tail may be cut
        rows: list[dict[str, Any]] = []
        skipped = 0
        for line in reversed(lines):
            if len(rows) >= MAX_RUNS:
                break
            if not line.strip():
                continue
            try:
                rows.append(clean(self._parse(header, line)))
            except (ValueError, TypeError, KeyError, NumberError):
                skipped += 1
        return {"runs": rows, "skipped": skipped, "error": None}

    def _parse(self, header: bytes, line: str) -> dict[str, Any]:
        if not runlog.is_csv(self.path):
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
            return row
        names = next(csv.reader([header.decode("utf-8", "replace")]))
        values = next(csv.reader(io.StringIO(line)))
        if len(values) != len(names):
            raise ValueError("wrong number of cells")
        return dict(zip(names, values, strict=True))


def clean(row: dict[str, Any]) -> dict[str, Any]:
    """The fields the page shows: numbers bounded (None when empty), text cut; anything else fails."""
    out: dict[str, Any] = {}
    for name in TEXTS:
        value = row.get(name)
        out[name] = value[:MAX_TEXT] if isinstance(value, str) else None
    if not out["run_id"]:
        raise ValueError("no run_id")
    for name in NUMBERS:
        value = row.get(name)
        out[name] = None if value in (None, "") else bounded(value, 0.0, 1e15)
    code = row.get("exit_code")
    out["exit_code"] = None if code in (None, "") else int(bounded(code, -1e6, 1e6, integer=True))
    return out
