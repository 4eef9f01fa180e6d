"""Restarts of the real exporter on the same state file: kill -9, SIGTERM, damaged checkpoints, gaps
that must wait (a GPU not readable yet, a grid not answered yet), a new container, a second exporter.

Ground truth comes from the fixtures, not from the exporter: the fake NVML's counter (its clock is
frozen and moved by the test, so the energy is known to the millijoule) and the RAPL sysfs tree's
unwrapped total. Energy drawn while the exporter is down is moved by the test between the runs; every
live step stays under what the device could draw in one real sample interval (the exporter judges
deltas against real time). A downtime longer than the test takes is made by moving the checkpoint's
read times back (`shift_back`), which is what a longer wait would have written.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from footprint.accounting.ledger import Labels
from footprint.state.format import decode

from tests.fakes.grid_servers import PeerFake, serving
from tests.fakes.nvml import FakeGpu, Scenario, fake_env
from tests.fakes.sysfs import RaplTree
from tests.support.exporter import REPO, ExporterProcess, free_port, start_exporter
from tests.support.promtext import Series, parse, pick, value

BASE = ["--sample.interval=100ms", "--web.enable-created-series"]
CONSTANT = ["--grid.provider=constant", "--grid.constant.value=400"]
ENERGY = "footprint_energy_joules_total"
EMISSIONS = "footprint_emissions_grams_total"
GAP = "footprint_checkpoint_restored_gap_joules_total"


def args(tmp_path: Path, *extra: str, grid: tuple[str, ...] = tuple(CONSTANT)) -> list[str]:
    return [*BASE, *grid, f"--path.sysfs={tmp_path / 'sys'}", f"--state.file={tmp_path / 'state.json'}", *extra]


def joules(s: Series, component: str, device: str) -> float:
    return value(s, ENERGY, component=component, device=device)


def wait_for(exp: ExporterProcess, component: str, device: str, expected: float, name: str = ENERGY) -> Series:
    """Scrape until the device's exported `name` equals `expected` (to well under a millijoule)."""

    def done(text: str) -> Series | None:
        s = parse(text)
        found = pick(s, name, component=component, device=device)
        return s if found and abs(next(iter(found.values())) - expected) < 1e-6 else None

    result: Series = exp.wait_until(done, timeout=15)
    return result


def kill_9(exp: ExporterProcess) -> None:
    exp.proc.send_signal(signal.SIGKILL)
    exp.proc.wait(10)


