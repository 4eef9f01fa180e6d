"""The metric catalog: every name the exporter serves, its type, labels and HELP, in one place.

docs/metrics.md is generated from CATALOG (make docs), and tests/unit/test_docs.py checks that what the
exporter serves says the same. Other modules use these constants (the ledger is keyed by metric name);
none writes a metric name or HELP text of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

# Series the accountant writes into the ledger (the exposition renders them).
ENERGY = "footprint_energy_joules_total"  # component, device, source
EMISSIONS = "footprint_emissions_grams_total"  # component, device
MARGINAL_EMISSIONS = "footprint_marginal_emissions_grams_total"  # component, device
UNCHARGED_ENERGY = "footprint_uncharged_energy_joules_total"  # signal
NODE_ENERGY = "footprint_node_energy_joules_total"
NODE_EMISSIONS = "footprint_node_emissions_grams_total"
FACILITY_OVERHEAD = "footprint_facility_overhead_energy_joules_total"
EMBODIED = "footprint_embodied_emissions_grams_total"  # component, device
WATER = "footprint_water_liters_total"  # scope
COST = "footprint_energy_cost_total"  # currency
WORKLOAD_ENERGY = "footprint_workload_energy_joules_total"  # namespace, pod, container, workload, component
WORKLOAD_EMISSIONS = "footprint_workload_emissions_grams_total"  # namespace, pod, container, workload
PROCESS_GROUP_ENERGY = "footprint_process_group_energy_joules_total"  # process_group, component
UNATTRIBUTED_ENERGY = "footprint_unattributed_energy_joules_total"  # component, device
UNATTRIBUTED_EMISSIONS = "footprint_unattributed_emissions_grams_total"  # component, device
PENDING_ENERGY = "footprint_attribution_pending_energy_joules"  # component, device (gauge)
PENDING_EMISSIONS = "footprint_attribution_pending_emissions_grams"  # component, device (gauge)
PROCESS_GROUP_EMISSIONS = "footprint_process_group_emissions_grams_total"  # process_group
REJECTED_METRIC = "footprint_counter_rejected_total"  # component, device, reason
# Read back by `measure --from` and `report` (the exporter's own gauges).
ACCOUNTING_INTENSITY = "footprint_grid_accounting_intensity_grams_per_kilowatt_hour"  # grid_zone, provider, signal
PUE = "footprint_pue_ratio"
# The checkpointer's.
GAP_JOULES = "footprint_checkpoint_restored_gap_joules_total"
GAP_REJECTED = "footprint_checkpoint_gap_rejected_total"
LAST_SUCCESS = "footprint_checkpoint_last_success_timestamp_seconds"
WRITE_FAILURES = "footprint_checkpoint_write_failures_total"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters with _total)
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str
    filled_by: str = ""  # where it is filled: core, nvml, grid, attribution...


def _c(name: str, labels: tuple[str, ...], help: str, filled_by: str = "core") -> MetricSpec:
    return MetricSpec(name, "counter", labels, help, filled_by)


def _g(name: str, labels: tuple[str, ...], help: str, filled_by: str = "core") -> MetricSpec:
    return MetricSpec(name, "gauge", labels, help, filled_by)


DEV = ("component", "device")
WORKLOAD = ("namespace", "pod", "container", "workload")
GRID = ("grid_zone", "provider", "signal")

CATALOG: tuple[MetricSpec, ...] = (
    _c(ENERGY, (*DEV, "source"), "Energy drawn by a device, joules (source: nvml, nvml_power, amdsmi, "
       "amdsmi_power, hwmon_power, rapl, estimate)."),
    _g("footprint_power_watts", (*DEV, "source"), "Power of a device over the last sample, watts."),
    _c(NODE_ENERGY, (), "IT energy of this node (packages + dram + GPUs, nothing counted twice), joules."),
    _g("footprint_node_power_watts", (), "IT power of this node over the last sample, watts."),
    _g("footprint_device_info", (*DEV, "..."), "Static facts about a device (join on component, device)."),
    _g("footprint_device_up", DEV, "1 if the device was read in the last sample, else 0."),
    _g("footprint_gpu_utilization_ratio", ("device",), "GPU utilisation over the last sample, 0-1.", "nvml, amdsmi"),
    _g("footprint_gpu_power_limit_watts", ("device",), "GPU enforced power limit, watts.", "nvml, amdsmi"),
    _c(EMISSIONS, DEV, "Operational CO2e of a device: energy x PUE x grid intensity of each interval, grams."),
    _c(MARGINAL_EMISSIONS, DEV, "Marginal CO2e of a device (--grid.accounting-signal=marginal): energy x PUE x "
       "a fresh marginal intensity, never an average, grams.", "grid"),
    _c(UNCHARGED_ENERGY, ("signal",), "Node energy drawn while no fresh value of this signal existed, so not "
       "in that signal's emissions counter, joules.", "grid"),
    _c(NODE_EMISSIONS, (), "Operational CO2e of this node, grams."),
    _c(EMBODIED, DEV, "Manufacturing CO2e amortised over the device lifetime, grams.", "embodied"),
    _c(FACILITY_OVERHEAD, (), "Facility energy beyond IT energy: node energy x (PUE - 1), joules."),
    _c(WATER, ("scope",),
       "Water: site (IT energy x WUE) or grid (facility energy x grid water intensity), litres."),
    _c(COST, ("currency",), "Electricity cost of the facility energy, in the configured currency."),
    _g(PUE, (), "Configured power usage effectiveness of the facility."),
    _g(ACCOUNTING_INTENSITY, GRID,
       "Grid carbon intensity the emissions counters use now, gCO2e/kWh."),
    _g("footprint_grid_carbon_intensity_grams_per_kilowatt_hour", GRID,
       "Latest carbon intensity from each provider, gCO2e/kWh.", "grid"),
    _g("footprint_grid_intensity_updated_timestamp_seconds", ("provider",),
       "When the provider published its latest value, Unix seconds.", "grid"),
    _g("footprint_grid_intensity_age_seconds", ("provider",), "Age of the provider's latest value, seconds.", "grid"),
    _g("footprint_grid_provider_up", ("provider",), "1 if the provider's last fetch succeeded.", "grid"),
    _c("footprint_grid_fetch_errors_total", ("provider", "reason"), "Failed provider fetches by reason.", "grid"),
    _c("footprint_grid_clock_skew_total", ("provider",), "Values published in our future (clock skew), clamped "
       "to when they were fetched: they go stale max-age after the fetch.", "grid"),
    _c("footprint_grid_points_dropped_total", ("provider", "reason"),
       "Values in provider answers (forecast points) that failed validation and were left out, by reason.", "grid"),
    _g("footprint_grid_fallback_active", (), "1 if the value in use is not from the first provider.", "grid"),
    _g("footprint_grid_forecast_grams_per_kilowatt_hour", (*GRID, "hours_ahead"),
       "Forecast intensity, by hours ahead, gCO2e/kWh.", "grid"),
    _g("footprint_grid_forecast_min_grams_per_kilowatt_hour", GRID,
       "Lowest forecast intensity ahead (the greenest window), gCO2e/kWh.", "grid"),
    _g("footprint_grid_forecast_min_start_timestamp_seconds", GRID,
       "When the greenest window ahead starts, Unix seconds.", "grid"),
    _c(WORKLOAD_ENERGY, (*WORKLOAD, "component"), "Energy attributed to a workload, joules.", "attribution"),
    _c(WORKLOAD_EMISSIONS, WORKLOAD, "Operational CO2e attributed to a workload, grams.", "attribution"),
    _c(UNATTRIBUTED_ENERGY, DEV, "Device energy no consumer used (idle), joules.", "attribution"),
    _c(UNATTRIBUTED_EMISSIONS, DEV, "Operational CO2e of unattributed energy, grams.", "attribution"),
    _g(PENDING_ENERGY, DEV, "Device energy drawn since the last attribution pass (--attribution.interval), "
       "not in workload or unattributed energy yet, joules.", "attribution"),
    _g(PENDING_EMISSIONS, DEV, "Operational CO2e of the pending energy, at each sample's intensity, grams.",
       "attribution"),
    _c(PROCESS_GROUP_ENERGY, ("process_group", "component"),
       "Energy attributed to a group of processes (--attribution.processes), joules.", "attribution"),
    _c(PROCESS_GROUP_EMISSIONS, ("process_group",),
       "Operational CO2e attributed to a group of processes, grams.", "attribution"),
    _c("footprint_workload_series_dropped_total", (), "Workload series not created because of the cap.", "attribution"),
    _c("footprint_attribution_cpu_time_rejected_total", ("reason",),
       "CPU-time reads not charged (unreadable, backwards, jump beyond all CPUs x elapsed).", "attribution"),
    _c("footprint_attribution_items_skipped_total", ("source", "reason"),
       "Items of a source's list (API server pods, pod-resources pods) skipped as malformed, by reason.",
       "attribution"),
    _g("footprint_attribution_source_up", ("source",),
       "1 if the attribution source (apiserver, podresources, cgroup, procfs) answered when last used.",
       "attribution"),
    _g("footprint_attribution_consumers", (), "Consumers (containers, process groups) that have workload series now.",
       "attribution"),
    _g("footprint_meter_up", ("meter",), "1 if the meter's last read succeeded."),
    _c(REJECTED_METRIC, (*DEV, "reason"), "Hardware counter readings rejected as glitches (charged nothing, "
       "baseline kept): non_finite, out_of_range, backwards, jump, implausible_wrap, ambiguous_wrap, "
       "implausible_reset."),
    MetricSpec("footprint_sample_duration_seconds", "histogram", (), "Time one sample took, seconds.", "core"),
    _c(GAP_REJECTED, (*DEV, "reason"), "Restart gaps not recovered, by reason "
       "(not_read, ambiguous_wrap, jump, rebooted, other_device, ...), see docs/reliability.md.", "checkpoint"),
    _c(GAP_JOULES, DEV, "Energy drawn while the exporter was down, recovered "
       "from hardware counters at restart (already in footprint_energy_joules_total), joules.", "checkpoint"),
    _g(LAST_SUCCESS, (), "When the checkpoint was last written.",
       "checkpoint"),
    _c(WRITE_FAILURES, (), "Checkpoint writes that failed (disk full, read-only).",
       "checkpoint"),
    _g("footprint_build_info", ("version",), "Build information; always 1."),
)
SPECS = {s.name: s for s in CATALOG}
