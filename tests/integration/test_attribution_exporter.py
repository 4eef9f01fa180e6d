"""The real exporter process attributing to pods: fake API server (HTTP), fake kubelet pod-resources (gRPC
on a unix socket), fake cgroup tree and /proc with CPU counters that keep moving, and for GPUs the real
pynvml on the fake libnvidia-ml.so.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from footprint.state.format import decode

from tests.fakes.cgroupfs import FakeProcfs
from tests.fakes.kube_apiserver import FakeApiServer, make_node_object
from tests.fakes.nvml import FakeGpu, FakeProcess, Scenario, fake_env
from tests.fakes.podresources_server import tagged
from tests.fakes.workloads import (
    INFERENCE,
    INFERENCE_CORES,
    INFERENCE_PID,
    TRAINING,
    TRAINING_CORES,
    fake_cluster,
    next_pass,
    start_fake_cluster,
)
from tests.support.exporter import REPO, start_exporter
from tests.support.promtext import Series, parse, pick, value
from tests.support.tools import tool

FAST = ["--sample.interval=100ms", "--attribution.interval=300ms"]  # a pass every third sample
PENDING_J, PENDING_G = "footprint_attribution_pending_energy_joules", "footprint_attribution_pending_emissions_grams"


def when(condition: Callable[[Series], bool]) -> Callable[[str], Series | None]:
    """A wait_until predicate: the parsed scrape once `condition` holds for it."""

    def check(text: str) -> Series | None:
        s = parse(text)
        return s if condition(s) else None

    return check


def total(s: Series, name: str, **labels: str) -> float:
    return sum(pick(s, name, **labels).values())


def workload(s: Series, pod: tuple[str, str, str], component: str) -> float:
    ns, name, container = pod
    return total(s, "footprint_workload_energy_joules_total", namespace=ns, pod=name, container=container,
                 component=component)


def assert_conserved(s: Series, components: tuple[str, ...]) -> None:
    """In one scrape: attributed + unattributed + pending (since the last pass) == device, joules and grams."""
    for component in components:
        device = total(s, "footprint_energy_joules_total", component=component)
        attributed = total(s, "footprint_workload_energy_joules_total", component=component)
        idle = total(s, "footprint_unattributed_energy_joules_total", component=component)
        pending = total(s, PENDING_J, component=component)
        assert device > 0 and attributed + idle + pending == pytest.approx(device, rel=1e-9), component
    grams = total(s, "footprint_emissions_grams_total")
    attributed_g = total(s, "footprint_workload_emissions_grams_total")
    assert attributed_g + total(s, "footprint_unattributed_emissions_grams_total") + total(
        s, PENDING_G) == pytest.approx(grams, rel=1e-9)


def test_cpu_only_node_splits_by_cpu_time_and_conserves(tmp_path: Path) -> None:
    args, env, cleanup = start_fake_cluster(tmp_path)
    try:
        run = [*args, *FAST, "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
        with start_exporter(run, env=env) as exp:
            s: Series = exp.wait_until(when(lambda s: workload(s, INFERENCE, "cpu") > 0.5), timeout=20)
            text = exp.get("/metrics")
    finally:
        cleanup()
    workloads = {dict(lbl)["pod"]: dict(lbl)["workload"]
                 for lbl in pick(s, "footprint_workload_emissions_grams_total")}
    assert workloads == {TRAINING[1]: "training", INFERENCE[1]: "inference"}
    ratio = workload(s, TRAINING, "cpu") / workload(s, INFERENCE, "cpu")
    assert ratio == pytest.approx(TRAINING_CORES / INFERENCE_CORES, rel=0.25)
    assert workload(s, TRAINING, "dram") > 0
    assert_conserved(s, ("cpu", "dram"))
    assert value(s, "footprint_workload_series_dropped_total") == 0.0
    for source in ("apiserver", "podresources", "cgroup"):
        assert value(s, "footprint_attribution_source_up", source=source) == 1.0
    assert all("pid" not in dict(lbl) for (_, lbl) in s)
    proc = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_gpus_exclusive_to_training_and_time_sliced_by_utilisation(tmp_path: Path) -> None:
    args, env, cleanup = start_fake_cluster(tmp_path)
    scenario = tmp_path / "scenario"
    Scenario(gpus=[FakeGpu(power=[(0.0, 310.0)], processes=[FakeProcess(999_999, 5)]),  # a stray process: ignored
                   FakeGpu(power=[(0.0, 180.0)], processes=[FakeProcess(INFERENCE_PID, 40)])],
             time=None).write(scenario)
    try:
        run = [*args, *FAST, "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
        with start_exporter(run, env={**env, **fake_env(scenario)}) as exp:
            first: Series = exp.wait_until(when(lambda s: workload(s, INFERENCE, "gpu") > 0), timeout=20)
            before = workload(first, INFERENCE, "gpu")
            second: Series = exp.wait_until(when(lambda s: workload(s, INFERENCE, "gpu") > before + 20), timeout=20)
    finally:
        cleanup()

    def gpu(s: Series, device: str) -> float:
        """The GPU's energy as of the last attribution pass (the rest is pending)."""
        return (value(s, "footprint_energy_joules_total", component="gpu", device=device)
                - value(s, PENDING_J, component="gpu", device=device))

    def grew(f: Callable[[Series], float]) -> float:
        return f(second) - f(first)

    # Between two scrapes, every window was attributed with the pods known: exact proportions.
    assert grew(lambda s: workload(s, TRAINING, "gpu")) == pytest.approx(grew(lambda s: gpu(s, "0")), rel=1e-9)
    assert grew(lambda s: workload(s, INFERENCE, "gpu")) == pytest.approx(0.4 * grew(lambda s: gpu(s, "1")), rel=1e-9)
    assert grew(lambda s: value(s, "footprint_unattributed_energy_joules_total", component="gpu", device="0")) == 0.0
    assert_conserved(second, ("cpu", "dram", "gpu"))


