"""`footprint-exporter doctor`: what is measured, what is not and why, and where each setting came from.

Exit status: 0 when at least one meter works, 1 when nothing at all can be measured, 2 on bad config.
Secrets are never read or printed here.
"""

from __future__ import annotations

import sys
from typing import TextIO

from footprint import __version__, config
from footprint.accounting.embodied import EmbodiedModel
from footprint.app import build_attributor
from footprint.config import ConfigError, Settings
from footprint.meters.base import MeterError
from footprint.meters.registry import detect
from footprint.state.checkpoint import describe_last_gap


def _reader() -> str:
    try:
        from footprint.meters import _fastread  # noqa: F401
    except ImportError:
        return ("pure Python (the optional C reader was not built at install: no C compiler or Python headers); "
                "the same readings, at more CPU per sample")
    return "the C reader (every GPU's and every RAPL zone's counter, and their readings, in one call a sample)"


def _ledger() -> str:
    try:
        from footprint.accounting import _fastledger  # noqa: F401
    except ImportError:
        return "pure Python (the optional C twins were not built at install); the same numbers, at more CPU per sample"
    return ("the C twins (a sample's steady counters judged, its power and additions made, and each counter's "
            "exposition lines written, in one call each)")


def doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    def say(line: str = "") -> None:
        print(line, file=out)

    say(f"footprint-exporter {__version__}")
    say()
    say("Meters")
    detection = detect(settings)
    working = 0
    embodied = EmbodiedModel(settings)
    for meter in detection.meters:
        for line in meter.doctor_lines():
            say(f"  {line}")
        try:
            readings = meter.read()
        except MeterError as exc:
            say(f"  {meter.name}: DOWN: {exc}")
            continue
        working += 1
        for r in readings:
            model = r.info.get("model", "")
            figure = embodied.figure(r.component, model) if r.in_node_total else None
            emb = (
                f"embodied {figure.kgco2e:g} kgCO2e ({figure.source})"
                if figure
                else "embodied: no figure known, accrues nothing"
            )
            kind = "hardware counter" if r.hardware_counter else "integrated power"
            say(f"  {r.component} {r.device}: source={r.source} ({kind}){', ' + model if model else ''}; {emb}")
    for note in detection.notes:
        say(f"  {note}")
    say(f"  counter reads: {_reader()}")
    say(f"  ledger arithmetic: {_ledger()}")
    server = embodied.figure("server", "")
    say(f"  server share: {f'{server.kgco2e:g} kgCO2e ({server.source})' if server else 'not configured'}")

    say()
    say("Grid")
    try:
        from footprint.grid.feed import GridFeed

        feed = GridFeed(settings)
        feed.refresh_due()  # one live fetch per provider (bounded by --grid.timeout): checks key, zone, network
        for line in feed.doctor_lines():
            say(f"  {line}")
        if settings.origin("grid.region").startswith("node "):  # attribution/node.py filled it in
            say(f"  zone from this node: region {settings.grid_region_label} ({settings.origin('grid.region')})"
                f" -> zone {feed.zone or 'none (region not in the static table)'}")
        i = feed.accounting_intensity()
        say(f"  intensity in use: {i.value:g} gCO2e/kWh ({i.signal}, {i.basis} basis, provider {i.provider},"
            f" zone {i.zone or 'world'})")
    except ConfigError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    say(f"  PUE: {settings.pue:g} ({settings.origin('pue')})")

    say()
    say("Restarts")
    for line in describe_last_gap(settings):
        say(f"  {line}")

    say()
    say("Attribution")
    try:
        attributor = build_attributor(settings, detection.meters)
    except ConfigError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    if attributor is None:
        say("  off (--kubernetes.enabled or --attribution.processes to attribute energy to workloads)")
    else:
        for line in attributor.doctor_lines():
            say(f"  {line}")
        attributor.close()

    say()
    say("Settings (value, source)")
    for key, value, origin in config.describe(settings):
        if origin != "default" or key in ("web.listen-address", "sample.interval", "grid.provider", "grid.zone"):
            say(f"  {key} = {value} ({origin})")
    say()
    if working == 0:
        say("Nothing can be measured on this machine with these settings.")
        return 1
    say(f"{working} meter(s) working.")
    return 0
