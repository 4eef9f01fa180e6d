"""CodeCarbon's offline tracker as a stand-alone process, for bench/overhead.py (runs in CodeCarbon's venv).

Measures every second (`measure_power_secs=1`), writes nothing (`save_to_file=False`), logs warnings
only (its cheapest setting: at the default "info" it logs every measurement). Prints `ready` once
tracking has started, and on SIGTERM stops the tracker and prints one JSON line with what it measured,
so the benchmark can check that it really read the 8 GPUs and the RAPL packages.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from codecarbon import OfflineEmissionsTracker


def main() -> int:
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    tracker = OfflineEmissionsTracker(
        country_iso_code="FRA",
        measure_power_secs=1,
        save_to_file=False,
        log_level="warning",
    )
    tracker.start()
    print("ready", flush=True)
    done.wait()
    emissions_kg = tracker.stop()
    conf = tracker._conf  # what CodeCarbon detected; no public accessor
    print(json.dumps({
        "codecarbon_gpu_count": conf.get("gpu_count"),
        "codecarbon_gpu_model": conf.get("gpu_model"),
        "codecarbon_cpu_model": conf.get("cpu_model"),
        "gpu_energy_kwh": tracker._total_gpu_energy.kWh,
        "cpu_energy_kwh": tracker._total_cpu_energy.kWh,
        "emissions_kg": emissions_kg,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
