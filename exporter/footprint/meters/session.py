"""What the GPU meters share: a vendor library's session (initialised, or failed and retried later) and
the power ceiling the ledger judges counter deltas against."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Generic, TypeVar

from footprint.meters.base import MeterError

E = TypeVar("E", bound=MeterError)

# Over the power limit: boards exceed it for milliseconds (power excursions), and a counter advances in
# steps of its ~20-100 ms update period, so a sample may see a little more than limit x interval.
GPU_MARGIN = 1.5


def gpu_ceiling(override: float | None, *watts: float | None) -> float | None:
    """--counter.max-watts=gpu=W, else the highest known limit x GPU_MARGIN (None: unknown, the ledger's
    default applies)."""
    if override is not None:
        return override
    limits = [w for w in watts if w is not None and w > 0]
    return max(limits) * GPU_MARGIN if limits else None


class LibrarySession(Generic[E]):
    """A vendor library (NVML, amdsmi) that is initialised, or failed and is initialised again at most
    every `retry` seconds: between tries, reads raise the error of the last failure without calling it."""

    def __init__(self, retry: float, init: Callable[[float], None], shutdown: Callable[[], object]) -> None:
        """`init(now)` initialises the library and calls `started()` (or `failed()` and raises);
        `shutdown()` releases it."""
        self.retry = retry
        self._init = init
        self._shutdown = shutdown
        self.initialised = False
        self.error: E | None = None
        self._next_init = 0.0

    def ensure(self, now: float) -> None:
        """Initialise unless it is; before the retry time after a failure, raise that failure again."""
        if self.initialised:
            return
        if now < self._next_init and self.error is not None:
            raise self.error
        self._init(now)

    def started(self) -> None:
        self.initialised, self.error = True, None

    def failed(self, error: E, retry_at: float) -> E:
        """The library failed (to start, or as a whole later): release it, initialise again at `retry_at`.
        Returns the error that reads raise until then."""
        self.stop()
        self.error, self._next_init = error, retry_at
        return error

    def stop(self) -> None:
        if self.initialised:
            with contextlib.suppress(MeterError):  # already gone; nothing to release
                self._shutdown()
            self.initialised = False

    def doctor_line(self, name: str, now: float) -> str:
        """After a try to initialise (if due): why the library is not working, or "" while it is."""
        with contextlib.suppress(MeterError):  # said in the line
            self.ensure(now)
        if self.initialised:
            return ""
        return f"{name}: not working: {self.error} (initialisation retried every {self.retry:g}s)"
