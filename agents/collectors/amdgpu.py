"""AMD GPUs (Radeon cards and the Radeon iGPUs of Ryzen / Ryzen AI APUs) on Linux, from the
amdgpu driver's sysfs: no ROCm, amd-smi or root needed.

Found in /sys/class/drm/cardN/device with PCI vendor 0x1002 bound to amdgpu, each GPU is
reported with what the driver gives:
- util: gpu_busy_percent;
- memory: mem_info_vram_total / _used (the card's own VRAM, or an APU's BIOS carve-out) as
  mem_total / mem_used, and mem_info_gtt_total / _used (system RAM the GPU maps) as gtt_total /
  gtt_used, kept apart: GTT is part of the node's RAM, so adding it to "GPU memory" would count
  it twice in the cluster's sums and make a 16 GB card look like a 32 GB one (docs/agent.md);
- from the amdgpu hwmon: power1_average (or power1_input where only that exists, as on newer
  APUs) and power1_cap in µW, temp1_input (edge) in m°C, freq1_input (sclk) and freq2_input
  (mclk) in Hz, pwm1 (0-255) as a fan percentage;
- name: product_name where the board has one (server cards), else the PCI id.
A file that is absent or unreadable leaves its figure out, with why in `missing`; never a 0.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from ..collectors import Collector, Reading, round1
from ..context import Context

# The parts of a path under the root (saf's Context.read takes them as parts).
Parts = tuple[str, ...]
Hwmon = Optional[Parts]

_CARD = re.compile(r"^card\d+$")
_DRM = "/sys/class/drm"


class AmdGpuCollector(Collector):
    name = "amdgpu"
    section = "gpus"
    source = "sysfs (/sys/class/drm, amdgpu)"

    def __init__(self, machine: Context) -> None:
        Collector.__init__(self, machine)
        self.cards: list[tuple[str, str | None]] = []  # (card, pci id text or None)

    def start(self) -> str | None:
        machine = self.machine
        if not machine.linux:
            return "AMD GPU figures need Linux; this is %s" % machine.platform
        for card in machine.listdir(_DRM):
            if not _CARD.match(card):
                continue
            vendor = (machine.read(_DRM, card, "device/vendor") or "").strip().lower()
            if vendor != "0x1002" or self._driver(card) != "amdgpu":
                continue
            self.cards.append((card, self._pci_id(card)))
        if not self.cards:
            return "no AMD GPU (no card with vendor 0x1002 on amdgpu in /sys/class/drm)"
        return None

    def _uevent(self, card: str) -> dict[str, str]:
        """device/uevent as a dict (DRIVER, PCI_ID, PCI_CLASS, ...)."""
        out: dict[str, str] = {}
        for line in (self.machine.read(_DRM, card, "device/uevent") or "").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key.strip()] = value.strip()
        return out

    def _driver(self, card: str) -> str | None:
        try:
            return os.path.basename(os.readlink(self.machine.path(_DRM, card, "device/driver")))
        except OSError:
            return self._uevent(card).get("DRIVER")

    def _pci_id(self, card: str) -> str | None:
        """'0x15bf' from device/device, or from uevent's PCI_ID (some snapshots lack the
        device file)."""
        text = (self.machine.read(_DRM, card, "device/device") or "").strip().lower()
        if re.match(r"^0x[0-9a-f]{4}$", text):
            return text
        pci = self._uevent(card).get("PCI_ID", "")
        match = re.match(r"^[0-9A-Fa-f]{4}:([0-9A-Fa-f]{4})$", pci)
        return "0x" + match.group(1).lower() if match else None

    def _hwmon(self, card: str) -> Hwmon:
        """The device's hwmon directory named amdgpu (parts relative to the root), or None."""
        for entry in self.machine.listdir(_DRM, card, "device/hwmon"):
            parts = (_DRM, card, "device/hwmon", entry)
            if (self.machine.read(*parts, "name") or "").strip() == "amdgpu":
                return parts
        return None

    def _int(self, *parts: str) -> int | None:
        text = self.machine.read(*parts)
        try:
            return int(text.strip()) if text is not None else None
        except ValueError:
            return None

    def collect(self) -> list[Reading]:
        items: list[Reading] = []
        for index, (card, pci_id) in enumerate(self.cards):
            device = (_DRM, card, "device")
            product = (self.machine.read(*device, "product_name") or "").strip()
            name = product or "AMD GPU [%s]" % (pci_id or "unknown id")
            busy = self._int(*device, "gpu_busy_percent")
            item: Reading = {"index": index, "vendor": "amd", "name": name, "uuid": None,
                    "driver": "amdgpu",
                    "util": float(busy) if busy is not None and 0 <= busy <= 100 else None}
            for field, attr in (("mem_total", "mem_info_vram_total"),
                                ("mem_used", "mem_info_vram_used"),
                                ("gtt_total", "mem_info_gtt_total"),
                                ("gtt_used", "mem_info_gtt_used")):
                value = self._int(*device, attr)
                item[field] = value if value is not None and value >= 0 else None
            hwmon = self._hwmon(card)
            self._sensors(item, hwmon)
            missing: dict[str, str] = {}
            for field, figure in item.items():
                if figure is None:
                    missing[field] = self._why(field, hwmon)
            missing["uuid"] = "amdgpu gives no UUID in sysfs"
            item["missing"] = missing
            items.append(item)
        return items

    def _sensors(self, item: Reading, hwmon: Hwmon) -> None:
        def read(attr: str, scale: float) -> float | None:
            value = self._int(*hwmon, attr) if hwmon else None
            return value / scale if value is not None else None

        power = read("power1_average", 1e6)
        if power is None:  # newer APUs (and some kernels) give only the instantaneous input
            power = read("power1_input", 1e6)
        cap = read("power1_cap", 1e6)
        temp = read("temp1_input", 1000.0)
        sclk = read("freq1_input", 1e6)
        mclk = read("freq2_input", 1e6)
        pwm = read("pwm1", 1.0)
        item["power_w"] = round(power, 3) if power is not None and power >= 0 else None
        item["power_limit_w"] = round1(cap) if cap else None
        item["temp"] = round1(temp) if temp is not None and -100 <= temp <= 250 else None
        item["freq_mhz"] = round1(sclk) if sclk is not None and sclk >= 0 else None
        item["clock_mem_mhz"] = round1(mclk) if mclk is not None and mclk >= 0 else None
        item["fan"] = round1(pwm * 100.0 / 255.0) if pwm is not None and 0 <= pwm <= 255 \
            else None

    @staticmethod
    def _why(field: str, hwmon: Hwmon) -> str:
        if field in ("power_w", "power_limit_w", "temp", "freq_mhz", "clock_mem_mhz", "fan"):
            if hwmon is None:
                return "no amdgpu hwmon under the device"
            return {"power_limit_w": "the driver gives no power cap (power1_cap)",
                    "clock_mem_mhz": "the driver gives no memory clock (freq2_input)",
                    "fan": "no fan control (pwm1): an APU or a passive card"}.get(
                        field, "the amdgpu hwmon gives no reading")
        return "amdgpu's sysfs gives no reading"
