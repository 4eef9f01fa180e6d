"""Building the grid chain from the settings: one factory per provider, its secrets and checks.

Every configuration error surfaces here, at start-up, as a ConfigError naming the key (exit 2).
Running the chain (threads, backoff, fallback) is feed.py's job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from footprint import __version__
from footprint.config import ConfigError, Settings, env_name, read_secret
from footprint.grid.base import Provider
from footprint.grid.providers import constant, static

# HTTP providers (and `requests`, ~7 MB resident) are imported only when the chain names one: the
# default static table needs no HTTP client at all.
if TYPE_CHECKING:
    from footprint.grid.providers._http import Http

log = logging.getLogger("footprint.grid")

USER_AGENT = f"footprint-exporter/{__version__}"


@dataclass(frozen=True)
class _Context:
    """What provider factories need."""

    settings: Settings
    zone: str
    region: str
    tables: static.Tables
    clock: Callable[[], float]

    def http(self, name: str) -> Http:
        """One session per provider: its own connection pool, used by its own thread only."""
        import requests

        from footprint.grid.providers._http import Http

        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        return Http(name, session, self.settings.grid_timeout, self.clock)

    def require_zone(self, provider: str, example: str) -> str:
        if not self.zone:
            raise ConfigError(f"grid.zone: required by the {provider} provider (e.g. {example})")
        return self.zone

    def require_url(self, provider: str) -> str:
        url: str = getattr(self.settings, f"grid_{provider}_url")
        if not url:
            raise ConfigError(f"grid.{provider}.url: required by the {provider} provider")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"grid.{provider}.url: must start with http:// or https://")
        return url


def _secret(settings: Settings, value_field: str, file_field: str, key: str, what: str) -> str:
    """A secret from its file setting, else from its (env) value setting; errors never show it."""
    path = getattr(settings, file_field)
    if path:
        return read_secret(path, key)
    value: str = getattr(settings, value_field).strip()
    if not value:
        env = env_name(key)
        raise ConfigError(f"{key}: required by the {what} provider (or set {env.replace('_FILE', '')})")
    return value


def _build_static(ctx: _Context) -> Provider:
    return static.StaticProvider(ctx.tables, ctx.zone, ctx.region, ctx.clock)


def _build_constant(ctx: _Context) -> Provider:
    value = ctx.settings.grid_constant_value
    if value is None:
        raise ConfigError("grid.constant.value: required when the constant provider is in the chain")
    return constant.ConstantProvider(value, ctx.settings.grid_accounting_signal, ctx.zone, ctx.clock)


def _build_electricitymaps(ctx: _Context) -> Provider:
    from footprint.grid.providers import electricitymaps

    s = ctx.settings
    token = _secret(s, "grid_electricitymaps_token", "grid_electricitymaps_token_file",
                    "grid.electricitymaps.token-file", "electricitymaps")
    zone = ctx.require_zone("electricitymaps", "DE, US-CAL-CISO")
    return electricitymaps.ElectricityMapsProvider(
        ctx.http("electricitymaps"), ctx.require_url("electricitymaps"), token, zone
    )


def _build_watttime(ctx: _Context) -> Provider:
    from footprint.grid.providers import watttime

    s = ctx.settings
    if not s.grid_watttime_username:
        raise ConfigError("grid.watttime.username: required by the watttime provider")
    password = _secret(s, "grid_watttime_password", "grid_watttime_password_file",
                       "grid.watttime.password-file", "watttime")
    region = s.grid_watttime_region.strip() or ctx.require_zone("watttime", "CAISO_NORTH, a WattTime region")
    return watttime.WattTimeProvider(
        ctx.http("watttime"), ctx.require_url("watttime"), s.grid_watttime_username, password, region
    )


def _build_neso(ctx: _Context) -> Provider:
    from footprint.grid.providers import neso

    if ctx.zone and ctx.zone.upper().split("-")[0] not in ("GB", "UK"):
        raise ConfigError(f"grid.zone: the neso provider covers Great Britain (GB) only, not {ctx.zone!r}")
    return neso.NesoProvider(ctx.http("neso"), ctx.require_url("neso"), ctx.settings.grid_neso_region)


def _build_energinet(ctx: _Context) -> Provider:
    from footprint.grid.providers import energinet

    zone = ctx.require_zone("energinet", "DK1 or DK2")
    area = energinet.AREAS.get(zone.upper())
    if area is None:
        raise ConfigError(f"grid.zone: the energinet provider needs DK1 or DK2 (or DK-DK1, DK-DK2), not {zone!r}")
    return energinet.EnerginetProvider(ctx.http("energinet"), ctx.require_url("energinet"), area)


def _build_carbonaware(ctx: _Context) -> Provider:
    from footprint.grid.providers import carbonaware

    location = ctx.settings.grid_zone.strip() or ctx.region
    if not location:
        raise ConfigError("grid.zone: required by the carbonaware provider (a location it knows, e.g. eastus)")
    return carbonaware.CarbonAwareProvider(
        ctx.http("carbonaware"), ctx.require_url("carbonaware"), location, ctx.settings.grid_carbonaware_signal
    )


def _build_peer(ctx: _Context) -> Provider:
    from footprint.grid.providers import peer

    return peer.build(ctx.http("peer"), ctx.require_url("peer"), ctx.settings)


FACTORIES: dict[str, Callable[[_Context], Provider]] = {
    "static": _build_static,
    "constant": _build_constant,
    "electricitymaps": _build_electricitymaps,
    "watttime": _build_watttime,
    "neso": _build_neso,
    "energinet": _build_energinet,
    "carbonaware": _build_carbonaware,
    "peer": _build_peer,
}


@dataclass(frozen=True)
class Chain:
    providers: list[Provider]  # in order: the first is preferred, the rest are fallbacks
    zone: str
    region: str
    tables: static.Tables


def build_chain(settings: Settings, clock: Callable[[], float]) -> Chain:
    """--grid.provider then --grid.fallback, each built once; the zone derived from the region if unset."""
    try:
        tables = static.Tables(settings.grid_static_file)
    except static.TableError as exc:
        raise ConfigError(f"grid.static.file: {exc}") from None
    region = settings.grid_region_label.strip()
    zone = settings.grid_zone.strip()
    if not zone and region:
        zone = tables.zone_for_region(region) or ""
        if not zone:
            log.warning("grid: region %r is not in the static region table; no zone derived", region)
    names = [settings.grid_provider, *settings.grid_fallback]
    if not zone and "neso" in names:
        zone = "GB"  # the only grid NESO covers; also what the static fallback should use
    ctx = _Context(settings, zone, region, tables, clock)
    seen = set()
    providers: list[Provider] = []
    for name in names:
        if name in seen:
            raise ConfigError(f"grid.fallback: provider {name!r} appears twice in the chain")
        seen.add(name)
        if name not in FACTORIES:
            raise ConfigError(f"grid.provider: unknown provider {name!r}")
        providers.append(FACTORIES[name](ctx))
    return Chain(providers, zone, region, tables)

