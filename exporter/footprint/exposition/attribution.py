"""Attribution's own families (sources up, the series cap, consumers, refused reads), built from an
attributor's plain AttributionHealth with the catalog's names, HELP and labels."""

from __future__ import annotations

from prometheus_client.core import Metric

from footprint.attribution.base import AttributionHealth
from footprint.exposition.metrics import family


def attribution_families(h: AttributionHealth | None) -> list[Metric]:
    if h is None:
        return []
    source_up = family("footprint_attribution_source_up")
    for source, ok in h.sources_up.items():
        source_up.add_metric((source,), 1.0 if ok else 0.0)
    dropped = family("footprint_workload_series_dropped_total")
    dropped.add_metric((), float(h.series_dropped))
    consumers = family("footprint_attribution_consumers")
    consumers.add_metric((), float(h.consumers))
    out: list[Metric] = [source_up, dropped, consumers]
    if h.cpu_time_rejected is not None:
        rejected = family("footprint_attribution_cpu_time_rejected_total")
        for reason, count in sorted(h.cpu_time_rejected.items()):
            rejected.add_metric((reason,), float(count))
        out.append(rejected)
    if h.items_skipped is not None:
        skipped = family("footprint_attribution_items_skipped_total")
        for (source, reason), count in sorted(h.items_skipped.items()):
            skipped.add_metric((source, reason), float(count))
        out.append(skipped)
    return out
