"""The checkpoint: file format and its damage checks, identity, the restart-gap rule, the lock,
failed writes.

Real ledger, tracker, accountant and settings; readings are built as the meters build them; files
are real files in tmp dirs, and a full disk is a real EFBIG from the kernel (RLIMIT_FSIZE in a
subprocess). The grid is a value the test sets (FixedGrid) whose `settled()` the test flips.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from footprint import config
from footprint.accounting import accountant as acct
from footprint.accounting.accountant import Accountant
from footprint.accounting.ledger import Ledger, budget_joules, ceiling_watts
from footprint.config import ConfigError
from footprint.exposition.catalog import GAP_JOULES, GAP_REJECTED
from footprint.exposition.state import checkpoint_families
from footprint.grid.base import IntensityReading
from footprint.meters.base import Reading
from footprint.state.checkpoint import Checkpointer
from footprint.state.format import (
    CheckpointError,
    PendingGap,
    SavedCounter,
    SavedState,
    decode,
    encode,
    machine_identity,
    same_machine,
    write_atomically,
)
from footprint.state.gaps import judge_gap
from hypothesis import given
from hypothesis import strategies as st

from tests.support.exporter import REPO
from tests.support.fixed_grid import FixedGrid

pytestmark = pytest.mark.usefixtures("ledger_path")  # the C twins and the Python ledger alike

INTENSITY = IntensityReading(value=400.0, signal="average", provider="constant", zone="")
EPOCH = "boot-a"
BIG = 1e6  # a ceiling (W) no test delta reaches: in process, reads are microseconds apart


def settings(tmp_path: Path, *extra: str) -> config.Settings:
    return config.load([f"--state.file={tmp_path / 'state.json'}", "--grid.provider=constant",
                        "--grid.constant.value=400", *extra], env={})


def gpu(joules: float, epoch: str = "550.54.15", uuid: str = "GPU-aaaa", max_watts: float | None = BIG) -> Reading:
    return Reading("gpu", "0", "nvml", joules, counter_epoch=epoch, max_watts=max_watts, info={"uuid": uuid})


def rapl(joules: float, epoch: str = EPOCH, wrap: float = 262_143.0, max_watts: float | None = None) -> Reading:
    return Reading("cpu", "package-0", "rapl", joules, wrap_joules=wrap, counter_epoch=epoch, max_watts=max_watts)


def estimate(joules: float) -> Reading:
    return Reading("cpu", "0", "estimate", joules, power_watts=50.0, hardware_counter=False)


def run_samples(ledger: Ledger, acc: Accountant, *samples: list[Reading], cp: Checkpointer | None = None,
                wall: float = 1000.0) -> None:
    """What the sampler does with successive readings: judged deltas, the accountant, then the checkpointer."""
    for i, readings in enumerate(samples):
        energy = [(r, ledger.counters.observe(r, time.monotonic()).joules) for r in readings]
        with ledger.lock:
            acc.account(ledger, energy, 1.0, INTENSITY, wall + i)
        if cp is not None:
            cp.sampled(readings)


def snapshot_of(ledger: Ledger, counters: dict[tuple[str, str], SavedCounter] | None = None) -> SavedState:
    return SavedState(1, {m: dict(s) for m, s in ledger.totals.items()},
                    {m: dict(s) for m, s in ledger.created.items()}, counters or {})


IDENTITY = {"node_name": "", "cpu_model": "Xeon", "rapl_zones": "package-0:262143"}


def test_round_trip_is_exact() -> None:
    ledger = Ledger()
    ledger.add(acct.ENERGY, ("gpu", "0", "nvml"), 0.1 + 0.2, 1700000000.123456)
    ledger.add(acct.NODE_ENERGY, (), 1e15 / 3, 1700000001.5)
    saved = {("gpu", "0"): SavedCounter(123456.789, "550.54.15", "GPU-aaaa", 54.25, 1700000001.75)}
    gaps = (PendingGap("cpu", "package-0", "rapl", True, 12.5),)
    pending = {("gpu", "0"): (3.5, 0.25)}
    snap = SavedState(1, ledger.totals, ledger.created, saved, gaps, {"joules": 1.0}, pending)
    cp = decode(encode(snap, IDENTITY, "boot", 1700000002.0, 55.5))
    assert cp.pending == pending
    assert sorted(cp.series) == sorted([
        (acct.ENERGY, ("gpu", "0", "nvml"), 0.1 + 0.2, 1700000000.123456),
        (acct.NODE_ENERGY, (), 1e15 / 3, 1700000001.5),
    ])
    assert cp.counters == saved and cp.gaps == gaps and cp.last_gap == {"joules": 1.0}
    assert (cp.boot_id, cp.boottime, cp.written_at, cp.identity) == ("boot", 55.5, 1700000002.0, IDENTITY)


def _with_body(body: bytes, version: int = 2) -> bytes:
    """A well-formed header (right checksum and length) over any body."""
    digest = hashlib.sha256(body).hexdigest()
    return f"footprint-checkpoint {version} sha256={digest} length={len(body)}\n".encode() + body


def test_a_format_1_file_still_restores_with_its_write_time_as_the_read_time() -> None:
    body = (b'{"boot_id":"b","boottime":40.0,"counters":[["gpu","0",100.0,"550.54.15"]],"exporter_version":"0.1.0",'
            b'"identity":{"hostname":"h","machine_id":"m","node_name":""},'
            b'"series":[["footprint_node_energy_joules_total",[],3.0,1.0]],"written_at":2.0}')
    cp = decode(_with_body(body, 1))
    assert cp.counters == {("gpu", "0"): SavedCounter(100.0, "550.54.15", "", 40.0, 2.0)}
    assert cp.gaps == () and cp.series == [(acct.NODE_ENERGY, (), 3.0, 1.0)]


def _valid() -> bytes:
    ledger = Ledger()
    ledger.add(acct.ENERGY, ("gpu", "0", "nvml"), 42.0, 1.0)
    return encode(snapshot_of(ledger), IDENTITY, "", 2.0, None)


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"", "corrupt"),
        (b"\x00\xff garbage \x13" * 50, "corrupt"),
        (_valid()[: len(_valid()) // 2], "corrupt"),  # truncated (a crash mid-write on a non-atomic fs)
        (_valid()[:-3] + b"9]}", "corrupt"),  # one byte changed
        (_valid() + b"\n", "corrupt"),
        (_with_body(b'{"not": "a checkpoint"}'), "corrupt"),
        (_with_body(b"[1, 2, 3]"), "corrupt"),
        (_valid().replace(b"footprint-checkpoint 2", b"footprint-checkpoint 3"), "unsupported"),
    ],
    ids=["empty", "garbage", "truncated", "bit-flip", "padded", "wrong-shape", "not-object", "newer-format"],
)
def test_damaged_files_are_refused(data: bytes, kind: str) -> None:
    with pytest.raises(CheckpointError) as err:
        decode(data)
    assert err.value.kind == kind


@pytest.mark.parametrize("bad", ["NaN", "-1.0", '"12"', "Infinity"])
def test_impossible_values_are_refused(bad: str) -> None:
    body = ('{"boot_id":"","boottime":null,"counters":[],"exporter_version":"0.1.0","gaps":[],"identity":{},'
            f'"last_gap":null,"series":[["footprint_node_energy_joules_total",[],{bad},1.0]],"written_at":2.0}}')
    with pytest.raises(CheckpointError, match="bad content"):
        decode(_with_body(body.encode()))
    gap = ('{"boot_id":"","boottime":null,"counters":[],"exporter_version":"0.1.0","identity":{},"last_gap":null,'
           '"gaps":[{"component":"gpu","device":"0","source":"nvml","node":true,"joules":' + bad + '}],'
           '"series":[],"written_at":2.0}')
    with pytest.raises(CheckpointError, match="bad content"):
        decode(_with_body(gap.encode()))


# --- identity ---


def test_identity_is_the_machine_not_the_container() -> None:
    ours = {"node_name": "", "cpu_model": "Xeon", "rapl_zones": "package-0:262143"}
    # A new container on the same boot (new host name, no machine id, no node name): the boot id says so.
    assert same_machine({"node_name": "", "cpu_model": "", "rapl_zones": ""}, "boot-1", ours, "boot-1") == "boot_id"
    # After a reboot: the hardware decides, each part compared where both sides know it.
    assert same_machine(ours, "boot-0", ours, "boot-1") == "hardware"
    assert same_machine({**ours, "rapl_zones": ""}, "boot-0", ours, "boot-1") == "hardware"
    assert same_machine({**ours, "cpu_model": "EPYC"}, "boot-0", ours, "boot-1") is None
    assert same_machine({**ours, "rapl_zones": "package-0:65712"}, "boot-0", ours, "boot-1") is None
    # Kubernetes: the node name decides when both have one.
    assert same_machine({**ours, "node_name": "a"}, "boot-0", {**ours, "node_name": "a"}, "boot-1") == "node_name"
    assert same_machine({**ours, "node_name": "b"}, "boot-0", {**ours, "node_name": "a"}, "boot-1") is None
    # Nothing in common: foreign. The host name is never compared (it is the container's).
    assert same_machine({"hostname": "same"}, "", {"hostname": "same"}, "") is None


def test_node_name_comes_from_settings_or_the_downward_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NODE_NAME", "from-env")
    assert machine_identity(settings(tmp_path))["node_name"] == "from-env"
    assert machine_identity(settings(tmp_path, "--kubernetes.node-name=flag"))["node_name"] == "flag"


# --- the gap rule ---


def test_same_epoch_gap_is_the_exact_delta() -> None:
    assert judge_gap(SavedCounter(100.0, "550.54.15"), gpu(350.5), 30.0, False) == (250.5, "ok")


def test_a_short_gap_on_a_wrapping_counter_takes_one_wrap() -> None:
    joules, how = judge_gap(SavedCounter(262_000.0, EPOCH), rapl(100.0), 5.0, False)
    assert joules == pytest.approx(243.0) and how == "wrap"


def test_the_wrap_bound_is_the_zone_ceiling_not_a_kilowatt() -> None:
    """DRAM, range 65.7 kJ, 70 s down: 1 kW x 70 s would reach the range, the zone's 200 W cannot."""
    dram = Reading("dram", "dram-0", "rapl", 14.0, wrap_joules=65_712.999999, counter_epoch=EPOCH)
    assert judge_gap(SavedCounter(2.0, EPOCH), dram, 70.0, False) == (12.0, "ok")
    assert judge_gap(SavedCounter(2.0, EPOCH), dram, 400.0, False) == (None, "ambiguous_wrap")
    assert judge_gap(SavedCounter(2.0, EPOCH), dram, None, False) == (None, "unknown_length")


