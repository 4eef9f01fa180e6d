"""The one start/stop/wake primitive every background loop uses (sampler, grid providers, the
Kubernetes refresh, the checkpoint writer, the HTTP reaper), and the cyclic collector's pause they share.

A `Worker` runs `step()` on a daemon thread; `step()` returns how long to sleep before the next step
(None: until woken). `wake()` cuts a sleep short, `stop()` ends the loop after the step in progress.
Sleeping on a lock that `wake()` releases (never time.sleep) is what makes both prompt; a plain lock
rather than an Event, whose wait runs Condition.wait's Python code on every wake-up: 35-40 us more CPU
a wake in a 1 Hz loop, where the caches are cold (bench/README.md, ninth pass).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Iterator

_paused_lock = threading.Lock()
_pausers = 0  # blocks in collector_paused() now, on any thread
_resume = False  # whether the last of them turns the collector back on


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block that makes thousands of short-lived objects that
    refcounting frees (an attribution pass's shares and additions, a pod list's parsed JSON), on again
    after the last such block on any thread ends, unless it was off before the first (someone else's
    choice). Why: the collections such blocks set off only traverse them, and a full one the whole
    heap: 7 % of an attribution pass, and ~10 ms of a 200-pod refresh (bench/README.md)."""
    global _pausers, _resume
    with _paused_lock:
        if _pausers == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _paused_lock:
            _pausers -= 1
            if _pausers == 0 and _resume:
                gc.enable()


class Worker:
    def __init__(self, name: str, step: Callable[[], float | None]) -> None:
        self.name = name
        self._step = step
        self._stop = threading.Event()
        self._stopping = False  # set with _stop: what the loop checks at each wake (Event.is_set is a Python call)
        self._asleep = threading.Lock()  # held while no wake is pending; wake() releases it
        self._asleep.acquire()
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self, delay: float | None = 0.0) -> None:
        """Start the thread; the first step runs after `delay` seconds (None: at the first wake())."""
        self._thread = threading.Thread(target=self._run, args=(delay,), name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Cut the sleep in progress (or the next one) short; wakes before it are one wake."""
        with contextlib.suppress(RuntimeError):  # released already: a wake is pending
            self._asleep.release()

    def sleep(self, seconds: float) -> bool:
        """Inside a step: wait `seconds` unless stopped (a wake does not cut it). True when stopping."""
        return self._stop.wait(max(seconds, 0.0))

    def request_stop(self) -> None:
        self._stopping = True
        self._stop.set()
        self.wake()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False when it is still inside a step after `timeout`."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        self.request_stop()
        return self.join(timeout)

    def _run(self, delay: float | None) -> None:
        while True:
            self._asleep.acquire(True, -1 if delay is None else max(delay, 0.0))  # a wake leaves it held again
            if self._stopping:
                return
            delay = self._step()
