"""`footprint-exporter measure [options] -- CMD ARGS...`: run a command and report its own footprint.

The command runs as a child with our stdin/stdout/stderr; its exit status is ours (128 + N when a
signal N killed it, as a shell says). SIGTERM, SIGINT and SIGHUP are passed on to it; a SIGINT typed
at the terminal already reached it (same foreground process group), so that one is not sent twice.
The table goes to standard error, like time(1), so the command's standard output stays its own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from footprint import config, logs
from footprint.accounting.accountant import JOULES_PER_KWH
from footprint.config import ConfigError
from footprint.track import Run, Tracker
from footprint.tracking.runlog import RunFileError

USAGE = """usage: footprint-exporter measure [--name=RUN] [--tag=k=v ...] [--output=FILE] [--from=URL] [--mlflow]
                                  [exporter settings ...] -- CMD ARGS...
See docs/measure.md."""

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

# The table's comparisons, each with its source.
CAR_GRAMS_PER_KM = 400.0 / 1.609344  # US EPA, EPA-420-F-23-014 (2023): a typical passenger vehicle, 400 gCO2/mile
FLIGHT_GRAMS = 1984 * 453.59237  # Strubell et al. 2019, Table 1: air travel, 1 passenger, NY<->SF, 1,984 lbs CO2e
LED_WATTS = 10.0


@dataclass
class Options:
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    output: str | None = None
    source_url: str = ""
    mlflow: bool | None = None
    settings_args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)


def parse_args(argv: Sequence[str]) -> Options:
    """Our own options, the exporter's settings (left to config.load), and the command after `--`."""
    args = list(argv)
    if "--" not in args:
        raise ConfigError("measure: no command (put it after --: measure [options] -- CMD ARGS...)")
    split = args.index("--")
    ours, command = args[:split], args[split + 1 :]
    if not command:
        raise ConfigError("measure: no command after --")
    opts = Options(command=command)
    i = 0
    while i < len(ours):
        arg = ours[i]
        name, eq, value = arg.partition("=")
        if name in ("--mlflow", "--no-mlflow"):
            if eq:
                raise ConfigError(f"{name[2:]}: takes no value")
            opts.mlflow = name == "--mlflow"
        elif name in ("--name", "--tag", "--output", "--from"):
            if not eq:
                if i + 1 >= len(ours):
                    raise ConfigError(f"{name[2:]}: missing value")
                i += 1
                value = ours[i]
            if name == "--name":
                opts.name = value
            elif name == "--output":
                opts.output = value
            elif name == "--from":
                if not value.startswith(("http://", "https://")):
                    raise ConfigError(f"from: must be an exporter's http:// or https:// URL, not {value!r}")
                opts.source_url = value
            else:
                key, sep, tag = value.partition("=")
                if not sep or not key:
                    raise ConfigError(f"tag: {value!r} is not k=v")
                opts.tags[key] = tag
        else:
            opts.settings_args.append(arg)
        i += 1
    return opts


def _kwh(joules: float) -> str:
    kwh = joules / JOULES_PER_KWH
    return f"{kwh:.6f}" if kwh >= 0.01 or kwh == 0 else f"{kwh:.3e}"


def _g(grams: float) -> str:
    return f"{grams:.2f}" if grams >= 1 or grams == 0 else f"{grams:.3g}"


def equivalences(run: Run) -> list[str]:
    grams = run.emissions_grams
    return [
        f"{grams / CAR_GRAMS_PER_KM:.3g} km by an average passenger car (US EPA, EPA-420-F-23-014, 2023: "
        "400 gCO2/mile)",
        f"{100 * grams / FLIGHT_GRAMS:.3g} % of one passenger's New York-San Francisco round trip by air "
        "(Strubell et al. 2019, Table 1: 1,984 lbs CO2e)",
        f"{run.energy_joules / LED_WATTS / 3600:.3g} hours of a {LED_WATTS:g} W LED bulb "
        f"(the run's IT energy / {LED_WATTS:g} W)",
    ]


