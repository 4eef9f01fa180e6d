"""Real powercap (RAPL) sysfs layouts in a temp dir, with counters the test moves by hand."""

from __future__ import annotations

from pathlib import Path

POWERCAP = Path("class") / "powercap"


class RaplTree:
    """<root>/class/powercap/intel-rapl:N (package-N) with core (:0) and dram (:1) sub-zones.

    `advance(zone, microjoules)` moves a zone's counter like the hardware would, wrapping at
    `max_energy_range_uj`, and keeps the true (unwrapped) total so tests can compare.
    """

    def __init__(self, root: Path, packages: int = 2, dram: bool = True, psys: bool = False,
                 max_range_uj: int = 262143328850) -> None:
        self.root = root
        self.max_range_uj = max_range_uj
        self.true_uj: dict[str, int] = {}
        base = root / POWERCAP
        for n in range(packages):
            self._zone(base / f"intel-rapl:{n}", f"package-{n}", start=1_000_000 * (n + 1))
            self._zone(base / f"intel-rapl:{n}:0", "core", start=500_000)
            if dram:
                self._zone(base / f"intel-rapl:{n}:1", "dram", start=200_000)
        if psys:
            self._zone(base / f"intel-rapl:{packages}", "psys", start=0)

    def _zone(self, path: Path, name: str, start: int) -> None:
        path.mkdir(parents=True)
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.max_range_uj}\n")
        (path / "energy_uj").write_text(f"{start}\n")
        self.true_uj[path.name] = 0

    def path(self, zone: str) -> Path:
        return self.root / POWERCAP / zone

    def counter(self, zone: str) -> int:
        return int((self.path(zone) / "energy_uj").read_text())

    def set_counter(self, zone: str, uj: int) -> None:
        (self.path(zone) / "energy_uj").write_text(f"{uj}\n")

    def advance(self, zone: str, uj: int) -> None:
        self.true_uj[zone] += uj
        self.set_counter(zone, (self.counter(zone) + uj) % self.max_range_uj)
