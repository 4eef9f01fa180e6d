"""footprint-exporter [run|doctor|measure|report|version] [--key=value ...]

Configuration errors exit 2 with one line naming the key. Runtime faults never exit.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
from collections.abc import Sequence

from footprint import __version__, config, logs
from footprint.config import ConfigError, Settings

USAGE = """usage: footprint-exporter [run|doctor|measure|report|version] [--key=value ...]

  run      serve /metrics (default)
  doctor   say what is measured, what is not and why, and where each setting came from
  measure  run a command and report its own energy and CO2e: measure [options] -- CMD (docs/measure.md)
  report   a period's figures from Prometheus, by namespace, workload, node or pod (docs/report.md)
  version  print the version

Every setting is a flag (--grid.zone=DE), an environment variable (FOOTPRINT_GRID_ZONE=DE) or a key in
the --config YAML file; true/false settings also take --no-<key>. All settings:
"""


def _help() -> str:
    rows = [f"  --{key:<36} {o.help}" for key, (_, o) in config.options().items()]
    return USAGE + "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = "run"
    if args and not args[0].startswith("-"):
        command = args.pop(0)
    if command == "measure":
        from footprint.tracking.measure import main as measure

        return measure(args)
    if command == "report":
        from footprint.tracking.report import main as report

        return report(args)
    if command in ("version",) or "--version" in args:
        print(f"footprint-exporter {__version__}")
        return 0
    if "--help" in args or "-h" in args or command == "help":
        print(_help(), end="")
        return 0
    if command not in ("run", "doctor"):
        print(f"footprint-exporter: unknown command {command!r} (run, doctor, measure, report, version)",
              file=sys.stderr)
        return 2
    try:
        settings = config.load(args)
    except ConfigError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    if command == "doctor":
        # Doctor prints its own findings; only warnings and errors (or debug, when asked) go to the log.
        logs.setup(settings.log_level if settings.log_level in ("debug", "error") else "warn", settings.log_format)
        from footprint.doctor import doctor

        return doctor(_node_region(settings))
    logs.setup(settings.log_level, settings.log_format)
    return run(_node_region(settings))


def _node_region(settings: Settings) -> Settings:
    """grid.region from this node's Node object, when kubernetes is on and no zone or region is set."""
    if not settings.kubernetes_enabled:
        return settings
    from footprint.attribution.node import with_node_region

    return with_node_region(settings)


def run(settings: Settings) -> int:
    from footprint.app import Exporter

    try:
        exporter = Exporter(settings)
    except ConfigError as exc:
        print(f"footprint-exporter: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the listen address is taken
        print(f"footprint-exporter: web.listen-address: cannot listen: {exc.strerror or exc}", file=sys.stderr)
        return 2

    def _stop(signum: int, _frame: object) -> None:
        logging.getLogger("footprint").info("stopping", extra={"signal": signal.Signals(signum).name})
        exporter.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    exporter.start()
    keep_start_up_out_of_collections()
    exporter.wait()
    return 0


YOUNG_COLLECTION_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def keep_start_up_out_of_collections() -> None:
    """What start-up made (modules, classes, meters, the restored ledger) lives as long as the process:
    frozen, no later cyclic collection traverses it again (gc.freeze, as long-running servers do); and
    young collections come every 20,000 container allocations, not every 700 (about every 10 samples,
    where each traversed the same few hundred live objects: refcounting frees nearly everything a sample
    makes, and cycles are rare). Here, not in Exporter.start(): a test process builds many exporters,
    and frozen garbage is never freed."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