def test_a_restarted_counter_gives_energy_since_its_restart_only_if_it_cannot_wrap() -> None:
    assert judge_gap(SavedCounter(9e6, "550.54.15"), gpu(1234.0, "550.90.07"), 60.0, False) == (1234.0, "reset")
    assert judge_gap(SavedCounter(9e6, "550.54.15"), gpu(77.0), 60.0, True) == (77.0, "reset")
    assert judge_gap(SavedCounter(10.0, EPOCH), rapl(5000.0, "boot-b"), 60.0, False) == (None, "rebooted")
    assert judge_gap(SavedCounter(10.0, EPOCH), rapl(5000.0), 60.0, True) == (None, "rebooted")


def test_another_gpu_at_the_same_index_gets_no_gap() -> None:
    assert judge_gap(SavedCounter(100.0, "550.54.15", "GPU-aaaa"), gpu(350.0, uuid="GPU-bbbb"), 30.0, False) == (
        None, "other_device")


def test_more_than_the_device_can_draw_is_no_gap() -> None:
    limited = gpu(100.0 + 700.0 * 10 * 2, max_watts=700.0)  # twice what 700 W draws in 10 s
    assert judge_gap(SavedCounter(100.0, "550.54.15"), limited, 10.0, False) == (None, "jump")


def test_estimated_energy_never_gets_a_gap() -> None:
    assert judge_gap(SavedCounter(10.0, ""), estimate(5.0), 60.0, False) == (None, "not_a_counter")


