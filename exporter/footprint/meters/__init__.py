"""Meters: one module per kind of hardware (rapl, nvml, estimate)."""
