"""Freshness of grid values: a publication time in the future (the provider's clock, or ours a day
behind) is clamped to when we fetched it and counted as skew, so the value goes stale max-age after the
fetch; a time that is not a finite number is refused. The rule as properties, then the feed against a
real HTTP server (Electricity Maps' JSON) whose clock runs a day ahead."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from footprint.grid.base import IntensityReading, ProviderError
from footprint.grid.feed import SKEW_TOLERANCE_SECONDS, age, clamp_time
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.support.grid_helpers import TOKEN, Clock, make_feed, secret_file, value

TIMES = st.floats(0, 4e9)


def reading(published: float | None, fetched: float) -> IntensityReading:
    return IntensityReading(300.0, "average", "x", "DE", published_at=published, fetched_at=fetched)


@given(published=TIMES, fetched=TIMES, later=st.floats(0, 1e7))
def test_property_a_value_is_never_younger_than_its_fetch(published: float, fetched: float, later: float) -> None:
    now = fetched + later
    clamped, skew = clamp_time(reading(published, fetched))
    assert age(clamped, now) >= now - fetched  # so it goes stale max-age after the fetch at the latest
    if published <= fetched:
        assert clamped.published_at == published and skew == 0.0
        assert age(clamped, now) == max(0.0, now - published)
    else:
        assert clamped.published_at == fetched
        assert skew == (published - fetched if published - fetched > SKEW_TOLERANCE_SECONDS else 0.0)


@given(fetched=TIMES, later=st.floats(0, 1e7))
def test_property_a_value_without_a_time_ages_from_its_fetch(fetched: float, later: float) -> None:
    now = fetched + later
    assert age(clamp_time(reading(None, fetched))[0], now) == now - fetched


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_time_that_is_not_a_number_is_refused(bad: float) -> None:
    with pytest.raises(ProviderError) as err:
        clamp_time(reading(bad, 1000.0))
    assert err.value.reason == "malformed"


def test_a_provider_a_day_ahead_goes_stale_after_max_age_and_counts_skew(clock: Clock, tmp_path: Path) -> None:
    with serving(ElectricityMapsFake(TOKEN, clock)) as em:
        em.state.age = -86400.0  # its `datetime` is a day in our future (or our clock a day behind)
        feed = make_feed(clock, "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
                         f"--grid.electricitymaps.token-file={secret_file(tmp_path, 'token', TOKEN)}",
                         "--grid.zone=DE", "--grid.max-age=1h")
        feed.refresh_due()
        assert feed.accounting_intensity().provider == "electricitymaps"
        assert value(feed, "footprint_grid_clock_skew_total", provider="electricitymaps") == 1.0
        em.stop()  # the provider dies; nothing refreshes the value again
        clock.advance(3599)
        assert feed.accounting_intensity().provider == "electricitymaps"
        clock.advance(2)  # max age after the fetch, not after its (future) publication time
        assert feed.accounting_intensity().provider == "static"