@given(
    saved=st.floats(0, 300_000), current=st.floats(0, 300_000), seconds=st.floats(0, 1e5),
    ceiling=st.floats(1, 5000), wrap=st.one_of(st.none(), st.floats(1000, 300_000)),
    same_epoch=st.booleans(), rebooted=st.booleans(),
)
def test_property_a_gap_is_never_more_than_the_device_could_draw(
    saved: float, current: float, seconds: float, ceiling: float, wrap: float | None, same_epoch: bool,
    rebooted: bool,
) -> None:
    """Whatever the counters say, a recovered gap is within ceiling x gap, and exact when plainly so."""
    r = Reading("cpu", "package-0", "rapl", current, wrap_joules=wrap, max_watts=ceiling,
                counter_epoch=EPOCH if same_epoch else "other")
    joules, kind = judge_gap(SavedCounter(saved, EPOCH), r, seconds, rebooted)
    if joules is not None:
        assert 0 <= joules <= budget_joules(ceiling_watts(r), seconds)
    restarted = rebooted or not same_epoch
    if restarted and wrap is not None:
        assert joules is None
    in_range = wrap is None or (current <= wrap and saved <= wrap)
    if (not restarted and in_range and current >= saved and current - saved <= budget_joules(ceiling, seconds)
            and (wrap is None or budget_joules(ceiling, seconds) < wrap)):
        assert (joules, kind) == (current - saved, "ok")