def wait_checkpointed(path: Path, predicate: Callable[[dict[tuple[str, Labels], float]], bool],
                      timeout: float = 10.0) -> None:
    """Poll the state file until predicate(series dict) holds: the write-after-scrape has landed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            cp = decode(path.read_bytes())
            series = {(m, labels): v for m, labels, v, _ in cp.series}
            if predicate(series):
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, "the checkpoint never caught up with the scrape"
        time.sleep(0.05)


def shift_back(path: Path, seconds: float) -> None:
    """Rewrite the checkpoint as if it (and every counter in it) had been written `seconds` earlier."""
    data = json.loads(path.read_bytes().partition(b"\n")[2])
    data["written_at"] -= seconds
    if data["boottime"] is not None:
        data["boottime"] -= seconds
    for c in data["counters"]:
        c["wall"] -= seconds
        if c["boottime"] is not None:
            c["boottime"] -= seconds
    body = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    header = f"footprint-checkpoint 2 sha256={hashlib.sha256(body).hexdigest()} length={len(body)}\n"
    path.write_bytes(header.encode() + body)


def test_kill_9_gpu_counter_continues_exactly_against_fake_nvml(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 20.0), (2.0, 30.0)], energy_offset_mj=4_321_987_654)], time=0.0)
    sc.write(path)

    def truth(t: float) -> float:  # what the exporter must show: energy since its first sample at t=0
        return (sc.energy_mj(0, t) - sc.energy_mj(0, 0.0)) / 1000

    run = args(tmp_path, "--no-meter.rapl")
    with start_exporter(run, env=fake_env(path)) as exp:
        wait_for(exp, "gpu", "0", 0.0)
        sc.time = 1.0
        sc.write(path)
        before = wait_for(exp, "gpu", "0", truth(1.0))
        created = value(before, "footprint_energy_joules_created", component="gpu", device="0")
        kill_9(exp)
        # Down from t=1 to t=6, with a power step at 2 s the exporter never saw.
        sc.time = 6.0
        sc.write(path)
    with start_exporter(run, env=fake_env(path)) as exp:
        after = wait_for(exp, "gpu", "0", truth(6.0))
        assert truth(6.0) == pytest.approx(1 * 20.0 + 1 * 20.0 + 4 * 30.0)
        assert value(after, "footprint_energy_joules_created", component="gpu", device="0") == created
        # The gap is recovered (at least the 5 s down; more if the last checkpoint predates t=1).
        assert truth(6.0) - truth(1.0) <= value(after, GAP, component="gpu", device="0") <= truth(6.0)
        sc.time = 6.5
        sc.write(path)
        wait_for(exp, "gpu", "0", truth(6.5))  # and it goes on from there: nothing twice
        assert "recovered energy drawn while the exporter was down" in exp.log()


def test_kill_9_across_a_driver_reload_counts_only_what_the_counter_saw(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 30.0)], energy_offset_mj=10_000_000)], time=0.0)
    sc.write(path)
    run = args(tmp_path, "--no-meter.rapl")
    with start_exporter(run, env=fake_env(path)) as exp:
        sc.time = 1.0
        sc.write(path)
        wait_for(exp, "gpu", "0", 30.0)
        kill_9(exp)
    # While down: a new driver is loaded at t=1.5 (new version: the counter's epoch changes).
    sc.reloads, sc.driver_version, sc.time = [1.5], "550.90.07", 2.0
    sc.write(path)
    with start_exporter(run, env=fake_env(path)) as exp:
        # 1..1.5 s happened before the reload and no counter kept it: lost, never guessed.
        s = wait_for(exp, "gpu", "0", 30.0 + 0.5 * 30.0)
        assert value(s, GAP, component="gpu", device="0") >= 0.5 * 30.0
        assert "the counter restarted: energy since the restart only" in exp.log()


def test_a_gpu_unreadable_after_restart_still_gets_its_gap(tmp_path: Path) -> None:
    """Issue 14: the driver container is still loading when the exporter restarts (GPU unreadable for
    a while): the saved counter waits for the GPU's first read. Truth 110 J; it used to export 10 J."""
    (tmp_path / "sys").mkdir()
    path = tmp_path / "scenario"
    sc = Scenario(gpus=[FakeGpu(power=[(0.0, 10.0)], lost=[(1.5, 11.0)])], time=0.0)
    sc.write(path)
    run = args(tmp_path, "--no-meter.rapl")
    with start_exporter(run, env=fake_env(path)) as exp:
        wait_for(exp, "gpu", "0", 0.0)
        sc.time = 1.0
        sc.write(path)
        wait_for(exp, "gpu", "0", 10.0)
        wait_checkpointed(tmp_path / "state.json", lambda c: c.get((ENERGY, ("gpu", "0", "nvml"))) == 10.0)
        kill_9(exp)
    sc.time = 1.5  # lost from here until 11 s
    sc.write(path)
    with start_exporter(run, env=fake_env(path)) as exp:
        down = exp.wait_until(lambda text: s if (s := parse(text)) and pick(
            s, "footprint_device_up", component="gpu", device="0") == {
            frozenset({("component", "gpu"), ("device", "0")}): 0.0} else None)
        assert joules(down, "gpu", "0") == 10.0 and not pick(down, GAP)  # waiting, not dropped
        sc.time = 11.0  # readable again; 100 J were drawn since the checkpoint
        sc.write(path)
        s = wait_for(exp, "gpu", "0", 110.0)
        assert value(s, GAP, component="gpu", device="0") == 100.0
        assert not pick(s, "footprint_checkpoint_gap_rejected_total")


