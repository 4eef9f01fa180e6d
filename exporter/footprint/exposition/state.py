"""The checkpoint's health families, from the checkpointer's plain CheckpointStatus."""

from __future__ import annotations

from prometheus_client.core import Metric

from footprint.exposition.metrics import family
from footprint.state.checkpoint import CheckpointStatus


def checkpoint_families(status: CheckpointStatus | None) -> list[Metric]:
    if status is None:
        return []
    failures = family("footprint_checkpoint_write_failures_total")
    failures.add_metric((), float(status.write_failures))
    out: list[Metric] = [failures]
    if status.last_success is not None:
        last = family("footprint_checkpoint_last_success_timestamp_seconds")
        last.add_metric((), status.last_success)
        out.append(last)
    return out