def render(run: Run) -> str:
    """The end-of-run table (docs/measure.md shows one)."""
    source = "in-process" if run.source == "in-process" else f"from {run.source_url}"
    lines = [f"footprint measure: {run.run_id} — exit {run.exit_code}, {run.duration_seconds:.1f} s, "
             f"{source} ({run.samples} samples)"]
    rows = [("energy (kWh)", "run", "rest of machine", "machine")]
    for device, d in run.devices.items():
        if not d.get("in_node_total", True):
            continue
        component, _, index = device.partition("/")
        rows.append((f"{component} {index} ({d['source']})", _kwh(d["run_joules"]),
                     _kwh(d["joules"] - d["run_joules"]), _kwh(d["joules"])))
    rows.append(("total (IT)", _kwh(run.energy_joules), _kwh(run.rest_of_machine_energy_joules),
                 _kwh(run.machine_energy_joules)))
    rows.append((f"facility (x PUE {run.pue:g})", _kwh(run.energy_joules * run.pue),
                 _kwh(run.rest_of_machine_energy_joules * run.pue), _kwh(run.machine_energy_joules * run.pue)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, 4)]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|")
    seen = run.intensity
    intensity = run.intensity_grams_per_kwh
    used = "no intensity" if intensity is None else f"{intensity:.1f} gCO2e/kWh"
    where = f"{', '.join(sorted(seen.providers))} {', '.join(sorted(seen.zones))}".strip()
    change = (f"changed during the run ({seen.low:g}-{seen.high:g} gCO2e/kWh)" if seen.changed
              else "unchanged during the run")
    lines.append(f"operational: {_g(run.emissions_grams)} gCO2e (rest of machine "
                 f"{_g(run.rest_of_machine_emissions_grams)} g) at {used} ({where}), {change}")
    lines.append(f"embodied (Scope 3): {_g(run.embodied_grams)} gCO2e, the run's share")
    if run.water_liters is not None:
        lines.append(f"water: {run.water_liters:.3f} L, the run's share")
    if run.cost is not None:
        lines.append(f"cost: {run.cost:.4f} {run.cost_currency}, the run's share")
    lines.append("equivalent to: " + "; ".join(equivalences(run)))
    return "\n".join(lines) + "\n"


def _foreground_is_ours() -> bool:
    """True when a terminal's Ctrl-C reaches our process group (and so the command) by itself."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: Sequence[str]) -> int:
    if any(a in ("--help", "-h") for a in argv[: argv.index("--") if "--" in argv else len(argv)]):
        print(USAGE)
        return 0
    try:
        opts = parse_args(argv)
        settings = config.load(opts.settings_args)
        logs.setup(settings.log_level if settings.origin("log.level") != "default" else "warn", settings.log_format)
        tracker = Tracker(opts.name, settings=settings, tags=opts.tags, source_url=opts.source_url,
                          output=opts.output, mlflow=opts.mlflow, reaped_by_us=True, command=opts.command)
    except (ConfigError, RunFileError) as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    child: subprocess.Popen[bytes] | None = None
    early: list[int] = []  # signals that came before the command started: it is not started then

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child is None:
            early.append(signum)
        elif not (signum == signal.SIGINT and _foreground_is_ours()):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            tracker.start()
        except OSError as exc:  # --from: the exporter does not answer
            print(f"footprint-exporter: from: cannot read {opts.source_url}/metrics: {exc}", file=sys.stderr)
            return 2
        try:
            if not early:
                child = subprocess.Popen(opts.command)
        except OSError as exc:
            print(f"footprint-exporter: measure: cannot run {opts.command[0]!r}: {exc.strerror or exc}",
                  file=sys.stderr)
            _abandon(tracker)
            return 126 if isinstance(exc, PermissionError) else 127
        if child is None:
            _abandon(tracker)
            return 128 + early[0]
        tracker.tree.root = child.pid
        rc = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    code = 128 - rc if rc < 0 else rc
    try:
        run = tracker.stop(code)
    except (OSError, RunFileError) as exc:  # the exporter went away (--from), or the file cannot take the row
        print(f"footprint-exporter: measure: the run's figures are lost: {exc}", file=sys.stderr)
        return code
    sys.stderr.write(render(run))
    return code


def _abandon(tracker: Tracker) -> None:
    """Nothing ran: stop measuring, write no row."""
    tracker.output, tracker.mlflow = None, False
    with contextlib.suppress(Exception):
        tracker.stop()
