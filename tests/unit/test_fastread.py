"""The optional C reader (exporter/footprint/meters/_fastread.c) against what it stands in for.

`read_decimals` must give either what the Python path (`int(os.pread(fd, 32, 0))`) gives, or None, which
hands the zone to that path: so the C reader can never make a reading the Python path would not.
`with_energy` must make the readings the Python expression it stands in for makes. `nvml_energy` must
give what pynvml's own call gives, value or error code, through the real pynvml on the fake
libnvidia-ml.so.1. The meters use it where it is built; where it is
not, they read through the Python path (tests/unit/conftest.py runs every meter test both ways).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from pathlib import Path

import pynvml
import pytest
from footprint import config
from footprint.attribution import cgroups
from footprint.meters import nvml, rapl
from footprint.meters.base import Reading, new_reading
from footprint.meters.nvml import handle_address
from footprint.meters.registry import nvml_meter, rapl_meter
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes.nvml import GPU_IS_LOST, SCENARIO_ENV, UNKNOWN, FakeError, FakeGpu, Scenario, preload
from tests.fakes.sysfs import RaplTree
from tests.support.native import can_build

fastread = nvml._fastread


def test_the_c_reader_is_built_where_a_compiler_and_headers_exist() -> None:
    if not can_build():
        pytest.skip("no C compiler or Python headers here: the meters read through the Python path")
    assert fastread is not None, "setup.py should have built footprint.meters._fastread (pip install -e . again)"
    assert rapl._fastread is fastread


needs_reader = pytest.mark.skipif(fastread is None, reason="the C reader is not built here")


def _python_path(path: Path) -> int | None:
    """What the RAPL meter's Python path reads from a file (None: it would raise)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(os.pread(fd, 32, 0))
    except ValueError:
        return None
    finally:
        os.close(fd)


WHITESPACE = st.sampled_from([b"", b" ", b"\n", b"\t", b"\r\n", b"  \x0b\x0c"])
PLAIN = st.builds(lambda a, n, b: a + str(n).encode() + b, WHITESPACE, st.integers(0, 10**18 - 1), WHITESPACE)


@needs_reader
@settings(max_examples=300, deadline=None)
@given(content=st.one_of(PLAIN, st.binary(max_size=40), st.from_regex(rb"\A[\s+\-_0-9a-f]{0,40}\Z")))
def test_read_decimals_gives_the_python_paths_value_or_hands_over(tmp_path_factory: pytest.TempPathFactory,
                                                                   content: bytes) -> None:
    path = tmp_path_factory.mktemp("zone") / "energy_uj"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        (got,) = fastread.read_decimals((fd,))
    finally:
        os.close(fd)
    if got is not None:
        assert got == _python_path(path)
    stripped = content[:32].strip(b" \t\n\r\x0b\x0c")
    if 0 < len(stripped) <= 18 and stripped.isdigit() and len(content) <= 32:
        assert got == int(stripped)  # a plain value is always read here, never handed over


@needs_reader
def test_read_decimals_reads_in_place_and_hands_over_what_it_cannot_read(tmp_path: Path) -> None:
    live, directory = tmp_path / "live", tmp_path / "dir"
    live.write_text("262143328850\n")
    directory.mkdir()
    fds = [os.open(p, os.O_RDONLY) for p in (live, directory)]
    try:
        assert fastread.read_decimals((fds[0], fds[1], -1)) == (262143328850, None, None)
        live.write_text("7")  # in place, as sysfs changes an attribute: the open descriptor sees it
        assert fastread.read_decimals((fds[0],)) == (7,)
        assert fastread.read_decimals(()) == ()
    finally:
        for fd in fds:
            os.close(fd)
    with pytest.raises(ValueError, match="not a file descriptor"):
        fastread.read_decimals((2**40,))
    with pytest.raises(TypeError):
        fastread.read_decimals([0])  # type: ignore[arg-type]


CPU_STAT_TAIL = st.sampled_from([b"\nuser_usec 1\nsystem_usec 2\n", b"\n", b"", b"7\n", b" \n", b"\x00\n"])
CPU_STAT = st.one_of(
    st.builds(lambda head, n, tail: head + b"usage_usec " + str(n).encode() + tail,
              st.sampled_from([b"", b"x", b"usage_usec \n", b"usage_usec"]), st.integers(0, 10**21), CPU_STAT_TAIL),
    st.binary(max_size=80), st.from_regex(rb"\A(usage_usec [\s0-9a-f+-]{0,24}\n?){0,2}\Z"))