# --- the whole cycle, in process ---


def restart(s: config.Settings, grid: FixedGrid, attribution: bool = True) -> tuple[Ledger, Checkpointer]:
    ledger = Ledger()
    cp = Checkpointer(s, ledger, Accountant(s), attribution=attribution, grid=grid, wall=lambda: 5000.0)
    cp.restore()
    return ledger, cp


def test_restart_resumes_totals_and_charges_the_gap_unattributed_once_the_grid_answers(tmp_path: Path) -> None:
    s = settings(tmp_path, "--pue=1.5")
    ledger, acc = Ledger(), Accountant(s)
    cp = Checkpointer(s, ledger, acc, attribution=True, grid=FixedGrid(400.0))
    run_samples(ledger, acc, [gpu(1000.0), estimate(0.0)], [gpu(1100.0), estimate(50.0)], cp=cp)
    assert cp.write()
    cp.close()
    before = {m: dict(v) for m, v in ledger.totals.items()}
    created = {m: dict(v) for m, v in ledger.created.items()}

    grid = FixedGrid(50.0)
    grid.answered = False  # the configured provider has not answered yet
    ledger2, cp2 = restart(s, grid)
    assert ledger2.totals == before and ledger2.created == created
    acc2 = cp2.accountant
    run_samples(ledger2, acc2, [gpu(1400.0), estimate(0.0)], cp=cp2, wall=5000.0)  # 300 J while down
    key, energy_key = ("gpu", "0"), ("gpu", "0", "nvml")
    assert ledger2.get(acct.ENERGY, energy_key) == 100.0  # measured, waiting for the grid's answer
    assert decode(_written(cp2)).gaps == (PendingGap("gpu", "0", "nvml", True, 300.0),)  # kept across a kill -9
    grid.answered = True
    run_samples(ledger2, acc2, [gpu(1400.0), estimate(0.0)], cp=cp2, wall=5001.0)
    assert ledger2.get(acct.ENERGY, energy_key) == 400.0
    assert ledger2.get(GAP_JOULES, key) == 300.0
    assert ledger2.get(acct.ENERGY, ("cpu", "0", "estimate")) == 50.0  # nothing invented
    # Before: 100 J at 400 g/kWh; the gap at the value the chain gave once it answered (50), not 400.
    assert ledger2.get(acct.EMISSIONS, key) == pytest.approx((100.0 * 400.0 + 300.0 * 50.0) * 1.5 / 3.6e6, rel=1e-12)
    assert ledger2.get(acct.UNATTRIBUTED_ENERGY, key) == 300.0  # nobody knows who used it
    assert ledger2.created[acct.ENERGY][energy_key] == created[acct.ENERGY][energy_key]
    assert cp2.last_gap is not None and cp2.last_gap["intensity_g_per_kwh"] == 50.0
    run_samples(ledger2, acc2, [gpu(1450.0), estimate(10.0)], cp=cp2, wall=5002.0)
    assert ledger2.get(acct.ENERGY, energy_key) == 450.0  # and on from the baseline: nothing twice
    cp2.close()