def test_a_dram_gap_is_bounded_by_the_zone_ceiling_not_a_kilowatt(tmp_path: Path) -> None:
    """Issue 14: DRAM zone range 65.7 kJ, 70 s down. 1 kW x 70 s would reach the range (the gap was
    dropped: 2 J exported of 12 J); the zone's own ceiling (200 W) cannot, so the gap is exact. The
    power gauge then shows the interval's power (nothing drawn: 0 W), not the gap over one interval."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True, max_range_uj=65_712_999_999)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0:1", 2_000_000)
        wait_for(exp, "dram", "dram-0", 2.0)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("dram", "dram-0", "rapl"))) == 2.0)
        kill_9(exp)
    shift_back(state, 70.0)
    tree.advance("intel-rapl:0:1", 10_000_000)
    with start_exporter(run) as exp:
        s = wait_for(exp, "dram", "dram-0", 12.0)
        assert tree.true_uj["intel-rapl:0:1"] / 1e6 == 12.0
        assert value(s, GAP, component="dram", device="dram-0") == 10.0
        samples = value(s, "footprint_sample_duration_seconds_count")
        later = exp.wait_until(lambda text: p if (p := parse(text)) and value(
            p, "footprint_sample_duration_seconds_count") > samples + 1 else None)
        assert value(later, "footprint_power_watts", component="dram", device="dram-0") == 0.0


def peer_payload(average: float, marginal: float | None = None,
                 marginal_at: Callable[[], float] = time.time) -> Callable[[], dict[str, Any]]:
    """A grid pod's /api/v1/grid answer: average (and marginal) from a constant upstream, published now."""

    def payload() -> dict[str, Any]:
        now = time.time()
        reading = {"value": average, "signal": "average", "provider": "constant", "zone": "XX",
                   "published_at": now, "fetched_at": now, "basis": "unknown"}
        m = None if marginal is None else {**reading, "value": marginal, "signal": "marginal",
                                           "published_at": marginal_at()}
        return {"version": 1, "generated_at": now, "accounting": reading, "marginal": m}

    return payload