@needs_reader
@settings(max_examples=300, deadline=None)
@given(content=CPU_STAT)
def test_read_field_gives_the_python_paths_value_or_hands_over(tmp_path_factory: pytest.TempPathFactory,
                                                                content: bytes) -> None:
    """A number only where cgroups.usage_usec reads that number; None hands the file to it; and a plain
    number of at most 18 digits is always read here."""
    path = tmp_path_factory.mktemp("cg") / "cpu.stat"
    path.write_bytes(content)
    fd = os.open(path, os.O_RDONLY)
    try:
        (got,) = fastread.read_field((fd,), b"usage_usec ")
    finally:
        os.close(fd)
    python = cgroups.usage_usec(content)
    if got is not None:
        assert got == python
    start = content.find(b"usage_usec ") + 11
    if python is not None and len(content[start:content.find(b"\n", start)]) <= 18:
        assert got == python


@needs_reader
def test_read_field_hands_over_what_it_cannot_read(tmp_path: Path) -> None:
    live, directory = tmp_path / "cpu.stat", tmp_path / "dir"
    live.write_bytes(b"usage_usec 4711\nuser_usec 4000\n")
    directory.mkdir()
    fds = [os.open(p, os.O_RDONLY) for p in (live, directory)]
    try:
        assert fastread.read_field((fds[0], fds[1], -1), b"usage_usec ") == (4711, None, None)
        assert fastread.read_field((fds[0],), b"user_usec ") == (4000,)
        assert fastread.read_field((fds[0],), b"system_usec ") == (None,)
        assert fastread.read_field((), b"usage_usec ") == ()
    finally:
        for fd in fds:
            os.close(fd)
    with pytest.raises(ValueError, match="not a file descriptor"):
        fastread.read_field((2**40,), b"usage_usec ")
    with pytest.raises(ValueError, match="1-64 bytes"):
        fastread.read_field((0,), b"")


@pytest.fixture
def scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Scenario]]:
    preload()
    path = tmp_path / "scenario"
    monkeypatch.setenv(SCENARIO_ENV, str(path))
    yield path, Scenario()


@needs_reader
def test_nvml_energy_answers_as_pynvml_does(scenario: tuple[Path, Scenario]) -> None:
    path, sc = scenario
    sc.gpus = [
        FakeGpu(power=[(0.0, 300.0)], energy_offset_mj=2**40),
        FakeGpu(power=[(0.0, 120.0)], errors=[FakeError("nvmlDeviceGetTotalEnergyConsumption", UNKNOWN, 2.0, 3.0)]),
        FakeGpu(power=[(0.0, 50.0)], lost=[(1.0, 4.0)]),
    ]
    sc.time = 0.0
    sc.write(path)
    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(3)]
        function = pynvml._nvmlGetFunctionPointer("nvmlDeviceGetTotalEnergyConsumption")
        address = ctypes.cast(function, ctypes.c_void_p).value
        assert address
        for t in (0.0, 1.5, 2.5, 5.0):
            sc.time = t
            sc.write(path)
            expected = []
            for h in handles:
                try:
                    expected.append(pynvml.nvmlDeviceGetTotalEnergyConsumption(h))
                except pynvml.NVMLError as exc:
                    expected.append(-exc.value)
            assert fastread.nvml_energy(address, tuple(handle_address(h) for h in handles)) == tuple(expected)
        assert expected[0] == sc.energy_mj(0, 5.0) and expected[0] > 2**40
        sc.time = 2.5
        sc.write(path)
        values = fastread.nvml_energy(address, tuple(handle_address(h) for h in handles))
        assert values[1:] == (-UNKNOWN, -GPU_IS_LOST)
        with pytest.raises(ValueError, match="NULL"):
            fastread.nvml_energy(0, (handle_address(handles[0]),))
        with pytest.raises(ValueError, match="NULL device handle"):
            fastread.nvml_energy(address, (0,))
    finally:
        pynvml.nvmlShutdown()
    assert handle_address(object()) == 0  # not a ctypes pointer: that GPU is read on its own


