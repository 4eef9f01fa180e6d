"""`footprint-exporter measure -- CMD` as a user runs it: a real child Python process that loads the fake
GPU through the real pynvml (tests/fakes/nvml), registers itself as a GPU process and burns CPU; the
real meters, grid feed, accountant and sampler of the exporter measure it; `--from` reads a real
exporter process; MLflow logs into a real local file store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from footprint.tracking import runlog

from tests.fakes.grid_servers import ElectricityMapsFake, serving
from tests.fakes.nvml import SCENARIO_ENV, FakeGpu, Scenario, fake_env
from tests.support.exporter import REPO, start_exporter

FAST = ["--sample.interval=50ms", "--no-meter.rapl"]

# The child: loads the fake NVML (real pynvml), puts itself on GPU 0 with `sm` % SM utilisation by
# rewriting the scenario (the fake re-reads it; same clock epoch), burns CPU, exits `code`.
CHILD = """
import os, sys, time
import pynvml
from tests.fakes.nvml import FakeGpu, FakeProcess, Scenario
pynvml.nvmlInit()
sm, code, burn = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
Scenario(gpus=[FakeGpu(power=[(0.0, 300.0)], processes=[FakeProcess(os.getpid(), sm)])],
         time=None, epoch=float(os.environ["CHILD_FAKE_EPOCH"])
         ).write(__import__("pathlib").Path(os.environ["FAKE_NVML_SCENARIO"]))
t = time.process_time()
while time.process_time() - t < burn:
    pass
sys.exit(code)
"""

# A child that waits for a signal: handled (writes which one, exits 40 + its number % 10) or default.
WAITER = """
import signal, sys, time, pathlib
mark = pathlib.Path(sys.argv[1])
if sys.argv[2] == "handle":
    def on(signum, frame):
        mark.with_suffix(".got").write_text(signal.Signals(signum).name)
        sys.exit(40 + signum % 10)
    signal.signal(signal.SIGTERM, on)
    signal.signal(signal.SIGINT, on)
mark.write_text("ready")
while True:
    time.sleep(0.05)
"""


def env_for(scenario: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FOOTPRINT_", "MLFLOW_")) and k != SCENARIO_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "exporter"), str(REPO)])
    if scenario is not None:
        env.update(fake_env(scenario))
    env.update(extra)
    return env


def measure(args: Sequence[str], command: Sequence[str], env: dict[str, str],
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "footprint", "measure", *args, "--", *command],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def gpu_child(tmp_path: Path, sm: int, code: int, burn: float) -> tuple[Path, list[str], dict[str, str]]:
    """A 300 W GPU on the fake's monotonic clock and a CHILD command for it: (scenario, command, env)."""
    scenario = tmp_path / "scenario"
    epoch = time.monotonic()
    Scenario(gpus=[FakeGpu(power=[(0.0, 300.0)])], time=None, epoch=epoch).write(scenario)
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    command = [sys.executable, str(child), str(sm), str(code), str(burn)]
    return scenario, command, env_for(scenario, CHILD_FAKE_EPOCH=repr(epoch))


