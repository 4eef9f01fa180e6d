"""Parse Prometheus text exposition into {(name, frozenset(labels)): value} with the official parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def pick(series: Series, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in series.items() if n == name and want <= lbl}


def value(series: Series, name: str, **labels: str) -> float:
    found = pick(series, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {len(found)} series"
    return next(iter(found.values()))
