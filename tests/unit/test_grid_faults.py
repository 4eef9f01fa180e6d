"""Faults: sampling keeps a value, the last good one holds until max age, then the fallback; the
reason shows in metrics and logs; a broken API is never hammered (the fake server counts requests)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from footprint.grid.feed import GridFeed

from tests.fakes.grid_servers import ElectricityMapsFake, Fault, WattTimeFake, serving
from tests.support.grid_helpers import T0, TOKEN, Clock, make_feed, secret_file, value

LATEST = "/v3/carbon-intensity/latest"


def feed_for(clock: Clock, em: ElectricityMapsFake, tmp_path: Path, *flags: str) -> GridFeed:
    token = secret_file(tmp_path, "token", TOKEN)
    return make_feed(
        clock, "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
        f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.fallback=static",
        "--grid.refresh-interval=60s", "--grid.max-age=10m", "--grid.timeout=200ms", *flags,
    )


def tick(clock: Clock, feed: GridFeed, times: int, seconds: float) -> None:
    """Move the clock `times` steps, refreshing after each, as the exporter's sample loop does."""
    for _ in range(times):
        clock.advance(seconds)
        feed.refresh_due()


def _fault_500(em: ElectricityMapsFake) -> None:
    em.fault = Fault(status=500)


def _fault_503_html(em: ElectricityMapsFake) -> None:
    em.fault = Fault(status=503, body=b"<html>Service Unavailable</html>")


def _fault_timeout(em: ElectricityMapsFake) -> None:
    em.fault = Fault(delay=5.0)


def _fault_refused(em: ElectricityMapsFake) -> None:
    em.stop()


def _fault_malformed(em: ElectricityMapsFake) -> None:
    em.fault = Fault(body=b'{"zone": "DE", "carbonIntensity": 3')


def _fault_not_an_object(em: ElectricityMapsFake) -> None:
    em.fault = Fault(body=b'["DE", 322]')


def _fault_missing(em: ElectricityMapsFake) -> None:
    em.state.omit = {"carbonIntensity"}


def _fault_null(em: ElectricityMapsFake) -> None:
    em.state.intensity = None


def _fault_string(em: ElectricityMapsFake) -> None:
    em.state.intensity = "322"


def _fault_negative(em: ElectricityMapsFake) -> None:
    em.state.intensity = -5


def _fault_absurd(em: ElectricityMapsFake) -> None:
    em.state.intensity = 3000.5


def _fault_unknown_zone(em: ElectricityMapsFake) -> None:
    em.state.zones = set()


def _fault_guessed_zone(em: ElectricityMapsFake) -> None:
    em.state.answer_zone = "FR"  # the API fell back to a caller-IP guess


def _fault_auth(em: ElectricityMapsFake) -> None:
    em.token = "rotated"


def _fault_stale(em: ElectricityMapsFake) -> None:
    em.state.age = 86400  # the API answers, but with yesterday's value


FAULTS: list[tuple[Callable[[ElectricityMapsFake], None], str]] = [
    (_fault_500, "http_5xx"),
    (_fault_503_html, "http_5xx"),
    (_fault_timeout, "timeout"),
    (_fault_refused, "connection"),
    (_fault_malformed, "malformed"),
    (_fault_not_an_object, "missing_field"),
    (_fault_missing, "missing_field"),
    (_fault_null, "missing_field"),
    (_fault_string, "malformed"),
    (_fault_negative, "out_of_range"),
    (_fault_absurd, "out_of_range"),
    (_fault_unknown_zone, "unknown_zone"),
    (_fault_guessed_zone, "unknown_zone"),
    (_fault_auth, "auth"),
    (_fault_stale, "stale"),
]