def test_the_runs_gpu_energy_is_its_share_of_the_counter_delta_and_the_rest_is_apart(tmp_path: Path) -> None:
    _, command, env = gpu_child(tmp_path, 40, 3, 0.3)
    out = tmp_path / "runs.csv"
    # One attribution window (the whole run): NVML's process sample at its end (40 % SM) holds for all of it.
    proc = measure([*FAST, "--attribution.interval=1h", f"--output={out}", "--name=gpu-run", "--tag=model=bert",
                    "--pue=1.5"], command, env)
    assert proc.returncode == 3, proc.stderr
    (row,) = runlog.read_rows(out)
    gpu = row["devices"]["gpu/0"]
    # The fake's counter is the exact integral of 300 W; the run saw its delta from the first sample to the last.
    assert gpu["source"] == "nvml" and abs(gpu["joules"] - 300.0 * row["duration_seconds"]) <= 300.0 * 0.05
    assert gpu["run_joules"] == pytest.approx(0.4 * gpu["joules"], rel=1e-9)
    assert row["gpu_joules"] == pytest.approx(0.4 * gpu["joules"], rel=1e-9)
    # CPU by the tree's CPU time: the child burnt 0.3 s of it, so the run has some and not all.
    (cpu,) = [d for name, d in row["devices"].items() if name.startswith("cpu/")]
    assert 0 < row["cpu_joules"] < cpu["joules"]
    assert row["cpu_joules"] == pytest.approx(cpu["run_joules"])
    # Rest of machine apart, never folded in: run + rest == machine, joules and grams.
    assert row["energy_joules"] == pytest.approx(row["gpu_joules"] + row["cpu_joules"] + row["dram_joules"])
    assert row["energy_joules"] + row["rest_of_machine_energy_joules"] == pytest.approx(row["machine_energy_joules"])
    assert row["rest_of_machine_energy_joules"] >= 0.6 * gpu["joules"]
    assert row["emissions_grams"] + row["rest_of_machine_emissions_grams"] == pytest.approx(
        row["machine_emissions_grams"])
    # Grams = joules x PUE x intensity (the static world figure by default), interval by interval.
    assert row["intensity_providers"] == "static" and row["intensity_changed"] is False
    assert row["intensity_min_grams_per_kwh"] == row["intensity_max_grams_per_kwh"] == 475.0  # IEA 2019 world
    assert row["emissions_grams"] == pytest.approx(row["energy_joules"] * 1.5 * 475.0 / 3.6e6)
    assert row["facility_energy_joules"] == pytest.approx(1.5 * row["energy_joules"])
    assert (row["run_id"], row["tags"], row["exit_code"], row["source"]) == ("gpu-run", {"model": "bert"}, 3,
                                                                           "in-process")
    assert row["command"].endswith("child.py 40 3 0.3")
    assert "rest of machine" in proc.stderr and "gpu 0 (nvml)" in proc.stderr and "EPA" in proc.stderr


