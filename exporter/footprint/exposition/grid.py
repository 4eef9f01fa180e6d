"""The grid chain's families, built from GridFeed.status() (plain values): names, HELP and labels are
the catalog's."""

from __future__ import annotations

from prometheus_client.core import Metric

from footprint.exposition.metrics import family
from footprint.grid.feed import GridStatus


def grid_families(status: GridStatus) -> list[Metric]:
    intensity = family("footprint_grid_carbon_intensity_grams_per_kilowatt_hour")
    updated = family("footprint_grid_intensity_updated_timestamp_seconds")
    age = family("footprint_grid_intensity_age_seconds")
    up = family("footprint_grid_provider_up")
    errors = family("footprint_grid_fetch_errors_total")
    dropped = family("footprint_grid_points_dropped_total")
    skew = family("footprint_grid_clock_skew_total")
    forecast = family("footprint_grid_forecast_grams_per_kilowatt_hour")
    fmin = family("footprint_grid_forecast_min_grams_per_kilowatt_hour")
    fmin_start = family("footprint_grid_forecast_min_start_timestamp_seconds")
    for p in status.providers:
        up.add_metric([p.name], 1.0 if p.up else 0.0)
        for reason, n in (p.errors or {}).items():
            errors.add_metric([p.name, reason], float(n))
        if p.skew is not None:
            skew.add_metric([p.name], float(p.skew))
        for reason, n in p.dropped.items():
            dropped.add_metric([p.name, reason], float(n))
        for r in p.fresh:
            intensity.add_metric([r.zone, p.name, r.signal], r.value)
        for f in p.forecasts:
            base = [f.zone, p.name, f.signal]
            for h, mean in f.hours.items():
                forecast.add_metric([*base, str(h)], mean)
            if f.best is not None:
                fmin.add_metric(base, f.best[0])
                fmin_start.add_metric(base, f.best[1])
        if p.updated is not None and p.age is not None:
            updated.add_metric([p.name], p.updated)
            age.add_metric([p.name], p.age)
    if status.last_resort is not None:
        r = status.last_resort
        intensity.add_metric([r.zone, r.provider, r.signal], r.value)
    fallback = family("footprint_grid_fallback_active")
    fallback.add_metric([], 1.0 if status.fallback_active else 0.0)
    return [intensity, updated, age, up, errors, dropped, skew, fallback, forecast, fmin, fmin_start]
