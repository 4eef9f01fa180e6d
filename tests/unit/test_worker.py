"""The one background-loop primitive (footprint.worker): steps, wakes and stops without polling."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

from footprint import cli
from footprint.worker import Worker, collector_paused

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


def test_wakes_during_a_step_are_kept_and_count_as_one() -> None:
    """A wake that arrives while a step runs cuts the sleep after it short (none is lost between the wait
    and a clear), and several such wakes are one: one more step, then the step's own sleep holds."""
    steps: list[int] = []
    inside, release = threading.Event(), threading.Event()
    ended = threading.Semaphore(0)

    def step() -> None:  # None: sleep until woken
        steps.append(len(steps))
        if len(steps) == 1:
            inside.set()
            release.wait(WAIT)
        ended.release()

    w = Worker("t", step)
    w.start()
    assert inside.wait(WAIT)
    w.wake()
    w.wake()  # a second wake while one is pending: no error, no second step for it
    release.set()
    assert ended.acquire(timeout=WAIT)  # the first step
    assert ended.acquire(timeout=WAIT)  # the pending wake's step, though nobody woke it since
    assert not ended.acquire(timeout=0.2)  # and no third: the two wakes were one
    assert w.stop(timeout=WAIT)
    assert steps == [0, 1]


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


def test_the_collector_stays_paused_until_the_last_overlapping_block_ends() -> None:
    """An attribution pass and a pod-list refresh overlap on two threads: the first to end must not turn
    the collector back on under the other; and a collector someone had turned off stays off."""
    assert gc.isenabled()
    first, second = collector_paused(), collector_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_running_exporter_freezes_its_start_up_and_collects_young_objects_seldom() -> None:
    """What cli.run does once the exporter has started, in a process of its own (a frozen object is
    never freed, so never in this test process)."""
    code = ("import gc; from footprint import cli; cli.keep_start_up_out_of_collections(); "
            "print(gc.get_freeze_count(), gc.get_threshold()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) > 10_000  # the modules, classes and functions start-up made
    assert int(out[1]) == cli.YOUNG_COLLECTION_THRESHOLD > 700