def test_sigterm_attributes_the_pending_window_before_the_final_checkpoint(tmp_path: Path) -> None:
    args, env, cleanup = start_fake_cluster(tmp_path)
    state = tmp_path / "state.json"
    try:
        run = [*args, "--sample.interval=100ms", "--attribution.interval=1h", "--no-meter.nvml", "--no-meter.rapl",
               f"--path.sysfs={tmp_path / 'sys'}", f"--state.file={state}"]
        with start_exporter(run, env=env) as exp:
            # The pods must be listed before the signal, or their energy is rightly nobody's (a loaded CI
            # machine once sent SIGTERM before the first listing): the sources read up only once the
            # listing is in use. Three samples leave the fake pods' counters time to move.
            s: Series = exp.wait_until(when(lambda s: total(s, PENDING_J, component="cpu") > 1.0
                                            and total(s, "footprint_sample_duration_seconds_count") >= 3
                                            and total(s, "footprint_attribution_source_up", source="apiserver") == 1
                                            and total(s, "footprint_attribution_source_up", source="podresources")
                                            == 1), timeout=20)
            assert not pick(s, "footprint_workload_energy_joules_total")  # the first pass was the baseline
            assert exp.stop(signal.SIGTERM) == 0
    finally:
        cleanup()
    saved: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
    for metric, labels, amount, _ in decode(state.read_bytes()).series:
        saved[(metric, labels)] = amount

    def summed(metric: str, component: str) -> float:
        return sum(v for (m, labels), v in saved.items() if m == metric and component in labels)

    assert saved[("footprint_workload_energy_joules_total", (*INFERENCE, "inference", "cpu"))] > 0
    for component in ("cpu", "dram"):
        device = summed("footprint_energy_joules_total", component)
        assert device > 1.0 and summed("footprint_workload_energy_joules_total", component) + summed(
            "footprint_unattributed_energy_joules_total", component) == pytest.approx(device, rel=1e-9)
    grams = sum(v for (m, _), v in saved.items() if m == "footprint_emissions_grams_total")
    assert sum(v for (m, _), v in saved.items() if m in ("footprint_workload_emissions_grams_total",
                                                           "footprint_unattributed_emissions_grams_total")) \
        == pytest.approx(grams, rel=1e-9)


def test_api_server_and_kubelet_unreachable_exporter_still_serves_node_totals(tmp_path: Path) -> None:
    (tmp_path / "kubepods.slice").mkdir()
    run = [*FAST, "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path}", "--kubernetes.enabled",
           "--kubernetes.node-name=node-1", "--kubernetes.api-url=http://127.0.0.1:9",  # discard port: refused
           f"--kubernetes.token-file={tmp_path / 'no-token'}", f"--path.cgroup={tmp_path}",
           f"--kubernetes.pod-resources-socket={tmp_path / 'missing.sock'}"]
    with start_exporter(run) as exp:
        s: Series = exp.wait_until(when(lambda s: total(s, "footprint_unattributed_energy_joules_total") > 1
                                        and value(s, "footprint_attribution_source_up", source="cgroup") == 1.0),
                                   timeout=20)
        assert exp.proc.poll() is None
    assert value(s, "footprint_attribution_source_up", source="apiserver") == 0.0
    assert value(s, "footprint_attribution_source_up", source="podresources") == 0.0
    assert not pick(s, "footprint_workload_energy_joules_total")
    assert total(s, "footprint_unattributed_energy_joules_total") == pytest.approx(
        value(s, "footprint_node_energy_joules_total"), rel=1e-9)