def _written(cp: Checkpointer) -> bytes:
    assert cp.write() and cp.path is not None
    return cp.path.read_bytes()


def test_a_device_read_late_still_gets_its_gap_and_one_never_read_is_dropped_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = settings(tmp_path, "--state.gap-wait=0s")
    ledger, acc = Ledger(), Accountant(s)
    cp = Checkpointer(s, ledger, acc, attribution=False, grid=FixedGrid(400.0))
    run_samples(ledger, acc, [gpu(1000.0)], cp=cp)
    assert cp.write()
    cp.close()
    ledger2, cp2 = restart(s, FixedGrid(400.0), attribution=False)
    with caplog.at_level(logging.INFO, logger="footprint.checkpoint"):
        run_samples(ledger2, cp2.accountant, [], cp=cp2)  # the GPU is not readable, and the wait is 0 s
    assert ledger2.get(GAP_REJECTED, ("gpu", "0", "not_read")) == 1.0
    dropped = [r for r in caplog.records if r.getMessage() == "energy while the exporter was down not recovered"]
    assert [(r.levelno, r.__dict__["reason"]) for r in dropped] == [(logging.WARNING, "not_read")]
    cp2.close()

    s = settings(tmp_path, "--state.gap-wait=1h")
    ledger3, cp3 = restart(s, FixedGrid(400.0), attribution=False)
    for _ in range(3):
        run_samples(ledger3, cp3.accountant, [], cp=cp3)  # unreadable for a while: the saved state waits
    assert decode(_written(cp3)).counters[("gpu", "0")].raw == 1000.0  # still saved, for a kill -9 now
    run_samples(ledger3, cp3.accountant, [gpu(1110.0)], cp=cp3)
    assert ledger3.get(GAP_JOULES, ("gpu", "0")) == 110.0
    cp3.close()


def test_a_second_exporter_on_the_same_state_file_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    first = Checkpointer(s, Ledger(), Accountant(s), attribution=False)
    with pytest.raises(ConfigError, match=rf"state.file: .* in use by another exporter \(pid {os.getpid()}"):
        Checkpointer(s, Ledger(), Accountant(s), attribution=False)
    first.close()
    Checkpointer(s, Ledger(), Accountant(s), attribution=False).close()  # free again once released


def test_an_empty_state_file_setting_means_no_checkpoint(tmp_path: Path) -> None:
    s = config.load(["--state.file="], env={})
    cp = Checkpointer(s, Ledger(), Accountant(s), attribution=False)
    assert cp.path is None
    cp.sampled()
    assert cp.write()


