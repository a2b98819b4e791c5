"""`clinfo -l`, and the PCI ids of Intel's Arc GPUs.

Under some drivers (WSL2, older compute runtimes) clinfo names an A770 by its PCI id,
"Intel(R) Graphics [0x56a0]", not "Arc": the id is what tells it is an Arc GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Intel's Arc discrete GPUs by PCI device id (Alchemist DG2, Battlemage BMG).
ARC_IDS = {
    0x56A0: "Arc A770", 0x56A1: "Arc A750", 0x56A2: "Arc A580", 0x56A5: "Arc A380",
    0x56A6: "Arc A310", 0x5690: "Arc A770M", 0x5691: "Arc A730M", 0x5692: "Arc A550M",
    0x5693: "Arc A370M", 0x5694: "Arc A350M", 0x56B0: "Arc Pro A30M", 0x56B2: "Arc Pro A60M",
    0x56B3: "Arc Pro A60", 0x56C0: "Data Center GPU Flex 170", 0x56C1: "Data Center GPU Flex 140",
    0xE20B: "Arc B580", 0xE20C: "Arc B570", 0xE211: "Arc Pro B60", 0xE212: "Arc Pro B50",
}

_PLATFORM = re.compile(r"^Platform #(\d+): (.+)$")
_DEVICE = re.compile(r"^[-`|+\s]*Device #(\d+): (.+)$")
_PCI_ID = re.compile(r"\[0x([0-9a-fA-F]{4})\]")


@dataclass(frozen=True)
class ClDevice:
    platform: str
    index: int
    name: str

    @property
    def pci_id(self) -> int | None:
        match = _PCI_ID.search(self.name)
        return int(match[1], 16) if match else None

    @property
    def arc(self) -> str | None:
        """The Arc model this device is ("Arc A770"), or None when it is not an Arc GPU."""
        if self.pci_id in ARC_IDS:
            return ARC_IDS[self.pci_id]
        match = re.search(r"Arc\(TM\)\s+(.+?)\s+Graphics|Arc\s+(\S+)", self.name)
        if match:
            return "Arc " + (match[1] or match[2])
        return None


def parse_list(text: str) -> list[ClDevice]:
    """Every device `clinfo -l` lists, with its platform's name."""
    devices: list[ClDevice] = []
    platform = ""
    for line in text.splitlines():
        if match := _PLATFORM.match(line.strip()):
            platform = match[2].strip()
        elif match := _DEVICE.match(line):
            devices.append(ClDevice(platform, int(match[1]), match[2].strip()))
    return devices
