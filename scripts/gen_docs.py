"""Generate docs/metrics.md and docs/configuration.md from the code (tests/unit/test_docs.py checks drift)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "exporter"))

from footprint import config  # noqa: E402
from footprint.exposition.catalog import CATALOG  # noqa: E402


def metrics_md() -> str:
    lines = [
        "# Metrics",
        "",
        "Generated from `exporter/footprint/exposition/catalog.py` by `make docs`; do not edit by hand.",
        "Base units: joules, grams CO2e, litres, seconds, ratios 0-1. Counters end in `_total`.",
        "",
        "| metric | type | labels | meaning | filled by |",
        "|---|---|---|---|---|",
    ]
    for s in CATALOG:
        labels = ", ".join(s.labels) if s.labels else ""
        lines.append(f"| `{s.name}` | {s.type} | {labels} | {s.help} | {s.filled_by} |")
    return "\n".join(lines) + "\n"


def configuration_md() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `exporter/footprint/config.py` by `make docs`; do not edit by hand.",
        "",
        "Every setting can be given, weakest first, as a default, a key in the YAML file named by `--config`",
        "(nested `grid: {zone: DE}` or dotted `grid.zone: DE`), an environment variable, or a flag.",
        "True/false settings also take `--no-<key>`. Durations: `500ms`, `1s`, `5m`, `2h`, `4y`.",
        "A bad key, type or value exits with status 2 and one line naming the key.",
        "",
        "| flag | environment | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    defaults = config.Settings()
    for key, (field_name, o) in config.options().items():
        value = getattr(defaults, field_name)
        if o.kind == "duration":
            shown = config.format_duration(value)
        elif o.kind == "list":
            shown = ",".join(value)
        elif value is None or value == "":
            shown = "(unset)"
        else:
            shown = str(value).lower() if isinstance(value, bool) else str(value)
        kind = "|".join(o.choices) if o.kind == "choice" else o.kind
        env = config.env_name(key)
        lines.append(f"| `--{key}` | `{env}` | {kind} | `{shown}` | {o.help} |")
    return "\n".join(lines) + "\n"


GENERATED = {"docs/metrics.md": metrics_md, "docs/configuration.md": configuration_md}


def main() -> None:
    for path, make in GENERATED.items():
        (REPO / path).write_text(make())
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