def test_the_temp_file_never_follows_a_planted_link(tmp_path: Path) -> None:
    """The old temp name was predictable (.state.json.tmp-<pid>); a link there was written through."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    state = tmp_path / "state.json"
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (tmp_path / f".state.json.tmp-{pid}").symlink_to(victim)
    write_atomically(state, b"new")
    assert state.read_bytes() == b"new" and victim.read_bytes() == b"keep"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


@pytest.mark.parametrize("content", [b"garbage\n", None], ids=["garbage", "foreign"])
def test_unusable_file_is_set_aside_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes | None
) -> None:
    s = settings(tmp_path)
    state = tmp_path / "state.json"
    if content is None:
        ledger = Ledger()
        ledger.add(acct.NODE_ENERGY, (), 5.0, 1.0)
        content = encode(snapshot_of(ledger), {"node_name": "elsewhere"}, "", 2.0, None)
        s = settings(tmp_path, "--kubernetes.node-name=here")
    state.write_bytes(content)
    ledger = Ledger()
    with caplog.at_level(logging.INFO, logger="footprint.checkpoint"):
        Checkpointer(s, ledger, Accountant(s), attribution=False).restore()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert ledger.totals == {}
    assert not state.exists()
    kind = "corrupt" if content == b"garbage\n" else "foreign"
    aside = list(tmp_path.glob(f"state.json.{kind}-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content


def test_series_unknown_to_this_version_are_dropped(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ledger = Ledger()
    ledger.add("footprint_renamed_long_ago_total", ("x",), 1.0, 1.0)
    ledger.add(acct.ENERGY, ("gpu", "0"), 2.0, 1.0)  # fewer labels than the metric has now
    ledger.add(acct.NODE_ENERGY, (), 3.0, 1.0)
    (tmp_path / "state.json").write_bytes(encode(snapshot_of(ledger), machine_identity(s), "", 2.0, None))
    fresh = Ledger()
    Checkpointer(s, fresh, Accountant(s), attribution=False).restore()
    assert fresh.totals == {acct.NODE_ENERGY: {(): 3.0}}


def test_failed_writes_warn_once_and_recovery_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = config.load([f"--state.file={tmp_path / 'gone' / 'state.json'}"], env={})
    ledger = Ledger()
    with caplog.at_level(logging.INFO, logger="footprint.checkpoint"):
        cp = Checkpointer(s, ledger, Accountant(s), attribution=False)
    assert "cannot create the checkpoint lock file; running without a lock" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="footprint.checkpoint"):
        for _ in range(3):
            ledger.add(acct.NODE_ENERGY, (), 1.0, 1.0)
            cp.sampled()
            assert not cp.write()
        (tmp_path / "gone").mkdir()
        cp.sampled()
        assert cp.write()
    assert cp.failures == 3
    assert cp.last_success is not None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "cannot write the checkpoint; still running, the previous one is kept"
    ]  # the lock warning came before, at construction
    assert "checkpoint writes work again" in caplog.text
    assert decode((tmp_path / "gone" / "state.json").read_bytes()).series[0][2] == 3.0


def test_a_full_disk_mid_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """The kernel refuses the write past RLIMIT_FSIZE (EFBIG), as it would with ENOSPC."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "exporter")!r})
        from footprint.state.format import write_atomically
        state = Path({str(tmp_path / "state.json")!r})
        write_atomically(state, b"old" * 10)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        try:
            write_atomically(state, b"new" * 1000)
        except OSError as exc:
            print("refused", exc.errno)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["refused", "27"]  # EFBIG
    assert (tmp_path / "state.json").read_bytes() == b"old" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left behind


def test_a_scrape_shows_nothing_that_is_not_on_disk_yet(tmp_path: Path) -> None:
    """collect() (called by the first render after a sample) returns once that sample is written."""
    s = settings(tmp_path, "--state.checkpoint-interval=1h")  # the interval never fires here
    ledger = Ledger()
    cp = Checkpointer(s, ledger, Accountant(s), attribution=False)
    cp.start()
    try:
        for n in range(1, 4):
            ledger.add(acct.NODE_ENERGY, (), 1.0, 1.0)
            cp.sampled()
            families = {f.name for f in checkpoint_families(cp.status())}
            assert decode((tmp_path / "state.json").read_bytes()).series == [(acct.NODE_ENERGY, (), float(n), 1.0)]
        assert families == {"footprint_checkpoint_write_failures",
                            "footprint_checkpoint_last_success_timestamp_seconds"}
    finally:
        cp.stop()


