"""Footprint: energy and carbon emissions of ML machines as Prometheus metrics."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`footprint.track(...)` without importing the measuring parts for every `import footprint`."""
    if name == "track":
        from footprint.track import track

        return track
    raise AttributeError(f"module 'footprint' has no attribute {name!r}")
