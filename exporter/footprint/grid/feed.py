"""The grid feed: a chain of providers refreshed in the background, read by the accountant.

Reading is cheap and never blocks: `accounting_intensity()` walks the chain's last good values in memory.
Each provider has its own refresh thread, so a slow API never delays another provider or a sample.
A failed fetch keeps the last good value (until it is older than `--grid.max-age`), counts the failure
by reason, and backs off exponentially with jitter (honouring `Retry-After`), so a broken API is never
hammered. When no average value in the chain is fresh, the static table (or the 475 g/kWh world
average) is used.

One signal per counter: `accounting_intensity()` is always the location-based average (it drives
footprint_emissions_grams_total); `marginal()` is a fresh marginal value or None, never an average.

Freshness: a value's age is measured from its publication time, clamped to when we fetched it: a
time in the future (the provider's clock or ours is off, e.g. a node clock a day behind) counts as
skew (footprint_grid_clock_skew_total) and the value goes stale `max-age` after the fetch, never
later; a time that is not a finite number fails the fetch (malformed).
Time is injectable (`clock`, `rng`) so tests drive backoff and staleness without sleeping.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from footprint.config import ConfigError, Settings
from footprint.grid.base import MAX_PLAUSIBLE_INTENSITY, IntensityReading, Provider, ProviderError
from footprint.grid.chain import build_chain
from footprint.grid.providers import static
from footprint.worker import Worker

log = logging.getLogger("footprint.grid")

# Every reason a fetch can fail with; counters for these start at 0 so rate() works from the first error.
REASONS = (
    "http_5xx", "http_4xx", "rate_limited", "timeout", "connection", "malformed", "missing_field",
    "out_of_range", "unknown_zone", "auth", "stale", "internal",
)
FORECAST_HOURS = 48
# A publication time this far ahead of our clock is still counted as skew (every future time is clamped).
SKEW_TOLERANCE_SECONDS = 1.0
MAX_RETRY_AFTER = 86400.0


@dataclass
class _Slot:
    """One provider in the chain and what the feed knows about it (guarded by the feed's lock)."""

    provider: Provider
    timeless: bool
    readings: dict[str, IntensityReading] = field(default_factory=dict)  # last good value per signal
    up: bool = False
    attempted: bool = False
    last_reason: str = ""
    last_message: str = ""
    failures: int = 0  # consecutive
    next_fetch: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    skew: int = 0  # readings whose publication time was ahead of our clock (clamped)


@dataclass(frozen=True)
class ForecastSummary:
    """A reading's forecast as the exposition shows it: mean per UTC clock hour ahead, and the lowest point."""

    zone: str
    signal: str
    hours: dict[int, float]  # 0 = the hour we are in
    best: tuple[float, float] | None  # (value, start) of the greenest point ahead


@dataclass(frozen=True)
class ProviderStatus:
    name: str
    up: bool
    errors: dict[str, int] | None  # by reason; None for a provider that never fetches (static, constant)
    skew: int | None
    dropped: dict[str, int]
    fresh: tuple[IntensityReading, ...]
    forecasts: tuple[ForecastSummary, ...]
    updated: float | None
    age: float | None


@dataclass(frozen=True)
class GridStatus:
    providers: tuple[ProviderStatus, ...]
    last_resort: IntensityReading | None  # shown when no provider has a fresh average value
    fallback_active: bool


def upcoming(points: Sequence[tuple[float, float]], now: float) -> Iterator[tuple[float, float, float]]:
    """(start, end, value) of the sorted (start, value) points not over yet that start within
    FORECAST_HOURS clock hours: a point lasts until the next one starts, the last one an hour."""
    for i, (start, value) in enumerate(points):
        end = points[i + 1][0] if i + 1 < len(points) else start + 3600.0
        if end <= now:
            continue  # over already
        if start // 3600 - now // 3600 >= FORECAST_HOURS:
            return
        yield start, end, value


def _forecast_summary(r: IntensityReading, now: float) -> ForecastSummary | None:
    # Providers validate every point; this guard keeps one that slipped through from failing /metrics.
    points = sorted((p for p in r.forecast if math.isfinite(p.start) and math.isfinite(p.value)),
                    key=lambda p: p.start)
    if not points:
        return None
    hours: dict[int, list[float]] = {}
    best: tuple[float, float] | None = None  # (value, start)
    for start, _, value in upcoming([(p.start, p.value) for p in points], now):
        h = max(0, int(start // 3600 - now // 3600))  # clock hours: 0 is the hour we are in
        hours.setdefault(h, []).append(value)
        if best is None or value < best[0]:
            best = (value, start)
    means = {h: sum(values) / len(values) for h, values in sorted(hours.items())}
    return ForecastSummary(r.zone, r.signal, means, best)


class GridFeed:
    """Current intensity, forecast and provenance for the accountant, /metrics and /api/v1/grid."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.signal = settings.grid_accounting_signal  # "marginal": a marginal counter besides the average one
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        chain = build_chain(settings, clock)
        self.zone = chain.zone
        zone, region, tables = chain.zone, chain.region, chain.tables
        self._slots: list[_Slot] = [_Slot(p, bool(getattr(p, "timeless", False))) for p in chain.providers]
        first = self._slots[0].provider
        if isinstance(first, static.StaticProvider) and zone and not first.known:
            raise ConfigError(f"grid.zone: {zone!r} is not in the static table (see docs/grid.md for zones)")
        # The last resort, outside the chain: never stale, never fails.
        chained = [s.provider for s in self._slots if isinstance(s.provider, static.StaticProvider)]
        self._last_resort = chained[0] if chained else static.StaticProvider(tables, zone, region, clock)
        self._static_reading: IntensityReading | None = None  # made at the first fallback (_static)
        # accounting_intensity's last answer: (value, made at, the time its age counts from, max age).
        # Made and dropped under the lock, read without it.
        self._average: tuple[IntensityReading, float, float, float] | None = None
        self._primary = next((s for s in self._slots if _yields(s.provider, "average")), None)
        if self._primary is None:
            log.warning("grid: no provider in the chain yields the average signal; emissions use the static table")
        if self.signal == "marginal" and not any(_yields(s.provider, "marginal") for s in self._slots):
            log.warning("grid: marginal accounting, but no provider in the chain yields a marginal signal: "
                        "footprint_uncharged_energy_joules_total{signal=\"marginal\"} counts all energy")
        everyone: list[Provider] = [s.provider for s in self._slots]
        if self._last_resort not in everyone:
            everyone.append(self._last_resort)
        if len({p.basis for p in everyone} - {"unknown"}) > 1:
            log.warning("grid: the chain mixes emission-factor bases (%s): totals change basis when it falls "
                        "back; see docs/methodology.md", ", ".join(f"{p.name} {p.basis}" for p in everyone))

    # --- refresh ---------------------------------------------------------------------------------

    def start(self) -> None:
        """One daemon thread per provider. The first fetch happens at once, in the background."""
        for slot in self._slots:
            worker = Worker(f"grid-{slot.provider.name}", functools.partial(self._step, slot))
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        for worker in self._workers:
            worker.request_stop()
        for worker in self._workers:
            worker.join(timeout=self.settings.grid_timeout + 1.0)
        self._workers.clear()

    def _step(self, slot: _Slot) -> float:
        """Fetch this provider if it is due; the wait until it is due again."""
        self._refresh(slot)
        with self._lock:
            return slot.next_fetch - self.clock()

    def refresh_due(self) -> None:
        """Fetch, synchronously, every provider whose next fetch is due by the clock (tests, doctor)."""
        now = self.clock()
        for slot in self._slots:
            with self._lock:
                due = slot.next_fetch <= now
            if due:
                self._refresh(slot)

    def _fetch(self, slot: _Slot) -> list[IntensityReading]:
        provider = slot.provider
        # A provider may yield several signals in one round trip (`peer`: average and marginal).
        fetch_all = getattr(provider, "fetch_all", None)
        readings: list[IntensityReading] = fetch_all() if fetch_all else [provider.fetch()]
        if not readings:
            raise ProviderError("missing_field", f"{provider.name}: answer holds no intensity")
        now = self.clock()
        checked, stale = [], ""
        for r in readings:
            if not (math.isfinite(r.value) and 0.0 <= r.value <= MAX_PLAUSIBLE_INTENSITY):
                raise ProviderError("out_of_range", f"{provider.name}: {r.value:g} g/kWh is not plausible")
            r, skewed = clamp_time(r)
            if skewed:
                with self._lock:
                    slot.skew += 1
                log.warning("grid: %s published a value %.0fs in our future (clock skew); its age counts from "
                            "when we fetched it", provider.name, skewed)
            if not slot.timeless and self._age(r, now) > self.settings.grid_max_age:
                stale = f"{provider.name}: {r.signal} value published {self._age(r, now):.0f}s ago, past max age"
                continue  # one stale signal (a peer's marginal) leaves the other fresh one usable
            checked.append(replace(r, basis=r.basis or provider.basis))
        if not checked:
            raise ProviderError("stale", stale)
        return checked

    def _refresh(self, slot: _Slot) -> None:
        name = slot.provider.name
        try:
            readings = self._fetch(slot)
        except ProviderError as exc:
            self._failed(slot, exc.reason, str(exc), exc.retry_after)
            return
        except Exception as exc:  # a parser bug must not kill the refresh thread
            log.exception("grid: %s fetch failed unexpectedly", name)
            self._failed(slot, "internal", f"{name}: unexpected {type(exc).__name__}", None)
            return
        with self._lock:
            recovered = slot.attempted and not slot.up
            for r in readings:
                slot.readings[r.signal] = r
            self._average = None  # which value is first and fresh may have changed
            slot.up = slot.attempted = True
            slot.failures = 0
            slot.last_reason = slot.last_message = ""
            slot.next_fetch = self.clock() + self.settings.grid_refresh_interval
        if recovered:
            log.info("grid: %s recovered", name)
        log.debug("grid: %s %s", name, ", ".join(f"{r.signal} {r.value:g} g/kWh" for r in readings))

    def _failed(self, slot: _Slot, reason: str, message: str, retry_after: float | None) -> None:
        with self._lock:
            slot.errors[reason] += 1
            slot.up = False
            slot.attempted = True
            slot.failures += 1
            slot.last_reason, slot.last_message = reason, message
            delay = self._backoff(slot.failures)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            slot.next_fetch = self.clock() + delay
            failures = slot.failures
        log.warning("grid: %s fetch failed (reason=%s, attempt %d, next in %.0fs): %s",
                    slot.provider.name, reason, failures, delay, message)

    def _backoff(self, failures: int) -> float:
        """Exponential from min(refresh, 10 s), capped at 4 x refresh; jitter keeps a fleet from syncing."""
        interval = self.settings.grid_refresh_interval
        base = min(interval, 10.0)
        delay = min(4.0 * interval, base * 2.0 ** min(failures - 1, 30))
        return delay * (0.5 + 0.5 * self.rng.random())

    # --- reading ---------------------------------------------------------------------------------

    @staticmethod
    def _age(r: IntensityReading, now: float) -> float:
        return age(r, now)

    def _fresh(self, slot: _Slot, r: IntensityReading, now: float) -> bool:
        return slot.timeless or self._age(r, now) <= self.settings.grid_max_age

    def _in_use(self, signal: str, now: float) -> tuple[_Slot | None, IntensityReading | None]:
        with self._lock:
            return self._first_fresh(signal, now)

    def _first_fresh(self, signal: str, now: float) -> tuple[_Slot | None, IntensityReading | None]:
        """The first slot in the chain with a fresh value of `signal`, and that value. Call under the lock."""
        for slot in self._slots:
            r = slot.readings.get(signal)
            if r is not None and self._fresh(slot, r, now):
                return slot, r
        return None, None

    def _static(self) -> IntensityReading:
        """The static table's reading, made once: its figure is fixed at start, and this answers every
        sample while no provider has a fresh value (two frozen dataclasses a sample: 4.5 us hot, against
        0.3 us now; bench/README.md, ninth pass)."""
        if self._static_reading is None:
            self._static_reading = replace(self._last_resort.fetch(), basis=self._last_resort.basis)
        return self._static_reading

    def accounting_intensity(self) -> IntensityReading:
        """The average (location-based) value footprint_emissions_grams_total uses now: the first fresh
        one in the chain, else the static table. Never a marginal value, whatever is configured.

        Asked every sample, answered from the last answer while it stands (`_average`): only a fetch
        changes which value is first and fresh, and it drops the answer; until then the answer holds
        from when it was made (a clock set back may make a stale value ahead of it fresh again) while
        its own value is fresh, for good where it never goes stale (a timeless provider, the static
        table). The walk of the chain under the lock was ~17 us of a 1 Hz sample (bench/README.md,
        twelfth pass)."""
        now = self.clock()
        held = self._average
        if held is not None and held[1] <= now and now - held[2] <= held[3]:
            return held[0]
        with self._lock:
            slot, r = self._first_fresh("average", now)
            if slot is None or r is None:
                r, at, limit = self._static(), now, math.inf
            elif slot.timeless:
                at, limit = now, math.inf
            else:
                at, limit = counted_from(r), self.settings.grid_max_age
            self._average = (r, now, at, limit)
        return r

    def marginal(self) -> IntensityReading | None:
        """A fresh marginal value, or None: never replaced by an average."""
        return self._in_use("marginal", self.clock())[1]

    def settled(self) -> bool:
        """True once what accounting_intensity() (and, with marginal accounting, marginal()) gives is
        the chain's answer: every provider ahead of the one in use has answered a first fetch (value or
        error). Until then a restart gap waits rather than take the static table by default."""
        now = self.clock()
        signals = ("average", "marginal") if self.signal == "marginal" else ("average",)
        with self._lock:
            for signal in signals:
                for slot in self._slots:
                    r = slot.readings.get(signal)
                    if r is not None and self._fresh(slot, r, now):
                        break
                    if not slot.attempted and _yields(slot.provider, signal):
                        return False
        return True

    def fallback_active(self) -> bool:
        """The average in use is not the first average provider's (with none in the chain, the static
        table is the configured source, not a fallback)."""
        slot, _ = self._in_use("average", self.clock())
        return slot is not self._primary

    # --- exposition ------------------------------------------------------------------------------

    def _snapshot(self) -> list[_Slot]:
        with self._lock:
            return [
                _Slot(s.provider, s.timeless, dict(s.readings), s.up, s.attempted, s.last_reason,
                      s.last_message, s.failures, s.next_fetch, Counter(s.errors), s.skew)
                for s in self._slots
            ]

    def status(self) -> GridStatus:
        """What the exposition shows of the chain now, as plain values (exposition/grid.py builds the families)."""
        now = self.clock()
        slots = self._snapshot()
        providers = []
        for slot in slots:
            http = getattr(slot.provider, "http", None)
            latest = max(slot.readings.values(), key=lambda r: r.fetched_at, default=None)
            providers.append(ProviderStatus(
                name=slot.provider.name,
                up=slot.up,
                errors=None if slot.timeless else {reason: slot.errors.get(reason, 0) for reason in REASONS},
                skew=None if slot.timeless else slot.skew,
                dropped=dict(sorted(getattr(http, "dropped", {}).items())),
                fresh=tuple(r for r in slot.readings.values() if self._fresh(slot, r, now)),
                forecasts=tuple(f for r in slot.readings.values() if (f := _forecast_summary(r, now)) is not None),
                updated=None if latest is None else (latest.published_at or latest.fetched_at),
                age=None if latest is None else self._age(latest, now),
            ))
        last_resort = None
        if self._in_use("average", now)[1] is None and not any(s.provider.name == "static" for s in slots):
            last_resort = self._last_resort.fetch()
        return GridStatus(tuple(providers), last_resort, self.fallback_active())

    def api_payload(self) -> dict[str, Any]:
        """What /api/v1/grid serves and the `peer` provider reads: values, forecast and provenance."""
        now = self.clock()
        slots = self._snapshot()
        slot, acc = self._in_use("average", now)
        if acc is None:
            acc = self._static()
        marginal = self.marginal()
        return {
            "version": 1,
            "generated_at": now,
            "accounting_signal": self.signal,
            "zone": self.zone,
            "fallback_active": slot is not self._primary,
            "accounting": _reading_json(acc, now),
            "marginal": _reading_json(marginal, now) if marginal else None,
            "chain": [
                {
                    "provider": s.provider.name,
                    "signal": s.provider.signal,
                    "basis": s.provider.basis,
                    "up": s.up,
                    "last_error": s.last_reason or None,
                    "errors": {k: v for k, v in sorted(s.errors.items()) if v},
                    "clock_skew": s.skew,
                    "fresh": {sig: self._fresh(s, r, now) for sig, r in s.readings.items()},
                    "readings": [_reading_json(r, now) for r in s.readings.values()],
                }
                for s in slots
            ],
        }

    def doctor_lines(self) -> list[str]:
        """Doctor lines: the chain, each provider's configuration and state. Never a secret."""
        now = self.clock()
        chain = " -> ".join(s.provider.name for s in self._slots)
        st = self.settings
        lines = [
            f"grid: chain {chain} (then static table); emissions use the average signal"
            + ("; marginal accounting: its own counter" if self.signal == "marginal" else "")
            + f"; zone {self.zone or '(none)'}",
            f"grid: refresh every {st.grid_refresh_interval:g}s, max age {st.grid_max_age:g}s,"
            f" timeout {st.grid_timeout:g}s",
        ]
        for s in self._snapshot():
            state = "up" if s.up else "not fetched yet"
            if s.attempted and not s.up:
                state = f"down ({s.last_reason}: {s.last_message})"
            values = ", ".join(
                f"{r.signal} {r.value:g} g/kWh {self._age(r, now):.0f}s old" for r in s.readings.values()
            )
            skew = f"; {s.skew} value(s) published in our future (clock skew)" if s.skew else ""
            lines.append(f"grid: {s.provider.describe()}; basis {s.provider.basis}; {state}"
                         f"{'; ' + values if values else ''}{skew}")
        if all(s.provider is not self._last_resort for s in self._slots):
            lines.append(f"grid: last resort {self._last_resort.describe()}; basis {self._last_resort.basis}")
        bases = {s.provider.basis for s in self._slots} | {self._last_resort.basis}
        if len(bases - {"unknown"}) > 1:
            lines.append("grid: WARNING: the chain mixes emission-factor bases (lifecycle and direct): totals "
                         "change basis when it falls back (docs/methodology.md)")
        r = self.accounting_intensity()
        lines.append(f"grid: in use {r.value:g} g/kWh {r.signal} ({r.basis} basis) from {r.provider} ({r.zone})")
        m = self.marginal()
        if self.signal == "marginal":
            lines.append(f"grid: marginal in use {m.value:g} g/kWh ({m.basis} basis) from {m.provider}" if m else
                         "grid: no fresh marginal value: energy is counted in footprint_uncharged_energy_joules_total")
        return lines


def _yields(provider: Provider, signal: str) -> bool:
    """Whether a provider can give `signal` (the peer relays both of its grid pod's signals)."""
    return provider.signal == signal or hasattr(provider, "fetch_all")


def clamp_time(r: IntensityReading) -> tuple[IntensityReading, float]:
    """A reading whose publication time is ahead of when we fetched it, clamped to the fetch time,
    and by how many seconds it was ahead (0: not skewed beyond SKEW_TOLERANCE_SECONDS). Raises
    ProviderError for a time that is not a finite number."""
    at = r.published_at
    if at is None:
        return r, 0.0
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ProviderError("malformed", f"{r.provider}: publication time {at!r} is not a finite number")
    if at <= r.fetched_at:
        return r, 0.0
    ahead = at - r.fetched_at
    return replace(r, published_at=r.fetched_at), (ahead if ahead > SKEW_TOLERANCE_SECONDS else 0.0)


def counted_from(r: IntensityReading) -> float:
    """When a value's age counts from: its publication, clamped to when we fetched it."""
    return r.fetched_at if r.published_at is None else min(r.published_at, r.fetched_at)


def age(r: IntensityReading, now: float) -> float:
    """Seconds since the value was published (clamped readings: since it was fetched), never negative."""
    return max(0.0, now - counted_from(r))


def _reading_json(r: IntensityReading, now: float) -> dict[str, Any]:
    out = asdict(r)
    out["forecast"] = [{"start": p.start, "value": p.value} for p in r.forecast]
    out["age_seconds"] = age(r, now)
    return out
