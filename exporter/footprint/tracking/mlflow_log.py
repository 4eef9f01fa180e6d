"""A run's figures as MLflow metrics and tags (optional: `pip install 'footprint-exporter[mlflow]'`).

They go on the active MLflow run (this process's, or the one MLFLOW_RUN_ID names, whose name and status
are left alone); when there is none, a run named after the Footprint run is started and ended here.
The tracking store is MLflow's own choice (MLFLOW_TRACKING_URI; a local file store or a sqlite file
work without a server).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from footprint.config import ConfigError

if TYPE_CHECKING:
    from footprint.track import Run


def require() -> None:
    """--mlflow asked for it: a missing package is a configuration error (exit 2), found before the run."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise ConfigError("mlflow: the mlflow package is not installed (pip install 'footprint-exporter[mlflow]')") \
            from None


def metrics(run: Run) -> dict[str, float]:
    out = {
        "footprint_energy_kwh": run.energy_kwh,
        "footprint_energy_joules": run.energy_joules,
        "footprint_gpu_joules": run.gpu_joules,
        "footprint_cpu_joules": run.cpu_joules,
        "footprint_dram_joules": run.dram_joules,
        "footprint_emissions_grams": run.emissions_grams,
        "footprint_embodied_grams": run.embodied_grams,
        "footprint_rest_of_machine_energy_joules": run.rest_of_machine_energy_joules,
        "footprint_duration_seconds": run.duration_seconds,
    }
    if run.intensity_grams_per_kwh is not None:
        out["footprint_intensity_grams_per_kwh"] = run.intensity_grams_per_kwh
    if run.water_liters is not None:
        out["footprint_water_liters"] = run.water_liters
    if run.cost is not None:
        out["footprint_cost"] = run.cost
    return out


def tags(run: Run) -> dict[str, str]:
    return {
        "footprint.run_id": run.run_id,
        "footprint.source": run.source,
        "footprint.intensity_providers": ";".join(sorted(run.intensity.providers)),
        "footprint.version": run.footprint_version,
        **run.tags,
    }


def log_run(run: Run, env: Mapping[str, str] = os.environ) -> None:
    """On the active run of this process; else on the run MLFLOW_RUN_ID names (as `mlflow run` sets it for
    the commands it starts), left as it was (name, status); else on a new run named after ours."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    if mlflow.active_run() is not None:
        mlflow.log_metrics(metrics(run))
        mlflow.set_tags(tags(run))
        return
    run_id = env.get("MLFLOW_RUN_ID")
    if run_id:
        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics(run).items()],
                                        tags=[RunTag(k, v) for k, v in tags(run).items()])
        return
    with mlflow.start_run(run_name=run.run_id):
        mlflow.log_metrics(metrics(run))
        mlflow.set_tags(tags(run))