@needs_reader
def test_the_meters_read_through_it_and_only_hand_over_the_unusual(
        scenario: tuple[Path, Scenario], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the speed-up itself: with the reader built, no per-device Python read runs in a steady sample
    (a RAPL value equal to the last one is handed over: it may come from a replaced file)."""
    path, sc = scenario
    sc.gpus = [FakeGpu(power=[(0.0, 200.0 + 10 * i)]) for i in range(4)]
    sc.time = 0.0
    sc.write(path)
    tree = RaplTree(tmp_path / "sys")
    cfg = config.load([f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path / 'proc'}"], env={})
    gpus = nvml_meter(cfg, clock=lambda: sc.time or 0.0)
    cpus = rapl_meter(cfg, clock=lambda: 0.0)
    try:
        first = {r.device: r.energy_joules for r in [*gpus.read(), *cpus.read()]}  # opens the zones' files
        monkeypatch.setattr(nvml._EnergyCall, "read", lambda *_: pytest.fail("a GPU was read on its own"))
        monkeypatch.setattr(rapl._Counter, "read", lambda *_: pytest.fail("a zone was read on its own"))
        sc.time = 2.0
        sc.write(path)
        for zone in ("intel-rapl:0", "intel-rapl:0:1", "intel-rapl:1", "intel-rapl:1:1"):  # in place, as sysfs
            (tree.path(zone) / "energy_uj").write_text(f"{tree.counter(zone) + 3_000_000}\n")
        after = {r.device: r.energy_joules for r in [*gpus.read(), *cpus.read()]}
        assert after["0"] - first["0"] == pytest.approx(400.0)  # 200 W for 2 s
        assert after["package-0"] - first["package-0"] == pytest.approx(3.0)
        assert after["dram-1"] - first["dram-1"] == pytest.approx(3.0)
    finally:
        gpus.close()
        cpus.close()


ENTRY = st.tuples(st.text(st.sampled_from("abcé-_.0123456789"), min_size=1, max_size=12),
                  st.sampled_from(["dir", "file", "link_to_dir", "link_to_file", "dangling"]))


@needs_reader
@settings(max_examples=100, deadline=None)
@given(entries=st.lists(ENTRY, max_size=12, unique_by=lambda e: e[0]))
def test_subdirs_lists_what_scandir_calls_directories(tmp_path_factory: pytest.TempPathFactory,
                                                      entries: list[tuple[str, str]]) -> None:
    """Directories only, in listing order, symlinks not followed: what the Python path of cgroups.subdirs
    (os.scandir's is_dir(follow_symlinks=False)) keeps, for any mix of directories, files and links."""
    root = tmp_path_factory.mktemp("tree")
    (root / ".." / "elsewhere").mkdir(exist_ok=True)
    for name, kind in entries:
        if name in (".", ".."):
            continue
        path = root / name
        if kind == "dir":
            path.mkdir()
        elif kind == "file":
            path.write_text("x")
        elif kind == "link_to_dir":
            path.symlink_to(root / ".." / "elsewhere")
        elif kind == "link_to_file":
            (root / ".." / "a-file").write_text("x")
            path.symlink_to(root / ".." / "a-file")
        else:
            path.symlink_to(root / "missing")
    got = fastread.subdirs(str(root))
    cgroups._fastread = None  # type: ignore[assignment]  # cgroups.subdirs' own Python path
    try:
        assert got == cgroups.subdirs(str(root))
    finally:
        cgroups._fastread = fastread


@needs_reader
def test_subdirs_raises_as_scandir_does(tmp_path: Path) -> None:
    for missing in (tmp_path / "gone", tmp_path / "file"):
        if missing.name == "file":
            missing.write_text("x")
        with pytest.raises(OSError) as c_error:
            fastread.subdirs(str(missing))
        with pytest.raises(OSError) as python_error:
            os.scandir(missing)
        assert (c_error.value.errno, c_error.value.filename) == (python_error.value.errno, str(missing))


@needs_reader
@settings(max_examples=300)
@given(fields=st.lists(st.tuples(st.sampled_from(["gpu", "cpu"]), st.text(max_size=4), st.floats() | st.none(),
                                 st.booleans(), st.dictionaries(st.text(max_size=3), st.text(max_size=3))),
                       max_size=9),
       values=st.lists(st.integers(0, 2**64 - 1), min_size=9, max_size=9),
       divisor=st.sampled_from([1000.0, 1e6]) | st.floats(0.5, 1e9))
def test_with_energy_makes_what_the_python_expression_makes(
        fields: list[tuple[str, str, float | None, bool, dict[str, str]]], values: list[int], divisor: float) -> None:
    """Each template copied with its energy replaced by value / divisor: of the template's own type, every
    other field the same object, the energy the float Python's `value / divisor` gives (ints past 2**53
    included: the counters are unsigned 64-bit)."""
    templates = tuple(Reading(c, d, "nvml", -1.0, max_watts=w, in_node_total=t, info=i) for c, d, w, t, i in fields)
    got = fastread.with_energy(templates, tuple(values[:len(templates)]), divisor)
    expected = [new_reading((*t[:3], v / divisor, *t[4:])) for t, v in zip(templates, values, strict=False)]
    assert [type(r) for r in got] == [Reading] * len(templates)
    assert repr(got) == repr(expected)
    assert all(a is b for r, t in zip(got, templates, strict=True) for k, (a, b) in enumerate(zip(r, t, strict=True))
               if k != 3)


@needs_reader
def test_with_energy_refuses_what_is_not_a_template_and_value_each() -> None:
    with pytest.raises(ValueError):
        fastread.with_energy((Reading("gpu", "0", "nvml", 0.0),), (), 1000.0)
    with pytest.raises(TypeError):
        fastread.with_energy((("gpu",),), (1,), 1000.0)
