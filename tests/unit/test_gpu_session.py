"""The GPU meters' shared library session (retry after failure) and power ceiling rule."""

from __future__ import annotations

import pytest
from footprint.meters.base import MeterError
from footprint.meters.session import GPU_MARGIN, LibrarySession, gpu_ceiling
from hypothesis import given
from hypothesis import strategies as st


class _Library:
    """A vendor library whose init fails while `broken` (as nvmlInit / amdsmi_init with no driver)."""

    def __init__(self) -> None:
        self.broken = True
        self.inits = 0
        self.shutdowns = 0
        self.session: LibrarySession[MeterError] = LibrarySession(5.0, self.init, self.shutdown)

    def init(self, now: float) -> None:
        self.inits += 1
        if self.broken:
            raise self.session.failed(MeterError("init: driver not loaded"), now + 5.0)
        self.session.started()

    def shutdown(self) -> None:
        self.shutdowns += 1
        raise MeterError("already gone")  # a failing shutdown must not hide the failure itself


def test_a_failed_init_is_raised_again_without_calling_until_the_retry_time() -> None:
    lib = _Library()
    with pytest.raises(MeterError, match="driver not loaded"):
        lib.session.ensure(0.0)
    with pytest.raises(MeterError, match="driver not loaded"):
        lib.session.ensure(4.9)
    assert lib.inits == 1
    assert lib.session.doctor_line("vendor", 4.9) == (
        "vendor: not working: init: driver not loaded (initialisation retried every 5s)")
    lib.broken = False
    lib.session.ensure(5.0)
    assert lib.inits == 2 and lib.session.initialised and lib.session.error is None
    assert lib.session.doctor_line("vendor", 6.0) == ""


def test_losing_the_library_shuts_it_down_once_and_retries_when_told() -> None:
    lib = _Library()
    lib.broken = False
    lib.session.ensure(0.0)
    lost = MeterError("read: driver unloaded")
    assert lib.session.failed(lost, 1.0) is lost
    assert lib.shutdowns == 1 and not lib.session.initialised
    lib.session.stop()  # not initialised: nothing to release
    assert lib.shutdowns == 1
    with pytest.raises(MeterError, match="driver unloaded"):
        lib.session.ensure(0.5)
    lib.session.ensure(1.0)
    assert lib.session.initialised and lib.inits == 2


watts = st.none() | st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@given(st.none() | st.floats(min_value=1.0, max_value=1e4), watts, watts)
def test_the_ceiling_is_the_override_else_the_highest_positive_limit_with_the_margin(
    override: float | None, a: float | None, b: float | None
) -> None:
    limits = [w for w in (a, b) if w is not None and w > 0]
    expected = override if override is not None else (max(limits) * GPU_MARGIN if limits else None)
    assert gpu_ceiling(override, a, b) == expected


def test_the_ceiling_examples() -> None:
    assert gpu_ceiling(None, 400.0, 700.0) == 1050.0  # the settable top, not the enforced limit
    assert gpu_ceiling(None, None, 0.0) is None  # unknown: the ledger's default applies
    assert gpu_ceiling(900.0, 400.0, 700.0) == 900.0
