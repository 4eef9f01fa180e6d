"""Find the external tools that `make test` installs under .tools/bin (or on PATH)."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    local = REPO / ".tools" / "bin" / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise AssertionError(f"{name} not found: run `make tools` (scripts/install-test-tools.sh) first")
