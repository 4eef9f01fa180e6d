"""What a grid provider returns, and the errors it raises.

Units: gCO2e/kWh. Times: Unix seconds (UTC). `signal` is "average" (location-based, always drives
footprint_emissions_grams_total) or "marginal" (for decisions; with marginal accounting it drives its
own counter, footprint_marginal_emissions_grams_total, and nothing else).

`basis` is what the emission factors behind a value count: "lifecycle" (fuel supply chain, plant
construction and decommissioning included), "direct" (stack emissions of combustion only), or
"unknown". Each provider declares it (docs/methodology.md cites where each is learned); values of
different bases are not the same quantity, so a chain that mixes them gets a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MAX_PLAUSIBLE_INTENSITY = 3000.0  # g/kWh; above this a value is treated as a provider error
BASES = ("lifecycle", "direct", "unknown")


@dataclass(frozen=True)
class ForecastPoint:
    start: float  # Unix seconds
    value: float  # gCO2e/kWh


@dataclass(frozen=True)
class IntensityReading:
    value: float  # gCO2e/kWh
    signal: str  # "average" | "marginal"
    provider: str
    zone: str
    published_at: float | None = None  # when the provider says the value holds (Unix seconds)
    fetched_at: float = 0.0  # when we got it (Unix seconds)
    estimated: bool = False  # the provider says it is an estimate / forecast, not a measurement
    forecast: tuple[ForecastPoint, ...] = ()
    basis: str = ""  # "lifecycle" | "direct" | "unknown"; "" until the feed sets the provider's


class ProviderError(Exception):
    """A fetch failed. `reason` is a short, fixed label for metrics: http_5xx, rate_limited, timeout,
    connection, malformed, missing_field, out_of_range, unknown_zone, auth, config."""

    def __init__(self, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class Provider(Protocol):
    name: str
    signal: str  # the signal this provider yields

    @property
    def basis(self) -> str:
        """Emission-factor basis of its values (see BASES)."""
        ...

    def fetch(self) -> IntensityReading:
        """One round trip. Raises ProviderError; never returns a made-up value."""
        ...

    def describe(self) -> str:
        """One line for doctor (no secrets)."""
        ...