@pytest.mark.parametrize(("inject", "reason"), FAULTS, ids=[r + f.__name__[6:] for f, r in FAULTS])
def test_fault_keeps_last_good_value_until_max_age_then_falls_back(
    clock: Clock, em: ElectricityMapsFake, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    inject: Callable[[ElectricityMapsFake], None], reason: str,
) -> None:
    feed = feed_for(clock, em, tmp_path)
    feed.refresh_due()
    assert feed.accounting_intensity().provider == "electricitymaps"
    inject(em)
    before = em.count(LATEST)
    seen = []
    with caplog.at_level(logging.WARNING, logger="footprint.grid"):
        # Eleven minutes in 5-second steps: 132 chances to call the API.
        for _ in range(132):
            clock.advance(5)
            feed.refresh_due()
            r = feed.accounting_intensity()  # what every sample asks: always an answer
            seen.append((clock.t - T0, r.provider))
    # The last good value (published at T0) holds until max age (600 s), then the static table.
    assert all(p == "electricitymaps" for t, p in seen if t <= 600)
    assert all(p == "static" for t, p in seen if t > 600)
    assert feed.fallback_active()
    assert feed.accounting_intensity().value == 381.0
    # Reason in metrics and logs.
    errors = value(feed, "footprint_grid_fetch_errors_total", provider="electricitymaps", reason=reason)
    assert errors is not None and errors >= 1
    assert value(feed, "footprint_grid_provider_up", provider="electricitymaps") == 0
    assert value(feed, "footprint_grid_fallback_active") == 1
    assert f"reason={reason}" in caplog.text
    # No storm: exponential backoff, not one request per step (refresh is 60 s: 11 in 11 minutes).
    attempts = em.count(LATEST) - before if inject is not _fault_refused else int(errors)
    assert 3 <= attempts <= 7


