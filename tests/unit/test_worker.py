"""The one background-loop primitive (footprint.worker): steps, wakes and stops without polling."""

from __future__ import annotations

import threading

from footprint.worker import Worker

WAIT = 5.0  # generous bound for a thread to react; the tests never measure time


def test_a_long_sleep_is_cut_by_wake_and_by_stop() -> None:
    calls: list[int] = []
    stepped = threading.Event()

    def step() -> float:
        calls.append(len(calls))
        stepped.set()
        return 3600.0

    w = Worker("t", step)
    w.start()
    assert stepped.wait(WAIT)
    stepped.clear()
    w.wake()
    assert stepped.wait(WAIT)  # woken an hour early
    assert w.stop(timeout=WAIT)  # an hour's sleep does not hold stop()
    assert len(calls) == 2 and w.stopping


def test_none_sleeps_until_woken_and_stop_runs_no_further_step() -> None:
    calls: list[int] = []
    w = Worker("t", lambda: calls.append(1))  # returns None: sleep until woken
    w.start(delay=None)
    assert w.stop(timeout=WAIT)
    assert calls == []  # a stop is not a wake: no step after it


def test_sleep_inside_a_step_returns_true_when_stopping() -> None:
    inside = threading.Event()
    result: list[bool] = []
    w: Worker

    def step() -> float:
        inside.set()
        result.append(w.sleep(3600.0))
        return 0.0

    w = Worker("t", step)
    w.start()
    assert inside.wait(WAIT)
    w.wake()  # a wake does not cut a step's own sleep
    assert not result
    assert w.stop(timeout=WAIT)
    assert result == [True]


def test_join_without_start_and_a_step_that_outlives_the_timeout() -> None:
    assert Worker("idle", lambda: None).stop(timeout=0.0)
    release = threading.Event()
    inside = threading.Event()

    def step() -> None:
        inside.set()
        release.wait(WAIT)

    w = Worker("stuck", step)
    w.start()
    assert inside.wait(WAIT)
    assert not w.stop(timeout=0.0)  # still inside the step: said, not hidden
    release.set()
    assert w.join(WAIT)
