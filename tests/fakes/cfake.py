"""The Python half both C fakes (nvml/fake_nvml.c, amdsmi/fake_amdsmi.c) share with fake_common.h.

Building the library once per source version, writing a scenario file the fake can re-read at any
moment, and the ground truth of its energy counter: the exact integral of a step power trace since
the last driver reload, in the same integer arithmetic as since_load_nj() in fake_common.h (times
rounded to whole µs, power to whole mW, energy in nJ).

It imitates nothing itself: the header of each C fake says which real library behaviour it copies
(counter units, restart at driver reload, error codes) and where that was learned.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

HEADER = Path(__file__).with_name("fake_common.h")


def us(seconds: float) -> int:
    return round(seconds * 1_000_000)


def timeline_lines(time: float | None, epoch: float, reloads: Sequence[float]) -> list[str]:
    """The clock (fixed at `time` s, or CLOCK_MONOTONIC - `epoch` when time is None) and the reloads."""
    clock = f"clock manual {us(time)}" if time is not None else f"clock monotonic {round(epoch * 1e9)}"
    return [clock, *(f"reload {us(t)}" for t in reloads)]


def trace_lines(power: Sequence[tuple[float, float]], lost: Sequence[tuple[float, float]]) -> list[str]:
    """A GPU's power steps ((from s, W), ascending) and lost windows ([from, until) s)."""
    return [*(f"power {us(t)} {round(w * 1000)}" for t, w in power), *(f"lost {us(a)} {us(b)}" for a, b in lost)]


def watts_at(power: Sequence[tuple[float, float]], t: float) -> float:
    """The step trace's power at `t`: the last step started by then (the first one before it)."""
    watts = power[0][1]
    for start, w in power:
        if start <= t:
            watts = w
    return watts


def since_load_nj(power: Sequence[tuple[float, float]], reloads: Sequence[float], t: float) -> tuple[int, bool]:
    """Energy (nJ) of the trace since the last reload at or before `t`, and whether there was one."""
    now = max(us(t), 0)
    past = [us(r) for r in reloads if 0 <= us(r) <= now]  # the C fake ignores reloads at negative times
    start = max(past, default=0)
    steps = [(us(s), round(w * 1000)) for s, w in power]
    nj = 0
    for k, (lo, mw) in enumerate(steps):
        lo = start if k == 0 else max(lo, start)
        hi = min(steps[k + 1][0] if k + 1 < len(steps) else now, now)
        if hi > lo:
            nj += (hi - lo) * mw
    return nj, bool(past)


def write_atomic(path: Path, text: str) -> None:
    """Write through a new inode, so a fake never reads half a file and always sees the change."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_library(what: str, cache: Path, main: Path, library: str, soname: str,
                  depends: Sequence[Path] = (), generated: str = "") -> Path:
    """Compile `main` (plus `generated` C text) into <cache>/<digest>/<library>; return <cache>/<digest>.

    The digest covers `main`, `depends` (files `main` includes), fake_common.h and `generated`, so a
    change to any of them builds anew; parallel builders never see half a library.
    """
    key = b"".join(p.read_bytes() for p in (main, *depends, HEADER)) + generated.encode()
    root = cache / hashlib.sha256(key).hexdigest()[:16]
    target = root / library
    if target.exists():
        return root
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError(f"gcc is needed to build the fake {what} (apt-get install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    sources = [str(main)]
    if generated:
        write_atomic(root / "generated.c", generated)
        sources.append(str(root / "generated.c"))
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so")
    os.close(fd)
    cmd = [gcc, "-std=gnu11", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", f"-Wl,-soname,{soname}",
           "-o", tmp, *sources, "-lpthread"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        raise RuntimeError(f"building the fake {what} failed:\n{result.stderr}")
    os.replace(tmp, target)
    return root
