"""One sample's own CPU, hot and cold, split by part: what a 1 Hz sample pays for touching memory.

    .venv/bin/python bench/cold_sample.py [--tree /tmp/before/exporter ...] [--rounds 2] [--samples 10] [--whole]

Each tree (default: this checkout's package) runs in its own process on the bench's fixtures (8 fake
GPUs + RAPL, as bench/overhead.py), built in-process like bench/instr_probe.py (nothing started). After
a warm-up it times `sampler.sample()` with the thread's CPU clock 200 times back to back (hot) and then
SAMPLES times one second apart (cold, as the running exporter samples), and each part of the cold
samples: every meter's read, the steady read that stands in for them (all of the meters' reads in one C
call) and the steady charge (judging and charging in one more) where the tree has them, judging and
charging step by step, the grid's intensity, and the after-sample hook (live
page, exposition, checkpoint), by wrapping those calls (the wrappers' own cost is in the totals, not in
the parts). Trees alternate over the rounds. Prints a table for bench/README.md; writes nothing.

The grid's threads are started, as in the exporter, so a sample reads the fetched slot (unstarted, the
static table's fallback answers, which is not what a running exporter with a fresh provider does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import common

CHILD = "--child"


def child(samples: int, whole: bool, flags: list[str]) -> None:
    from footprint import config
    from footprint.app import Exporter

    exporter = Exporter(config.load(flags, env={}))
    exporter.grid.start()
    while not exporter.grid.settled():
        time.sleep(0.05)
    sampler = exporter.sampler
    spent: dict[str, int] = {}

    def timed(owner: Any, attribute: str, part: str) -> None:
        call: Callable[..., Any] = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time_ns()
            try:
                return call(*args, **kwargs)
            finally:
                spent[part] = spent.get(part, 0) + time.thread_time_ns() - started

        setattr(owner, attribute, wrapper)

    for meter in [] if whole else exporter.meters:
        timed(meter, "read", f"{meter.name} read")
    for attribute, part in (("_judge", "judge"), ("_charge", "charge"), ("on_sample", "after-sample hook")):
        if not whole:
            timed(sampler, attribute, part)
    from footprint import sampler as sampling

    for module, attribute, part in (("_fastread", "read_steady", "steady read"),
                                    ("_fastledger", "charge_steady", "steady charge")):
        c_module = getattr(sampling, module, None)
        if c_module is not None and hasattr(c_module, attribute) and not whole:  # an older tree may lack one
            timed(c_module, attribute, part)
    if not whole:
        timed(sampler.grid, "accounting_intensity", "grid intensity")
        timed(exporter.checkpoint, "sampled", "hook: checkpoint")  # the hook's parts (in its figure too)
        timed(exporter.live, "sampled", "hook: live page")
    for _ in range(20):
        sampler.sample()
        time.sleep(0.05)
    hot = []
    for _ in range(200):
        started = time.thread_time_ns()
        sampler.sample()
        hot.append(time.thread_time_ns() - started)
    spent.clear()
    cold = []
    for _ in range(samples):
        time.sleep(1.0)
        started = time.thread_time_ns()
        sampler.sample()
        cold.append(time.thread_time_ns() - started)
    exporter.grid.stop()
    for meter in exporter.meters:
        meter.close()
    print(json.dumps({"hot_us": statistics.median(hot) / 1e3, "cold_us": statistics.median(cold) / 1e3,
                      "parts_us": {k: v / samples / 1e3 for k, v in spent.items()},
                      "c_reader": "footprint.meters._fastread" in sys.modules}))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        child(int(sys.argv[2]), sys.argv[3] == "whole", sys.argv[4:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tree", action="append", help="a package folder (holding footprint/); repeatable")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--whole", action="store_true", help="time whole samples only: no part is wrapped (the "
                        "wrappers' clock reads are system calls that cost a cold sample more than they measure)")
    args = parser.parse_args()
    trees = args.tree or [str(common.EXPORTER_DIR)]
    results: dict[str, list[dict[str, Any]]] = {tree: [] for tree in trees}
    with common.fixture() as fx:
        flags = common.exporter_cmd(common.free_port(), fx)[3:]
        for k in range(args.rounds):
            for tree in trees if k % 2 == 0 else trees[::-1]:
                env = common.exporter_env(fx, {"PYTHONPATH": tree})
                out = subprocess.run([sys.executable, __file__, CHILD, str(args.samples),
                                      "whole" if args.whole else "parts", *flags], env=env,
                                     capture_output=True, text=True, timeout=120 + 2 * args.samples, check=False)
                if out.returncode != 0:
                    raise RuntimeError(f"{tree}: {out.stderr[-3000:]}")
                results[tree].append(json.loads(out.stdout.strip().splitlines()[-1]))
                common.log(f"round {k + 1}: {tree} cold {results[tree][-1]['cold_us']:.0f} us")
    parts = sorted({p for runs in results.values() for run in runs for p in run["parts_us"]})
    print("| " + " | ".join(["tree", "C reader", "hot us (median)", "cold us (median of rounds)", *parts]) + " |")
    print("|" + "---|" * (4 + len(parts)))
    for tree, runs in results.items():
        cells = [f"{statistics.median(run['parts_us'].get(p, 0.0) for run in runs):.0f}" for p in parts]
        rounds = ", ".join(f"{r['cold_us']:.0f}" for r in runs)
        print("| " + " | ".join([os.path.relpath(tree, common.BENCH.parent), "yes" if runs[0]["c_reader"] else "no",
                                 f"{statistics.median(r['hot_us'] for r in runs):.0f}",
                                 f"{statistics.median(r['cold_us'] for r in runs):.0f} ({rounds})", *cells]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