def test_runs_append_to_a_json_lines_file_and_read_back(tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    for code in (0, 5):
        proc = measure([*FAST, "--no-meter.nvml", f"--output={out}"],
                       [sys.executable, "-c", f"import sys; sys.exit({code})"], env_for())
        assert proc.returncode == code, proc.stderr
    rows = runlog.read_rows(out)
    assert [r["exit_code"] for r in rows] == [0, 5]
    assert all(list(r) == list(runlog.COLUMNS) for r in rows)
    assert all(r["energy_joules"] + r["rest_of_machine_energy_joules"] == pytest.approx(r["machine_energy_joules"])
               for r in rows)


@pytest.mark.parametrize(("sig", "mode", "code"), [
    (signal.SIGTERM, "handle", 40 + signal.SIGTERM % 10),
    (signal.SIGINT, "handle", 40 + signal.SIGINT % 10),
    (signal.SIGTERM, "default", 128 + signal.SIGTERM),
])
def test_signals_reach_the_command_and_its_exit_status_is_ours(tmp_path: Path, sig: int, mode: str,
                                                               code: int) -> None:
    mark = tmp_path / "child.mark"
    script = tmp_path / "waiter.py"
    script.write_text(WAITER)
    out = tmp_path / "runs.csv"
    cmd = [sys.executable, "-m", "footprint", "measure", *FAST, "--no-meter.nvml", f"--output={out}", "--",
           sys.executable, str(script), str(mark), mode]
    proc = subprocess.Popen(cmd, env=env_for(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not mark.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    if mode == "handle":
        assert mark.with_suffix(".got").read_text() == signal.Signals(sig).name
    (row,) = runlog.read_rows(out)
    assert row["exit_code"] == code  # the run is still measured and written


def test_an_intensity_that_changes_during_the_run_is_said_so(tmp_path: Path) -> None:
    token = tmp_path / "em-token"
    token.write_text("em-token-measure\n")
    go = tmp_path / "go"
    out = tmp_path / "runs.jsonl"
    em = ElectricityMapsFake("em-token-measure")
    em.state.intensity = 200
    with serving(em):
        cmd = [sys.executable, "-m", "footprint", "measure", *FAST, "--no-meter.nvml", f"--output={out}",
               "--grid.provider=electricitymaps", f"--grid.electricitymaps.url={em.url}/v3",
               f"--grid.electricitymaps.token-file={token}", "--grid.zone=DE", "--grid.refresh-interval=1s", "--",
               sys.executable, "-c", f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.02)"]
        proc = subprocess.Popen(cmd, env=env_for(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
        try:
            deadline = time.monotonic() + 30
            # 200 is charged for a refresh interval at least: measure's own fetch before the baseline, the
            # feed thread's first at once, then one a second later (its answer may already be the new value).
            while em.count("/v3/carbon-intensity/latest") < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            em.state.intensity = 500  # the grid changes while the command runs
            seen = em.count("/v3/carbon-intensity/latest")
            while em.count("/v3/carbon-intensity/latest") < seen + 2 and time.monotonic() < deadline:
                time.sleep(0.02)  # the next fetch after the change has been answered (and a sample taken)
            go.write_text("")
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    (row,) = runlog.read_rows(out)
    assert row["intensity_changed"] is True and row["intensity_providers"] == "electricitymaps"
    assert (row["intensity_min_grams_per_kwh"], row["intensity_max_grams_per_kwh"]) == (200.0, 500.0)
    assert 200.0 < row["intensity_grams_per_kwh"] < 500.0
    assert "changed during the run (200-500 gCO2e/kWh)" in err


def test_bad_options_exit_2_with_one_line_naming_them(tmp_path: Path) -> None:
    for args, key in ([["--pue=0.5"], "pue"], [["--tag=novalue"], "tag"], [["--from=ftp://x"], "from"]):
        proc = measure(args, [sys.executable, "-c", "pass"], env_for())
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith(f"footprint-exporter: {key}:"), proc.stderr
    proc = subprocess.run([sys.executable, "-m", "footprint", "measure", "--pue=1.2"], env=env_for(),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "measure: no command" in proc.stderr
    missing = measure([*FAST, "--no-meter.nvml"], [str(tmp_path / "no-such-command")], env_for())
    assert missing.returncode == 127 and "cannot run" in missing.stderr


def test_from_a_running_exporter_gives_its_totals_within_one_sample(tmp_path: Path) -> None:
    scenario, command, env = gpu_child(tmp_path, 50, 0, 0.5)
    out = tmp_path / "runs.csv"
    interval = 0.05
    with start_exporter(["--sample.interval=50ms", "--no-meter.rapl"], env=fake_env(scenario)) as exp:
        proc = measure(["--no-meter.rapl", f"--from={exp.url}", f"--output={out}"], command, env)
    assert proc.returncode == 0, proc.stderr
    (row,) = runlog.read_rows(out)
    assert (row["source"], row["source_url"], row["samples"]) == ("exporter", exp.url, 2)
    gpu = row["devices"]["gpu/0"]
    # Constant 300 W: the exporter's counters are as of its last sample at each end, so the run's GPU
    # energy is 300 W x its duration give or take one sample interval at each end (and the scrape).
    assert abs(gpu["joules"] - 300.0 * row["duration_seconds"]) <= 300.0 * (2 * interval + 0.05)
    # The exporter's whole node; the run's share by its process (50 % SM) and CPU time, the rest apart.
    assert gpu["run_joules"] == pytest.approx(0.5 * gpu["joules"], rel=1e-9)
    assert row["energy_joules"] + row["rest_of_machine_energy_joules"] == pytest.approx(row["machine_energy_joules"])
    assert row["machine_energy_joules"] == pytest.approx(sum(d["joules"] for d in row["devices"].values()))
    assert row["intensity_providers"] == "static"


def test_mlflow_gets_the_metrics_and_tags_on_the_run(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    out = tmp_path / "runs.csv"
    # MLflow 3 keeps its file store only on request; a sqlite store would need SQLAlchemy besides.
    env = env_for(MLFLOW_TRACKING_URI=f"file:{store}", MLFLOW_ALLOW_FILE_STORE="true")
    proc = measure([*FAST, "--no-meter.nvml", "--mlflow", "--name=ml-1", "--tag=team=nlp", f"--output={out}"],
                   [sys.executable, "-c", "sum(range(3_000_000))"], env)
    assert proc.returncode == 0, proc.stderr
    (row,) = runlog.read_rows(out)
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        client = mlflow.MlflowClient(tracking_uri=f"file:{store}")
        (run,) = client.search_runs(experiment_ids=["0"])
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    assert run.info.run_name == "ml-1"
    assert run.data.metrics["footprint_energy_joules"] == pytest.approx(row["energy_joules"])
    assert run.data.metrics["footprint_emissions_grams"] == pytest.approx(row["emissions_grams"])
    assert run.data.metrics["footprint_rest_of_machine_energy_joules"] == pytest.approx(
        row["rest_of_machine_energy_joules"])
    assert run.data.tags["team"] == "nlp" and run.data.tags["footprint.run_id"] == "ml-1"
    assert run.data.tags["footprint.intensity_providers"] == "static"


def test_mlflow_logs_onto_the_run_that_mlflow_run_id_names_and_leaves_it_running(tmp_path: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    store = f"file:{tmp_path / 'mlruns'}"
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        client = mlflow.MlflowClient(tracking_uri=store)
        parent = client.create_run("0", run_name="train-7")  # as `mlflow run` starts one for its command
        env = env_for(MLFLOW_TRACKING_URI=store, MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_RUN_ID=parent.info.run_id)
        proc = measure([*FAST, "--no-meter.nvml", "--tag=step=eval"], [sys.executable, "-c", "pass"], env)
        assert proc.returncode == 0, proc.stderr
        run = client.get_run(parent.info.run_id)
        assert len(client.search_runs(experiment_ids=["0"])) == 1
    finally:
        del os.environ["MLFLOW_ALLOW_FILE_STORE"]
    assert (run.info.run_name, run.info.status) == ("train-7", "RUNNING")
    assert run.data.metrics["footprint_energy_joules"] > 0 and run.data.tags["step"] == "eval"


TRACKED = """
import json, sys
import footprint

with footprint.track("script-1", tags={"step": "eval"}, args=["--sample.interval=50ms", "--no-meter.nvml",
                     "--grid.zone=DE"], output=sys.argv[1]) as run:
    assert run.energy_joules == 0.0
    sum(i * i for i in range(2_000_000))
print(json.dumps({"energy": run.energy_joules, "cpu": run.cpu_joules, "rest": run.rest_of_machine_energy_joules,
                  "machine": run.machine_energy_joules, "grams": run.emissions_grams,
                  "intensity": run.intensity_grams_per_kwh, "row": run.row()}))
"""


def test_the_tracking_api_in_a_plain_script(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(TRACKED)
    out = tmp_path / "runs.jsonl"
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env_for(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cpu"] > 0 and got["energy"] >= got["cpu"]
    assert got["energy"] + got["rest"] == pytest.approx(got["machine"])
    static_de = got["row"]["intensity_min_grams_per_kwh"]
    assert static_de == got["row"]["intensity_max_grams_per_kwh"] != 475.0  # the zone's figure, not the world's
    assert got["grams"] == pytest.approx(got["energy"] * static_de / 3.6e6)
    (row,) = runlog.read_rows(out)
    assert row == got["row"] and row["run_id"] == "script-1" and row["exit_code"] is None
    assert row["tags"] == {"step": "eval"} and row["intensity_providers"] == "static"