def test_a_checkpoint_taken_while_sampling_has_totals_and_baselines_of_one_sample(tmp_path: Path) -> None:
    """Files written while samples run (the sampler in its thread, writes from this one) each pair every
    counter's saved baseline with the totals charged up to it: energy total + first reading == saved
    baseline. The writer takes its copy under the ledger lock, and the sampler judges (moves the
    baselines) and charges in one hold of it; judged outside the lock, a copy is one delta ahead
    whenever it falls between the two, which this test makes likely."""
    import random
    import threading

    from footprint.meters.registry import rapl_meter
    from footprint.sampler import Sampler

    from tests.fakes.sysfs import RaplTree

    tree = RaplTree(tmp_path / "sys", packages=1)
    s = settings(tmp_path, f"--path.sysfs={tree.root}", f"--path.procfs={tmp_path / 'proc'}", "--no-meter.nvml",
                 "--no-meter.amdsmi", "--no-meter.estimate")
    ledger, acc = Ledger(), Accountant(s)
    cp = Checkpointer(s, ledger, acc, attribution=False, grid=FixedGrid(400.0))
    meter = rapl_meter(s)

    # Widen the window between the baselines moving and their deltas being charged: the GIL may pass to
    # the writer between judging and charging (and a rejected reading logs); here it always does. (A sample
    # that follows the meter's plan is judged and charged in one C call, with no such window.)
    judge = ledger.counters.deltas

    def judge_slowly(readings: list[Reading], read_at: list[float]) -> list[tuple[float, tuple[str, ...], float]]:
        judged = judge(readings, read_at)
        time.sleep(0.001)
        return judged

    ledger.counters.deltas = judge_slowly  # type: ignore[method-assign]
    sampler = Sampler([meter], ledger, acc, FixedGrid(400.0), 1.0,
                      on_sample=lambda: cp.sampled(sampler.state.readings))
    zones = {"package-0": "intel-rapl:0", "dram-0": "intel-rapl:0:1"}
    first = {device: tree.counter(zone) / 1e6 for device, zone in zones.items()}
    stop = threading.Event()

    def sample_forever() -> None:
        while not stop.is_set():
            sampler.sample()  # the first one reads `first`: the baselines
            for zone in zones.values():  # in place, as sysfs changes the attribute
                (tree.path(zone) / "energy_uj").write_text(f"{tree.counter(zone) + 1234}\n")
            time.sleep(0.001)  # samples far enough apart for the writer to see many of them

    worker = threading.Thread(target=sample_forever)
    worker.start()
    seen: set[float] = set()  # the package's energy total in each file checked: distinct files
    try:
        while sampler.state.samples < 60:
            time.sleep(random.random() * 0.002)  # a write at any moment of a sample, as a scrape asks for one
            if not cp.write() or not (tmp_path / "state.json").exists():  # nothing sampled yet
                continue
            saved = decode((tmp_path / "state.json").read_bytes())
            totals = {labels[1]: value for metric, labels, value, _ in saved.series if metric == acct.ENERGY}
            for device, raw_at_start in first.items():
                key = ("cpu" if device.startswith("package") else "dram", device)
                if key in saved.counters:  # from the first sample on
                    assert totals.get(device, 0.0) + raw_at_start == pytest.approx(saved.counters[key].raw, abs=1e-9)
            seen.add(totals.get("package-0", 0.0))
    finally:
        stop.set()
        worker.join()
        meter.close()
        cp.close()
    assert len(seen) >= 20  # files of many different samples were checked
