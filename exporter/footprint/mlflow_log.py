"""A run's figures as MLflow metrics and tags (optional: `pip install 'footprint-exporter[mlflow]'`).

They go on the active MLflow run; when none is active, a run named after the Footprint run is started
and ended here. The tracking store is MLflow's own choice (MLFLOW_TRACKING_URI, a local file store or
a sqlite file work without a server).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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


def log_run(run: Run) -> None:
    import mlflow

    active: Any = mlflow.active_run()
    started = active is None
    if started:
        mlflow.start_run(run_name=run.run_id)
    try:
        mlflow.log_metrics(metrics(run))
        mlflow.set_tags(tags(run))
    finally:
        if started:
            mlflow.end_run()
