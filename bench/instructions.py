"""Benchmark: instructions (callgrind) per sample, per attribution pass and per render.

CPU time on a shared 2-core machine moves by tens of percent from run to run; instruction counts do
not (within a fraction of a percent), so every optimisation is also judged by them. The exporter is
built in-process by bench/instr_probe.py under `valgrind --tool=callgrind --instr-atstart=no`; only
the marked sections are counted (bench/callgrind_marks.c), the fake NVML library included (it stands
in for the driver's own work), the fakes of the pods (API server, kubelet, cgroup advancer) running in
this process, outside valgrind:
- sample: the sampler's `sample()` with 8 fake GPUs + RAPL (the exporter at 1 Hz does this once a second),
  each counted on its own: the median is the steady sample; the mean and the most also hold the sample
  that reads the GPUs' utilisation (every attribution interval, 5 s by default), which one window of a
  few seconds holds or not, so the median is what compares from run to run;
- sample with 200 pods x 3 containers attributed every sample (`--attribution.interval=0`): the
  attribution pass is the difference from the plain sample;
- render: the exposition rendered after a sample (every scrape pays it) at about 1,000 and 10,000
  series (containers calibrated by two native runs of the probe) and at the 200 pods' size.

    .venv/bin/python bench/instructions.py [--quick]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import pods as k8s

MARKS_SOURCE = common.BENCH / "callgrind_marks.c"
PROBE = common.BENCH / "instr_probe.py"
PODS = 200
TARGETS = (1000, 10000)
CALIBRATION = (60, 300)  # containers


def marks_library() -> Path:
    """bench/callgrind_marks.c as a shared library (rebuilt when the source is newer)."""
    out = common.CACHE / "callgrind_marks.so"
    if not out.exists() or out.stat().st_mtime < MARKS_SOURCE.stat().st_mtime:
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(MARKS_SOURCE)], check=True)
    return out


def probe(fx: common.Fixture, flags: list[str], samples: int, renders: int, valgrind: bool) -> dict[str, object]:
    """One probe run; under valgrind, the instructions of each section (per call)."""
    cmd = [sys.executable, str(PROBE), str(marks_library()), str(samples), str(renders), "--",
           *common.exporter_cmd(common.free_port(), fx, "--sample.interval=0.1s", *flags)[3:]]
    with tempfile.TemporaryDirectory(prefix="footprint-callgrind-") as tmp:
        if valgrind:
            cmd = [shutil.which("valgrind") or "valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={tmp}/cg.out", *cmd]
        env = common.exporter_env(fx, {"PYTHONDONTWRITEBYTECODE": "1"})
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, cwd=common.REPO)
        if proc.returncode != 0:
            raise RuntimeError(f"instr_probe failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
        if valgrind:
            counts = sections(Path(tmp))
            each = sorted(v for k, v in counts.items() if k.startswith("sample-"))
            if len(each) != samples:
                raise RuntimeError(f"instr_probe: {len(each)} sample dumps, not {samples}")
            result["instructions_per_sample"] = round(statistics.median(each))
            result["instructions_per_sample_mean"] = round(statistics.mean(each))
            result["instructions_per_sample_max"] = each[-1]
            each_render = [v for k, v in counts.items() if k.startswith("render-")]
            if len(each_render) != renders:
                raise RuntimeError(f"instr_probe: {len(each_render)} render dumps, not {renders}")
            result["instructions_per_render"] = round(statistics.mean(each_render))
    return result


def sections(folder: Path) -> dict[str, int]:
    """Instructions (Ir) of each labelled dump that callgrind wrote in `folder`."""
    found = {}
    for path in folder.iterdir():
        text = path.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if label and total:
            found[label.group(1)] = int(total.group(1))
    return found


def run(quick: bool) -> dict[str, object]:
    samples, renders = (5, 3) if quick else (20, 10)
    figures: dict[str, object] = {"samples_per_section": samples, "renders_per_section": renders,
                                  "valgrind": subprocess.run(["valgrind", "--version"], capture_output=True,
                                                             text=True).stdout.strip()}
    with common.fixture() as fx:
        common.log("instructions: sample, 8 GPUs + RAPL")
        plain = probe(fx, [], samples, renders, valgrind=True)
        figures["sample"] = plain
        common.log(f"instructions: sample with {PODS} pods x 3 containers attributed every sample")
        with k8s.pods(PODS * k8s.CONTAINERS_PER_POD) as p:
            p.start_advancing(0.1)
            pods = probe(fx, [*p.flags, "--attribution.interval=0"], samples, renders, valgrind=True)
        pods["attribution_pass_instructions"] = int(pods["instructions_per_sample"]) - int(
            plain["instructions_per_sample"])
        figures["pods"] = {"pods": PODS, "containers": PODS * k8s.CONTAINERS_PER_POD, **pods}
        common.log("instructions: calibrating series per container (two native runs)")
        seen = {}
        for n in CALIBRATION:
            with k8s.pods(n) as p:
                p.start_advancing(0.1)
                seen[n] = int(probe(fx, [*p.flags, "--attribution.interval=0"], 1, 1, valgrind=False)["series"])
        low, high = CALIBRATION
        per_container = (seen[high] - seen[low]) / (high - low)
        base = seen[low] - low * per_container
        renders_at: dict[str, object] = {}
        for target in TARGETS:
            containers = max(0, round((target - base) / per_container))
            common.log(f"instructions: render at ~{target} series ({containers} containers)")
            with k8s.pods(containers) as p:
                p.start_advancing(0.1)
                got = probe(fx, [*p.flags, "--attribution.interval=0"], 1, renders, valgrind=True)
            got["instructions_per_series"] = round(int(got["instructions_per_render"]) / int(got["series"]))
            renders_at[str(target)] = {"containers": containers, **got}
        figures["render"] = renders_at
    return figures


def main() -> None:
    common.print_figures(__doc__, run)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
