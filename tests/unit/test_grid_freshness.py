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
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fakes.grid_servers import ElectricityMapsFake, Fault, serving
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



# A step: how old the API says its value is (< 0: in the future), whether it fails, whether a refresh is
# due, then the clock moved by about max age (10 min), so values go stale between answers, or set back.
STEPS = st.lists(st.tuples(st.floats(-3600, 900), st.booleans(), st.booleans(),
                           st.one_of(st.floats(-900, 900), st.sampled_from([-86400.0, 86400.0]))), max_size=20)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return secret_file(tmp_path_factory.mktemp("grid"), "token", TOKEN)  # module scope: one for every example


@given(steps=STEPS)
@example(steps=[(0.0, False, False, 60.0), (300.0, False, True, 400.0)])  # stale by its publication, not its fetch
@example(steps=[(0.0, False, False, 700.0), (0.0, False, False, -700.0)])  # set back: the stale value fresh again
def test_property_the_held_answer_is_the_chain_walked_again(token_file: str,
                                                             steps: list[tuple[float, bool, bool, float]]) -> None:
    """accounting_intensity() answers from its last answer while that stands: after every step it must be
    what walking the chain at that moment gives (the first fresh value, else the static table), through
    fetches that land or fail, values published in the past or the future, and a clock set back."""
    clock = Clock()
    with serving(ElectricityMapsFake(TOKEN, clock)) as em:
        feed = make_feed(clock, "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
                         f"--grid.electricitymaps.token-file={token_file}", "--grid.zone=DE",
                         "--grid.fallback=static", "--grid.max-age=10m", "--grid.refresh-interval=60s",
                         "--grid.timeout=500ms")
        for published, fails, refresh, moved in [(0.0, False, True, 0.0), *steps]:
            em.state.age = published
            em.fault = Fault(status=500) if fails else None
            if refresh:
                feed.refresh_due()
            for _ in range(2):  # before and after the clock moves; the second ask at a moment is the held one
                for _ in range(2):
                    _, walked = feed._in_use("average", clock())
                    assert feed.accounting_intensity() is (walked if walked is not None else feed._static())
                clock.advance(moved)
