"""amdgpu's sysfs layout for AMD GPUs, in a temp dir: the hwmon fallback's fixture tree.

The real layout it imitates (Linux Documentation/gpu/amdgpu/thermal.rst, "hwmon interfaces"; the
ROCm k8s-device-plugin's internal/pkg/amdgpu walk of the same tree):
- /sys/class/drm/card<N> is a link into the PCI device (devices/pci0000:00/<address>/drm/card<N>),
  and card<N>/device links back to the PCI device directory, whose `vendor` is 0x1002 for AMD.
  /sys/class/drm also holds connectors (card0-DP-1) and render nodes (renderD128): not GPUs.
- <device>/hwmon/hwmon<M>/ has name "amdgpu", power1_average (average socket power, µW) on most
  ASICs, power1_input (instantaneous, µW) on newer ones, power1_cap (µW).
- On APUs (Ryzen with integrated graphics) the power files are the whole socket, CPU included
  ("On APUs this includes the CPU"), and amdgpu hides power1_cap* there (amdgpu_pm.c
  hwmon_attributes_visible: "not implemented yet for APUs other than GC 10.3.1 (vangogh) and 9.4.3"):
  `cap_uw=None` lays out such a device.
- MI300X compute partitions beyond the first are amdgpu_xcp platform devices with a card of their
  own but no hwmon; the PCI device has current_compute_partition / current_memory_partition.
"""

from __future__ import annotations

import os
from pathlib import Path


class AmdgpuTree:
    """`add_gpu()` lays out one PCI GPU; `set_power()` moves its power file like the driver would."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cards = 0
        self.power_files: dict[str, Path] = {}
        (root / "class" / "drm").mkdir(parents=True, exist_ok=True)

    def _card(self, device_dir: Path) -> None:
        card = f"card{self.cards}"
        self.cards += 1
        (device_dir / "drm" / card).mkdir(parents=True)
        os.symlink("../..", device_dir / "drm" / card / "device")
        os.symlink(os.path.relpath(device_dir / "drm" / card, self.root / "class" / "drm"),
                   self.root / "class" / "drm" / card)

    def add_gpu(self, address: str, *, microwatts: int = 300_000_000, cap_uw: int | None = 750_000_000,
                power_file: str = "power1_average", vendor: str = "0x1002", product: str = "AMD Instinct MI300X",
                partitions: int = 1, compute: str = "SPX", memory: str = "NPS1") -> Path:
        device = self.root / "devices" / "pci0000:00" / address
        hwmon = device / "hwmon" / f"hwmon{self.cards + 2}"
        hwmon.mkdir(parents=True)
        (device / "vendor").write_text(vendor + "\n")
        (device / "device").write_text("0x74a1\n")
        (device / "product_name").write_text(product + "\n")
        (device / "current_compute_partition").write_text(compute + "\n")
        (device / "current_memory_partition").write_text(memory + "\n")
        (hwmon / "name").write_text("amdgpu\n")
        (hwmon / power_file).write_text(f"{microwatts}\n")
        if cap_uw is not None:
            (hwmon / "power1_cap").write_text(f"{cap_uw}\n")
        self._card(device)
        os.symlink(f"card{self.cards - 1}", self.root / "class" / "drm" / f"card{self.cards - 1}-DP-1")
        for n in range(1, partitions):  # the other partitions: platform devices, no hwmon
            xcp = self.root / "devices" / "platform" / f"amdgpu_xcp_{self.cards + n}"
            xcp.mkdir(parents=True)
            self._card(xcp)
        self.power_files[address] = hwmon / power_file
        return hwmon / power_file

    def set_power(self, address: str, text: str) -> None:
        path = self.power_files[address]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
