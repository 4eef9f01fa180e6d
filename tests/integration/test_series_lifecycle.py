"""A workload series removed after its pod's grace period and made again later is a new series (issue 14).

The renderer keeps each series' label block and `_created` line; a series re-created under the same
labels must get its new `_created`, not the one cached from before it was removed.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.fakes.workloads import INFERENCE, fake_cluster
from tests.support.exporter import start_exporter
from tests.support.promtext import Series, parse, pick

CREATED = "footprint_workload_energy_joules_created"


def created(s: Series) -> float | None:
    ns, pod, container = INFERENCE
    found = pick(s, CREATED, namespace=ns, pod=pod, container=container, component="cpu")
    return next(iter(found.values())) if found else None


def test_a_recreated_workload_series_gets_a_fresh_created(tmp_path: Path) -> None:
    cluster = fake_cluster(tmp_path)
    pods = list(cluster.api.pods)
    run = [*cluster.args, "--sample.interval=100ms", "--attribution.interval=0s", "--attribution.grace-period=1s",
           "--web.enable-created-series", "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]

    def busy(text: str) -> str:
        """Both containers use CPU between scrapes, so each pass gives them energy."""
        cluster.tree.advance(cluster.train_id, 50_000)
        cluster.tree.advance(cluster.infer_id, 50_000)
        return text

    try:
        with start_exporter(run) as exp:
            first = exp.wait_until(lambda text: created(parse(busy(text))), timeout=20)
            cluster.api.set_pods([p for p in pods if p["metadata"]["name"] != INFERENCE[1]])
            exp.wait_until(lambda text: created(parse(busy(text))) is None, timeout=20)  # gone after the grace
            back = time.time()
            cluster.api.set_pods(pods)
            again = exp.wait_until(lambda text: created(parse(busy(text))), timeout=20)
    finally:
        cluster.stop()
    assert again != first
    assert again >= back - 0.5  # made after the pod came back (the exporter's clock, not ours: 0.5 s of slack)