def test_the_gap_waits_for_the_configured_provider_first_answer(tmp_path: Path) -> None:
    """Issue 14: after a restart the peer (50 g/kWh) has not answered yet; the gap used to be charged
    at the static table (the first sample always fell back). Truth: 100 J x 50 g/kWh."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    with serving(PeerFake(peer_payload(50.0))) as peer:
        run = args(tmp_path, "--no-meter.nvml", grid=("--grid.provider=peer", f"--grid.peer.url={peer.url}"))
        with start_exporter(run) as exp:
            exp.wait_until(lambda text: pick(parse(text), "footprint_grid_accounting_intensity_grams_per_kilowatt_hour",
                                             provider="peer"))
            tree.advance("intel-rapl:0", 36_000_000)
            wait_for(exp, "cpu", "package-0", 36.0)
            wait_checkpointed(tmp_path / "state.json",
                              lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 36.0)
            kill_9(exp)
        tree.advance("intel-rapl:0", 100_000_000)  # drawn while down
        peer.hold = threading.Event()  # the grid pod answers late this time
        try:
            with start_exporter(run) as exp:
                for _ in range(5):  # samples go on; the measured gap waits for the grid's answer
                    s = parse(exp.scrape())
                    assert joules(s, "cpu", "package-0") == 36.0 and not pick(s, GAP)
                    time.sleep(0.1)
                peer.hold.set()
                s = wait_for(exp, "cpu", "package-0", 136.0)
                grams = value(s, EMISSIONS, component="cpu", device="package-0")
                assert grams == pytest.approx(136.0 * 50.0 / 3.6e6, rel=1e-9)
                log = exp.log()
        finally:
            peer.hold.set()
        doctor = subprocess.run([sys.executable, "-m", "footprint", "doctor", *run], capture_output=True, text=True,
                                timeout=60, env={"PYTHONPATH": str(REPO / "exporter")})
    assert "charged the gap's emissions at the intensity the grid chain gives after its first answer" in log
    assert "intensity_g_per_kwh=50.0 provider=peer signal=average" in log
    assert "restart gaps: last one 100 J charged" in doctor.stdout
    assert "at 50 g/kWh (average, provider peer, basis unknown)" in doctor.stdout


def test_marginal_accounting_is_its_own_counter_and_never_takes_an_average(tmp_path: Path) -> None:
    """Issue 14: with marginal accounting, a stale marginal value used to switch the counter to the
    static average. Now: the average drives footprint_emissions_grams_total throughout, the marginal
    counter only ever takes marginal values, and energy with no fresh marginal value is counted apart."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)  # a dram zone: no estimate adds to the node
    first: list[float] = []

    def marginal_at() -> float:  # published once: stale max-age after the peer's first answer
        if not first:
            first.append(time.time())
        return first[0]

    with serving(PeerFake(peer_payload(300.0, 600.0, marginal_at))) as peer:
        run = args(tmp_path, "--no-meter.nvml", "--grid.max-age=4s", "--grid.refresh-interval=1s",
                   grid=("--grid.provider=peer", f"--grid.peer.url={peer.url}", "--grid.accounting-signal=marginal"))
        intensity = "footprint_grid_carbon_intensity_grams_per_kilowatt_hour"
        with start_exporter(run) as exp:
            exp.wait_until(lambda text: pick(parse(text), intensity, provider="peer", signal="marginal"))
            tree.advance("intel-rapl:0", 36_000_000)
            s = wait_for(exp, "cpu", "package-0", 36.0)
            marginal = value(s, "footprint_marginal_emissions_grams_total", component="cpu", device="package-0")
            assert marginal == pytest.approx(36.0 * 600.0 / 3.6e6, rel=1e-9)
            exp.wait_until(lambda text: not pick(parse(text), intensity, signal="marginal") and text, timeout=15)
            tree.advance("intel-rapl:0", 72_000_000)
            s = wait_for(exp, "cpu", "package-0", 108.0)
            assert value(s, "footprint_marginal_emissions_grams_total", component="cpu",
                         device="package-0") == marginal
            assert value(s, "footprint_uncharged_energy_joules_total", signal="marginal") == 72.0
            assert value(s, EMISSIONS, component="cpu", device="package-0") == pytest.approx(
                108.0 * 300.0 / 3.6e6, rel=1e-9)
            assert value(s, "footprint_grid_accounting_intensity_grams_per_kilowatt_hour", provider="peer",
                         signal="average") == 300.0


def in_container(hostname: str) -> list[str]:
    """Run as a fresh container would: its own host name, no machine id, no NODE_NAME (user namespace)."""
    script = (f"hostname {hostname} && mount --bind /dev/null /etc/machine-id && "
              "{ mount --bind /dev/null /var/lib/dbus/machine-id 2>/dev/null || true; } && exec \"$@\"")
    return ["unshare", "--map-root-user", "--uts", "--mount", "sh", "-c", script, "sh"]


def test_a_new_container_on_the_same_machine_continues(tmp_path: Path) -> None:
    """Issue 14: plain `docker run` with a volume, no NODE_NAME, no machine id: the checkpoint was set
    aside as foreign (identity = host name = container id). Truth 1,050 J; it used to export 0 J."""
    probe = subprocess.run([*in_container("probe"), "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here: {probe.stderr.decode(errors='replace').strip()}")
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run, env={"NODE_NAME": ""}, wrap=in_container("container-1")) as exp:
        tree.advance("intel-rapl:0", 50_000_000)
        wait_for(exp, "cpu", "package-0", 50.0)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 50.0)
        kill_9(exp)
    shift_back(state, 60.0)  # a minute down: 1 kJ is plausible for a CPU package
    tree.advance("intel-rapl:0", 1_000_000_000)
    with start_exporter(run, env={"NODE_NAME": ""}, wrap=in_container("container-2")) as exp:
        s = wait_for(exp, "cpu", "package-0", 1050.0)
        assert value(s, GAP, component="cpu", device="package-0") == 1000.0
        assert "matched_by=boot_id" in exp.log()