def test_recovery_returns_to_the_primary(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    feed = feed_for(clock, em, tmp_path)
    feed.refresh_due()
    em.fault = Fault(status=500)
    tick(clock, feed, 150, 5)
    assert feed.accounting_intensity().provider == "static"
    em.fault = None
    em.state.intensity = 123
    tick(clock, feed, 60, 5)  # within the 4 x refresh backoff cap
    r = feed.accounting_intensity()
    assert (r.provider, r.value) == ("electricitymaps", 123.0)
    assert not feed.fallback_active()
    assert value(feed, "footprint_grid_provider_up", provider="electricitymaps") == 1


def test_retry_after_is_honoured(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    feed = feed_for(clock, em, tmp_path)
    feed.refresh_due()
    clock.advance(60)
    em.fault = Fault(status=429, retry_after="300")
    feed.refresh_due()
    assert value(feed, "footprint_grid_fetch_errors_total", provider="electricitymaps", reason="rate_limited") == 1
    em.fault = None
    tick(clock, feed, 59, 5)  # 295 s: the API asked for 300
    assert em.count(LATEST) == 2
    clock.advance(5)
    feed.refresh_due()
    assert em.count(LATEST) == 3
    assert feed.accounting_intensity().provider == "electricitymaps"


def test_retry_after_as_http_date(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    feed = feed_for(clock, em, tmp_path)
    em.fault = Fault(status=429, retry_after="Fri, 15 Jan 2027 09:00:00 GMT")  # T0 + 1 h
    feed.refresh_due()
    em.fault = None
    tick(clock, feed, 59, 60)
    assert em.count(LATEST) == 1
    clock.advance(60)
    feed.refresh_due()
    assert em.count(LATEST) == 2


def test_backoff_doubles_with_jitter_and_is_capped(clock: Clock, em: ElectricityMapsFake, tmp_path: Path) -> None:
    feed = feed_for(clock, em, tmp_path)
    em.fault = Fault(status=500)
    for _ in range(2400):  # 2 hours in 3-second steps
        feed.refresh_due()
        clock.advance(3)
    times = em.times(LATEST)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for n, gap in enumerate(gaps):
        nominal = min(240.0, 10.0 * 2**n)  # from min(refresh, 10 s), capped at 4 x refresh
        assert 0.5 * nominal - 3 <= gap <= nominal + 3, (n, gap)
    assert len(set(round(g) for g in gaps[-5:])) > 1  # jitter: a fleet does not retry in lockstep
    assert len(times) < 50  # one request per 3 s step would be 2400


def test_no_value_yet_uses_fallback_and_counts_nothing_twice(clock: Clock, em: ElectricityMapsFake,
                                                            tmp_path: Path) -> None:
    em.fault = Fault(status=500)
    feed = feed_for(clock, em, tmp_path)
    assert feed.accounting_intensity().provider == "static"  # before the first fetch
    feed.refresh_due()
    feed.refresh_due()  # not due again yet: no second request
    assert em.count() == 1
    assert feed.api_payload()["chain"][0]["errors"] == {"http_5xx": 1}


def test_expired_watttime_token_logs_in_again(clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    password = secret_file(tmp_path, "pw", "hunter2-wt-pass")
    with serving(WattTimeFake("alice", "hunter2-wt-pass", clock)) as wt:
        feed = make_feed(clock, "--grid.provider=watttime", f"--grid.watttime.url={wt.url}",
                         "--grid.watttime.username=alice", f"--grid.watttime.password-file={password}",
                         "--grid.zone=CAISO_NORTH", "--grid.refresh-interval=60s")
        feed.refresh_due()
        wt.expire_tokens()  # revoked early (or clock skew): the API answers 401
        clock.advance(60)
        with caplog.at_level(logging.WARNING, logger="footprint.grid"):
            feed.refresh_due()
        marginal = feed.marginal()
        assert marginal is not None and marginal.fetched_at == clock.t
        assert [r.path for r in wt.requests] == ["/login", "/v3/forecast", "/v3/forecast", "/login", "/v3/forecast"]
        assert value(feed, "footprint_grid_provider_up", provider="watttime") == 1
        assert "fetch failed" not in caplog.text
        # A password that no longer works is an auth error, retried with backoff, not in a loop.
        wt.password = "changed"
        wt.expire_tokens()
        tick(clock, feed, 20, 5)
        assert value(feed, "footprint_grid_fetch_errors_total", provider="watttime", reason="auth") == 3
        assert wt.logins == 2
        assert wt.count("/login") <= 7


# --- hostile numbers (issue 16): dropped or refused with a fixed reason, never "internal" -------------


def no_internal(feed: GridFeed, provider: str, caplog: pytest.LogCaptureFixture) -> None:
    assert value(feed, "footprint_grid_fetch_errors_total", provider=provider, reason="internal") == 0
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


def test_a_400_digit_intensity_is_malformed_not_internal(clock: Clock, em: ElectricityMapsFake, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    em.state.intensity = 10**400  # Python's json reads it; float() of it overflows
    feed = feed_for(clock, em, tmp_path)
    with caplog.at_level(logging.DEBUG, logger="footprint"):
        tick(clock, feed, 3, 60)
    assert (value(feed, "footprint_grid_fetch_errors_total", provider="electricitymaps", reason="malformed") or 0) >= 1
    no_internal(feed, "electricitymaps", caplog)
    assert feed.accounting_intensity().provider == "static"


@pytest.mark.parametrize("retry_after", ["²", "٣٠٠", "1e9", "-5", "soon", "Fri, 99 Foo 2027 99:99:99 GMT"])
def test_a_retry_after_that_is_not_one_is_ignored(clock: Clock, em: ElectricityMapsFake, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture, retry_after: str) -> None:
    """`"²".isdigit()` is True and float("²") raises: it must be read as no Retry-After at all."""
    feed = feed_for(clock, em, tmp_path)
    em.fault = Fault(status=429, retry_after=retry_after)
    with caplog.at_level(logging.DEBUG, logger="footprint"):
        feed.refresh_due()
    assert value(feed, "footprint_grid_fetch_errors_total", provider="electricitymaps", reason="rate_limited") == 1
    no_internal(feed, "electricitymaps", caplog)
    em.fault = None
    tick(clock, feed, 4, 5)  # the feed's own first backoff (5-10 s) applies, not a parsed 2 or 300 s
    assert em.count(LATEST) == 2
