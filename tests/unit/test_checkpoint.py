"""The checkpoint: file format and its damage checks, identity, gap recovery rules, failed writes.

Real ledger, accountant and settings; readings are built as the meters build them; files are real
files in tmp dirs, and a full disk is a real EFBIG from the kernel (RLIMIT_FSIZE in a subprocess).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from footprint import accountant as acct
from footprint import config
from footprint.accountant import Accountant
from footprint.checkpoint import (
    GAP_JOULES,
    Checkpointer,
    CheckpointError,
    Snapshot,
    decode,
    encode,
    gap_joules,
    is_foreign,
    machine_identity,
)
from footprint.grid.base import IntensityReading
from footprint.ledger import CounterState, Ledger
from footprint.meters.base import Reading

from tests.support.exporter import REPO

INTENSITY = IntensityReading(value=400.0, signal="average", provider="constant", zone="")
EPOCH = "boot-a"


def settings(tmp_path: Path, *extra: str) -> config.Settings:
    return config.load([f"--state.file={tmp_path / 'state.json'}", "--grid.provider=constant",
                        "--grid.constant.value=400", *extra], env={})


def gpu(joules: float, epoch: str = "550.54.15") -> Reading:
    return Reading("gpu", "0", "nvml", joules, counter_epoch=epoch)


def rapl(joules: float, epoch: str = EPOCH, wrap: float = 262_143.0) -> Reading:
    return Reading("cpu", "package-0", "rapl", joules, wrap_joules=wrap, counter_epoch=epoch)


def estimate(joules: float) -> Reading:
    return Reading("cpu", "0", "estimate", joules, power_watts=50.0, hardware_counter=False)


def run_samples(ledger: Ledger, acc: Accountant, *samples: list[Reading], wall: float = 1000.0) -> None:
    """What the sampler does with successive readings: tracker deltas, then the accountant."""
    for i, readings in enumerate(samples):
        energy = [(r, ledger.counters.delta(r)) for r in readings]
        with ledger.lock:
            acc.account(ledger, energy, 1.0, INTENSITY, wall + i)


def snapshot_of(ledger: Ledger) -> Snapshot:
    return Snapshot(1, {m: dict(s) for m, s in ledger.totals.items()},
                    {m: dict(s) for m, s in ledger.created.items()}, dict(ledger.counters.states))


IDENTITY = {"node_name": "", "machine_id": "m-1", "hostname": "h"}


def test_round_trip_is_exact() -> None:
    ledger = Ledger()
    ledger.add(acct.ENERGY, ("gpu", "0", "nvml"), 0.1 + 0.2, 1700000000.123456)
    ledger.add(acct.NODE_ENERGY, (), 1e15 / 3, 1700000001.5)
    ledger.counters.states[("gpu", "0")] = CounterState(123456.789, "550.54.15", True)
    ledger.counters.states[("cpu", "0")] = CounterState(5.0, "", False)  # estimated: not saved
    cp = decode(encode(snapshot_of(ledger), IDENTITY, "boot", 1700000002.0, 55.5))
    assert sorted(cp.series) == sorted([
        (acct.ENERGY, ("gpu", "0", "nvml"), 0.1 + 0.2, 1700000000.123456),
        (acct.NODE_ENERGY, (), 1e15 / 3, 1700000001.5),
    ])
    assert cp.counters == {("gpu", "0"): CounterState(123456.789, "550.54.15", True)}
    assert (cp.boot_id, cp.boottime, cp.written_at, cp.identity) == ("boot", 55.5, 1700000002.0, IDENTITY)


def _valid() -> bytes:
    ledger = Ledger()
    ledger.add(acct.ENERGY, ("gpu", "0", "nvml"), 42.0, 1.0)
    return encode(snapshot_of(ledger), IDENTITY, "", 2.0, None)


def _with_body(body: bytes) -> bytes:
    """A well-formed header (right checksum and length) over any body."""
    return f"footprint-checkpoint 1 sha256={hashlib.sha256(body).hexdigest()} length={len(body)}\n".encode() + body


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
        (_valid().replace(b"footprint-checkpoint 1", b"footprint-checkpoint 2"), "unsupported"),
    ],
    ids=["empty", "garbage", "truncated", "bit-flip", "padded", "wrong-shape", "not-object", "newer-format"],
)
def test_damaged_files_are_refused(data: bytes, kind: str) -> None:
    with pytest.raises(CheckpointError) as err:
        decode(data)
    assert err.value.kind == kind


@pytest.mark.parametrize("bad", ["NaN", "-1.0", '"12"', "Infinity"])
def test_impossible_values_are_refused(bad: str) -> None:
    body = ('{"boot_id":"","boottime":null,"counters":[],"exporter_version":"0.1.0","identity":{},'
            f'"series":[["footprint_node_energy_joules_total",[],{bad},1.0]],"written_at":2.0}}').encode()
    with pytest.raises(CheckpointError, match="bad content"):
        decode(_with_body(body))


def test_identity_compares_the_strongest_name_both_sides_have() -> None:
    ours = {"node_name": "node-a", "machine_id": "m-1", "hostname": "pod-xyz"}
    assert not is_foreign({"node_name": "node-a", "machine_id": "m-2", "hostname": "pod-abc"}, ours)
    assert is_foreign({"node_name": "node-b", "machine_id": "m-1", "hostname": "pod-xyz"}, ours)
    assert not is_foreign({"node_name": "", "machine_id": "m-1", "hostname": "other"}, ours)
    assert is_foreign({"node_name": "", "machine_id": "", "hostname": "other"}, {**ours, "machine_id": ""})
    assert is_foreign({}, ours)


def test_node_name_comes_from_settings_or_the_downward_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NODE_NAME", "from-env")
    assert machine_identity(settings(tmp_path))["node_name"] == "from-env"
    assert machine_identity(settings(tmp_path, "--kubernetes.node-name=flag"))["node_name"] == "flag"


# --- gap recovery rules ---


def test_same_epoch_gap_is_the_exact_delta() -> None:
    assert gap_joules(CounterState(100.0, "550.54.15", True), gpu(350.5), 30.0, False) == (250.5, "exact")


def test_a_short_gap_on_a_wrapping_counter_takes_one_wrap() -> None:
    joules, how = gap_joules(CounterState(262_000.0, EPOCH, True), rapl(100.0), 5.0, False)
    assert joules == pytest.approx(243.0)
    assert how == "exact (one wrap)"


def test_a_gap_long_enough_to_hide_a_wrap_is_not_guessed() -> None:
    # 262 kJ range: at up to 1 kW a wrap could hide in 262 s, so 300 s is ambiguous, and so is unknown.
    assert gap_joules(CounterState(10.0, EPOCH, True), rapl(20.0), 300.0, False)[0] is None
    assert gap_joules(CounterState(10.0, EPOCH, True), rapl(20.0), None, False)[0] is None
    assert gap_joules(CounterState(10.0, EPOCH, True), rapl(20.0), 200.0, False)[0] == 10.0


def test_a_restarted_counter_gives_energy_since_its_restart_only_if_it_cannot_wrap() -> None:
    # NVML after a driver reload (new version = new epoch): energy since the reload, exactly.
    assert gap_joules(CounterState(9e6, "550.54.15", True), gpu(1234.0, "550.90.07"), 60.0, False)[0] == 1234.0
    # A reboot restarts every counter, whatever its epoch string says.
    assert gap_joules(CounterState(9e6, "550.54.15", True), gpu(77.0), None, True)[0] == 77.0
    # RAPL after a reboot: its value at boot is not documented to be 0, and it wraps: nothing.
    assert gap_joules(CounterState(10.0, EPOCH, True), rapl(5000.0, "boot-b"), None, False)[0] is None
    assert gap_joules(CounterState(10.0, EPOCH, True), rapl(5000.0), None, True)[0] is None


def test_a_reset_without_new_epoch_counts_since_the_reset() -> None:
    assert gap_joules(CounterState(9e6, "550.54.15", True), gpu(12.5), 60.0, False)[0] == 12.5


def test_estimated_energy_never_gets_a_gap() -> None:
    assert gap_joules(CounterState(10.0, "", True), estimate(5.0), 60.0, False)[0] is None


# --- the whole cycle, in process ---


def test_restart_resumes_totals_created_and_charges_the_gap_unattributed(tmp_path: Path) -> None:
    s = settings(tmp_path, "--pue=1.5")
    ledger, acc = Ledger(), Accountant(s)
    run_samples(ledger, acc, [gpu(1000.0), estimate(0.0)], [gpu(1100.0), estimate(50.0)])
    cp = Checkpointer(s, ledger, acc, attribution=True)
    cp.sampled()
    assert cp.write()
    before = {m: dict(v) for m, v in ledger.totals.items()}
    created = {m: dict(v) for m, v in ledger.created.items()}

    # The new process: restore, then the baseline sample, then the gap.
    ledger2 = Ledger()
    cp2 = Checkpointer(s, ledger2, Accountant(s), attribution=True, wall=lambda: 5000.0)
    cp2.restore()
    assert ledger2.totals == before and ledger2.created == created
    baseline = [gpu(1400.0), estimate(0.0)]  # 300 J while down; the estimate meter starts again at 0
    run_samples(ledger2, Accountant(s), baseline, wall=5000.0)
    cp2.recover_gap(baseline, INTENSITY)

    key = ("gpu", "0")
    energy_key = (*key, "nvml")
    assert ledger2.get(acct.ENERGY, energy_key) == 400.0
    assert ledger2.get(GAP_JOULES, key) == 300.0
    assert ledger2.get(acct.ENERGY, ("cpu", "0", "estimate")) == 50.0  # nothing invented
    assert ledger2.get(acct.EMISSIONS, key) == pytest.approx(400.0 * 1.5 * 400.0 / 3.6e6)
    assert ledger2.get(acct.UNATTRIBUTED_ENERGY, key) == 300.0  # nobody knows who used it
    assert ledger2.created[acct.ENERGY][energy_key] == created[acct.ENERGY][energy_key]
    assert ledger2.created[GAP_JOULES][key] == 5000.0
    # The next sample goes on from the baseline: nothing counted twice.
    run_samples(ledger2, Accountant(s), [gpu(1450.0), estimate(10.0)], wall=5001.0)
    assert ledger2.get(acct.ENERGY, energy_key) == 450.0


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
    cp = Checkpointer(s, ledger, Accountant(s), attribution=False)
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
    ]
    assert "checkpoint writes work again" in caplog.text
    assert decode((tmp_path / "gone" / "state.json").read_bytes()).series[0][2] == 3.0


def test_a_full_disk_mid_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """The kernel refuses the write past RLIMIT_FSIZE (EFBIG), as it would with ENOSPC."""
    script = textwrap.dedent(
        f"""
        import os, resource, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO / "exporter")!r})
        from footprint.checkpoint import write_atomically
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
            families = {f.name for f in cp.collect()}
            assert decode((tmp_path / "state.json").read_bytes()).series == [(acct.NODE_ENERGY, (), float(n), 1.0)]
        assert families == {"footprint_checkpoint_write_failures",
                            "footprint_checkpoint_last_success_timestamp_seconds"}
    finally:
        cp.stop()
