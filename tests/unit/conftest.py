"""Fixtures shared by unit tests: a test clock and a fake Electricity Maps server on it (the grid tests), and
the read path of the NVML and RAPL meter tests (`read_path`), the ledger's path (`ledger_path`), and a
short directory for unix sockets (`socket_dir`)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.support.grid_helpers import TOKEN, Clock
from tests.support.ledger_twins import python_ledger


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def em(clock: Clock) -> Iterator[ElectricityMapsFake]:
    with serving(ElectricityMapsFake(TOKEN, clock)) as server:
        yield server


@pytest.fixture(params=["c_reader", "python_reads"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each NVML and RAPL meter test twice: through the optional C reader (meters/_fastread.c, built at
    install where a compiler exists) and through the pure-Python reads that replace it where it is not.
    tests/unit/test_fastread.py fails where a compiler exists and the reader was not built."""
    from footprint import sampler
    from footprint.meters import nvml, rapl

    if request.param == "python_reads":
        monkeypatch.setattr(nvml, "_fastread", None)
        monkeypatch.setattr(rapl, "_fastread", None)
        monkeypatch.setattr(sampler, "_fastread", None)
    elif nvml._fastread is None:
        pytest.skip("the C reader is not built here")
    return str(request.param)


@pytest.fixture(params=["c_ledger", "python_ledger"])
def ledger_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each ledger, tracker, accounting, sampler and exposition test twice: through the optional C twins of
    the counter rule, a sample's judging, power and additions, and the counters' lines
    (accounting/_fastledger.c), and through the Python code they stand in for (`python_ledger`).
    tests/unit/test_fastledger.py fails where a compiler exists and they were not built."""
    from footprint.accounting import ledger

    if request.param == "python_ledger":
        with python_ledger():
            yield str(request.param)
        return
    if ledger._fastledger is None:
        pytest.skip("the C twins are not built here")
    yield str(request.param)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: unix socket paths are limited to 108 bytes, pytest's tmp_path can be longer."""
    with tempfile.TemporaryDirectory(prefix="fp-") as d:
        yield Path(d)