def test_missing_node_name_is_a_startup_error() -> None:
    env = {"PYTHONPATH": str(REPO / "exporter"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "footprint", "--kubernetes.enabled", "--no-meter.nvml",
                           "--kubernetes.api-url=http://127.0.0.1:9"], env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("footprint-exporter: kubernetes.node-name:")


def test_series_of_pods_deleted_while_the_exporter_was_down_leave_after_restart(tmp_path: Path) -> None:
    args, env, cleanup = start_fake_cluster(tmp_path)
    common = [*FAST, "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}",
              f"--state.file={tmp_path / 'state.json'}", "--attribution.grace-period=1s"]
    empty = FakeApiServer("fake-cluster-token").start()  # the pods were deleted meanwhile
    try:
        with start_exporter([*args, *common], env=env) as exp:
            exp.wait_until(when(lambda s: workload(s, INFERENCE, "cpu") > 0), timeout=20)
        with start_exporter([*args, *common, f"--kubernetes.api-url={empty.url}"], env=env) as exp:
            restored = parse(exp.scrape())
            assert workload(restored, TRAINING, "cpu") > 0  # back from the checkpoint
            s: Series = exp.wait_until(when(lambda s: not pick(s, "footprint_workload_energy_joules_total")
                                            and not pick(s, "footprint_workload_emissions_grams_total")), timeout=20)
    finally:
        empty.stop()
        cleanup()
    assert value(s, "footprint_attribution_consumers") == 0.0


def test_a_pass_that_cannot_read_a_pods_cpu_time_gives_it_nothing_and_the_next_one_its_true_share(
        tmp_path: Path) -> None:
    """Issue 14: truth A:B = 1:1 in every window where both are read. A pass where A's cpu.stat lacks
    `usage_usec` charges A nothing (B keeps its share); the next pass measures A from its last good
    value, not from 0 (which gave A its lifetime CPU time). A jump beyond all CPUs x elapsed is refused
    and counted, and measuring goes on from there. Counters move only right after a pass, so each
    pass reads A and B at the same step."""
    cluster = fake_cluster(tmp_path)
    a, b, step = cluster.train_id, cluster.infer_id, 500_000  # 0.5 CPU-seconds per window each
    cluster.tree.advance(a, 3_600_000_000)  # an hour of lifetime CPU time before the exporter starts
    cluster.tree.advance(b, 3_600_000_000)
    run = [*cluster.args, "--sample.interval=1s", "--attribution.interval=0s", "--no-meter.nvml",
           "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
    got: list[tuple[float, float]] = []  # (A, B) CPU joules after each pass

    def record(s: Series) -> None:
        got.append((workload(s, TRAINING, "cpu"), workload(s, INFERENCE, "cpu")))

    def window(i: int) -> tuple[float, float]:
        return got[i][0] - got[i - 1][0], got[i][1] - got[i - 1][1]

    try:
        with start_exporter(run) as exp:
            exp.wait_until(when(lambda s: value(s, "footprint_attribution_source_up", source="apiserver") == 1.0),
                           timeout=20)
            s = next_pass(exp)  # the pods are known from here on
            record(s)
            cluster.tree.advance(a, step)
            cluster.tree.advance(b, step)
            s = next_pass(exp)
            record(s)
            cluster.tree.write_stat(a, "user_usec 100\nsystem_usec 20\n")  # no usage_usec this pass
            cluster.tree.advance(b, step)
            s = next_pass(exp)
            record(s)
            unreadable = value(s, "footprint_attribution_cpu_time_rejected_total", reason="unreadable")
            cluster.tree.advance(a, step)  # readable again
            cluster.tree.advance(b, step)
            s = next_pass(exp)
            record(s)
            cluster.tree.advance(a, 10**12)  # an impossible jump (11.6 days of CPU in a second)
            cluster.tree.advance(b, step)
            s = next_pass(exp)
            record(s)
            jumps = value(s, "footprint_attribution_cpu_time_rejected_total", reason="jump")
            cluster.tree.advance(a, step)
            cluster.tree.advance(b, step)
            s = next_pass(exp)
            record(s)
    finally:
        cluster.stop()
    first, broken, after, jump, last = (window(i) for i in range(1, 6))
    # Each window's two shares are the same float; their differences of running totals agree to 1e-9.
    assert first[1] > 0 and first[0] == pytest.approx(first[1], rel=1e-9)
    assert broken[0] == 0.0 and broken[1] > 0
    assert after[1] > 0 and after[0] == pytest.approx(after[1], rel=1e-9)  # was ~7,200:1 (A's lifetime hour)
    assert jump[0] == 0.0 and jump[1] > 0
    assert last[1] > 0 and last[0] == pytest.approx(last[1], rel=1e-9)
    assert unreadable == 1.0 and jumps == 1.0
    assert value(s, "footprint_attribution_cpu_time_rejected_total", reason="backwards") == 0.0
    assert_conserved(s, ("cpu", "dram"))


def test_pods_with_oddly_typed_fields_are_skipped_and_counted_and_the_rest_attributed(tmp_path: Path) -> None:
    """Issue 16: `spec: [null]` and `status: "Running"` once marked the API server down and froze the
    node's pod list; a garbled pod-resources entry failed the whole kubelet answer."""
    cluster = fake_cluster(tmp_path)
    good = list(cluster.api.pods)
    cluster.api.set_pods([{"metadata": {"name": "odd-spec", "namespace": "x"}, "spec": [None]}, *good,
                          {"metadata": {"name": "odd-status", "namespace": "x"}, "status": "Running"}, 7])
    cluster.podres.raw_tail = tagged(1, b"\x0a\x09cut")  # a pod whose name is cut short
    run = [*cluster.args, "--sample.interval=1s", "--attribution.interval=0s", "--no-meter.nvml",
           "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
    try:
        with start_exporter(run) as exp:
            exp.wait_until(when(lambda s: value(s, "footprint_attribution_source_up", source="podresources") == 1.0),
                           timeout=20)
            next_pass(exp)
            cluster.tree.advance(cluster.train_id, 400_000)
            cluster.tree.advance(cluster.infer_id, 100_000)
            s = next_pass(exp)
    finally:
        cluster.stop()
    assert value(s, "footprint_attribution_source_up", source="apiserver") == 1.0
    assert workload(s, TRAINING, "cpu") == pytest.approx(4 * workload(s, INFERENCE, "cpu"), rel=1e-9)
    assert workload(s, INFERENCE, "cpu") > 0
    skipped = {dict(lbl)["source"] + "/" + dict(lbl)["reason"]: v
               for lbl, v in pick(s, "footprint_attribution_items_skipped_total").items()}
    # Counted at every refresh (each 1 s) that met them: at least once each, always in the same ratio.
    assert skipped["apiserver/malformed"] >= 3 and skipped["apiserver/malformed"] % 3 == 0
    assert skipped["apiserver/missing_name"] == 0 and skipped["podresources/malformed"] >= 1


def test_grid_zone_from_the_nodes_region_label_and_provider_id(tmp_path: Path) -> None:
    """Issue 15: no grid.zone set, kubernetes on: the node's region (label, else providerID) through the
    cloud-region table, in /api/v1/grid, the metrics and doctor."""
    cluster = fake_cluster(tmp_path)
    cluster.api.nodes["node-1"] = make_node_object(
        "node-1", {"topology.kubernetes.io/region": "europe-west4", "topology.kubernetes.io/zone": "europe-west4-a"},
        "gce://footprint-test/europe-west4-a/gke-pool-1-node-1")
    run = [*cluster.args, "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
    try:
        with start_exporter(run) as exp:
            grid = json.loads(exp.get("/api/v1/grid"))
            s = parse(exp.scrape())
            log = exp.log()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FOOTPRINT_")}
        env["PYTHONPATH"] = str(REPO / "exporter")
        doctor = subprocess.run([sys.executable, "-m", "footprint", "doctor", *run], env=env, capture_output=True,
                                text=True, timeout=60)
        requests = list(cluster.api.requests)
    finally:
        cluster.stop()
    assert grid["zone"] == "NL"
    assert pick(s, "footprint_grid_accounting_intensity_grams_per_kilowatt_hour", grid_zone="NL")
    assert "region europe-west4 from the node (label topology.kubernetes.io/region; cloud gcp" in log
    assert doctor.returncode == 0, doctor.stderr
    assert ("zone from this node: region europe-west4 (node node-1: label topology.kubernetes.io/region; "
            "cloud gcp (spec.providerID)) -> zone NL") in doctor.stdout
    assert requests.count("/api/v1/nodes/node-1") == 2  # once per process, at start


def test_process_groups_have_their_own_series_never_a_pod_and_survive_a_restart(tmp_path: Path) -> None:
    """Issue 15: bare-metal groups once came out as pod=<group>, namespace="": per-namespace rules took
    them for an unnamed namespace's pods. Now footprint_process_group_*{process_group}, restored from the
    checkpoint and counted as consumers like live ones."""
    proc = FakeProcfs(tmp_path / "proc", cpus=4)
    proc.add_process(100, comm="python")
    proc.add_process(200, comm="slurmstepd")
    run = [*FAST, "--no-meter.nvml", "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}",
           f"--path.procfs={tmp_path / 'proc'}", "--attribution.processes", f"--state.file={tmp_path / 'state.json'}"]
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.05):
            proc.advance_process(100, 10)
            proc.advance_process(200, 2)
            proc.advance_cpu(12, 8)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    groups = "footprint_process_group_energy_joules_total"
    try:
        with start_exporter(run) as exp:
            s: Series = exp.wait_until(when(lambda s: total(s, groups, process_group="slurmstepd") > 0), timeout=20)
            text = exp.get("/metrics")
        with start_exporter(run) as exp:
            restored = parse(exp.scrape())
    finally:
        stop.set()
        thread.join(timeout=5)
    assert {dict(lbl)["process_group"] for lbl in pick(s, groups)} == {"python", "slurmstepd"}
    assert {dict(lbl)["component"] for lbl in pick(s, groups, process_group="python")} == {"cpu", "dram"}
    assert pick(s, "footprint_process_group_emissions_grams_total", process_group="python")
    assert not pick(s, "footprint_workload_energy_joules_total")
    assert not pick(s, "footprint_workload_emissions_grams_total")
    assert total(s, groups, process_group="python") > total(s, groups, process_group="slurmstepd")
    assert_conserved_groups(s)
    assert total(restored, groups, process_group="python") >= total(s, groups, process_group="python")
    assert value(restored, "footprint_attribution_consumers") == 2.0  # adopted from the checkpoint
    proc_check = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert proc_check.returncode == 0, proc_check.stdout.decode() + proc_check.stderr.decode()


def assert_conserved_groups(s: Series) -> None:
    for component in ("cpu", "dram"):
        device = total(s, "footprint_energy_joules_total", component=component)
        attributed = total(s, "footprint_process_group_energy_joules_total", component=component)
        rest = total(s, "footprint_unattributed_energy_joules_total", component=component) + total(
            s, PENDING_J, component=component)
        assert attributed + rest == pytest.approx(device, rel=1e-9), component


def test_a_kubelet_refusing_the_list_marks_pod_resources_down_until_it_answers_again(tmp_path: Path) -> None:
    """The kubelet rate-limits pod-resources (RESOURCE_EXHAUSTED, trailers only): the real process marks the
    source down and keeps serving the node's totals, and the first List answered after it is used."""
    cluster = fake_cluster(tmp_path)
    cluster.podres.fail_with = (grpc.StatusCode.RESOURCE_EXHAUSTED, "rejected by rate limit")
    run = [*cluster.args, "--sample.interval=1s", "--attribution.interval=0s", "--no-meter.nvml",
           "--no-meter.rapl", f"--path.sysfs={tmp_path / 'sys'}"]
    try:
        with start_exporter(run) as exp:
            exp.wait_until(lambda _: cluster.podres.calls >= 2 or None, timeout=20)  # a first refresh is over
            down = exp.wait_until(
                when(lambda s: value(s, "footprint_attribution_source_up", source="apiserver") == 1.0), timeout=20)
            assert value(down, "footprint_attribution_source_up", source="podresources") == 0.0
            assert value(down, "footprint_node_energy_joules_total") > 0
            calls = cluster.podres.calls
            cluster.podres.fail_with = None
            up = exp.wait_until(when(lambda s: value(s, "footprint_attribution_source_up", source="podresources")
                                     == 1.0), timeout=20)
            assert exp.proc.poll() is None
    finally:
        cluster.stop()
    assert cluster.podres.calls > calls
    assert value(up, "footprint_node_energy_joules_total") >= value(down, "footprint_node_energy_joules_total")