def test_kill_9_with_energy_pending_attribution_leaves_it_unattributed_not_lost(tmp_path: Path) -> None:
    """The attribution window (--attribution.interval) is in each checkpoint: after a kill -9 nobody can
    be given it any more (the processes of that window are gone with the old exporter's view), so it
    becomes unattributed, and workload + unattributed == device holds again. It used to be lost."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml", "--attribution.processes", "--attribution.interval=1h")
    pending = "footprint_attribution_pending_energy_joules"
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 40_000_000)
        wait_for(exp, "cpu", "package-0", 40.0)
        wait_for(exp, "cpu", "package-0", 40.0, name=pending)

        def saved() -> bool:
            try:
                return decode(state.read_bytes()).pending == {("cpu", "package-0"): (40.0, 40.0 * 400.0 / 3.6e6)}
            except (OSError, ValueError):
                return False

        deadline = time.monotonic() + 10
        while not saved():
            assert time.monotonic() < deadline, "the pending window never reached the checkpoint"
            time.sleep(0.05)
        kill_9(exp)
    with start_exporter(run) as exp:
        s = wait_for(exp, "cpu", "package-0", 40.0, name="footprint_unattributed_energy_joules_total")
        assert joules(s, "cpu", "package-0") == 40.0
        assert value(s, "footprint_unattributed_emissions_grams_total", component="cpu", device="package-0") == (
            pytest.approx(40.0 * 400.0 / 3.6e6, rel=1e-12))
        assert value(s, pending, component="cpu", device="package-0") == 0.0


def test_a_second_exporter_on_the_same_state_file_exits_2(tmp_path: Path) -> None:
    RaplTree(tmp_path / "sys", packages=1, dram=False)
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        second = subprocess.run(
            [sys.executable, "-m", "footprint", f"--web.listen-address=127.0.0.1:{free_port()}", *run],
            capture_output=True, text=True, timeout=30, env={"PYTHONPATH": str(REPO / "exporter")},
        )
        assert second.returncode == 2
        assert [line for line in second.stderr.splitlines() if not line.startswith("ts=")] == [
            f"footprint-exporter: state.file: {tmp_path / 'state.json'} is in use by another exporter "
            f"(pid {exp.proc.pid}, lock {tmp_path / 'state.json.lock'}); give each exporter its own state file"
        ]
        assert "footprint_build_info" in exp.scrape()  # the first one is untouched


def test_kill_9_rapl_and_nothing_goes_backwards_for_prometheus(tmp_path: Path) -> None:
    """RAPL recovers the gap exactly, and every counter resumes at or above the last value a scraper
    saw (a decrease would read as a counter reset, and rate() would count the whole total again)."""
    tree = RaplTree(tmp_path / "sys", packages=1, dram=True)
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 5_000_000)
        tree.advance("intel-rapl:0:1", 1_250_000)
        wait_for(exp, "dram", "dram-0", 1.25)
        last = wait_for(exp, "cpu", "package-0", 5.0)
        wait_checkpointed(tmp_path / "state.json",
                          lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 5.0)
        kill_9(exp)
    tree.advance("intel-rapl:0", 7_000_000)  # drawn while down
    with start_exporter(run) as exp:
        s = wait_for(exp, "cpu", "package-0", 12.0)
        assert tree.true_uj["intel-rapl:0"] / 1e6 == 12.0
        assert joules(s, "dram", "dram-0") == 1.25
        assert value(s, GAP, component="cpu", device="package-0") == 7.0
        counters = {k: v for k, v in last.items() if k[0].endswith("_total")}
        assert counters
        for key, seen in counters.items():
            assert s[key] >= seen, key
        assert "charged the gap's emissions at the intensity the grid chain gives after its first answer" in exp.log()


def test_kill_9_estimated_energy_is_not_invented_for_the_gap(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    # A constant 1 kW estimate, so invented energy for a multi-second gap could not hide.
    run = args(tmp_path, "--no-meter.nvml", "--estimate.cpu-idle-watts=1000", "--estimate.cpu-max-watts=1000")
    with start_exporter(run) as exp:
        seen = exp.wait_until(lambda text: s if (s := parse(text)) and joules(s, "cpu", "package-0") > 500 else None)
        scraped = joules(seen, "cpu", "package-0")
        wait_checkpointed(tmp_path / "state.json",
                          lambda c: c.get((ENERGY, ("cpu", "package-0", "estimate")), 0.0) >= scraped)
        kill_9(exp)
        saved = dict(((m, labels), v) for m, labels, v, _ in decode((tmp_path / "state.json").read_bytes()).series)
    time.sleep(3.0)  # the exporter is down for 3 s: 3 kJ an inventing exporter would add
    started = time.monotonic()
    with start_exporter(run) as exp:
        s = parse(exp.scrape())
        bound = (time.monotonic() - started) * 1000.0  # at most what 1 kW drew since this process started
        resumed = joules(s, "cpu", "package-0")
        assert scraped <= saved[(ENERGY, ("cpu", "package-0", "estimate"))] <= resumed
        assert resumed - saved[(ENERGY, ("cpu", "package-0", "estimate"))] <= bound
        assert not pick(s, GAP, component="cpu", device="package-0")
        assert decode((tmp_path / "state.json").read_bytes()).counters == {}  # estimates are never saved


def test_sigterm_writes_a_final_checkpoint(tmp_path: Path) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml", "--state.checkpoint-interval=1h")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 2_500_000)
        wait_for(exp, "cpu", "package-0", 2.5)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 2.5)
        written = decode(state.read_bytes()).written_at
        assert exp.stop(signal.SIGTERM) == 0
        log = exp.log()
    final = decode(state.read_bytes())
    assert final.written_at > written
    assert {(m, labels): v for m, labels, v, _ in final.series}[(ENERGY, ("cpu", "package-0", "rapl"))] == 2.5
    assert "final checkpoint written" in log
    tree.advance("intel-rapl:0", 1_000_000)
    with start_exporter(run) as exp:
        wait_for(exp, "cpu", "package-0", 3.5)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_checkpoint_gives_one_warning_and_a_clean_start(tmp_path: Path, damage: str) -> None:
    tree = RaplTree(tmp_path / "sys", packages=1, dram=False)
    state = tmp_path / "state.json"
    run = args(tmp_path, "--no-meter.nvml")
    with start_exporter(run) as exp:
        tree.advance("intel-rapl:0", 4_000_000)
        wait_for(exp, "cpu", "package-0", 4.0)
        assert exp.stop(signal.SIGTERM) == 0
    good = state.read_bytes()
    bad = b"\x89PNG\r\n\x1a\n not a checkpoint" if damage == "garbage" else good[: len(good) * 2 // 3]
    state.write_bytes(bad)
    with start_exporter(run) as exp:
        wait_for(exp, "cpu", "package-0", 0.0)  # a fresh start: counting begins again at zero
        tree.advance("intel-rapl:0", 1_000_000)
        wait_for(exp, "cpu", "package-0", 1.0)
        wait_checkpointed(state, lambda c: c.get((ENERGY, ("cpu", "package-0", "rapl"))) == 1.0)
        warnings = [line for line in exp.log().splitlines() if "level=warn" in line]
    assert len(warnings) == 1 and "ignoring the checkpoint" in warnings[0] and "reason=corrupt" in warnings[0]
    aside = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bad
