"""Footprint: energy and carbon emissions of ML machines as Prometheus metrics."""

__version__ = "0.1.0"
