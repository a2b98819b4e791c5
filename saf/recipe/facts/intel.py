"""`clinfo -l`, and the PCI ids of Intel's Arc GPUs.

Under some drivers (WSL2, older compute runtimes) clinfo names an A770 by its PCI id,
"Intel(R) Graphics [0x56a0]", not "Arc": the id is what tells it is an Arc GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from saf.agents import arc_ids

# The one table, the agent's (the agent imports nothing of saf, so it lives there).
ARC_IDS: dict[int, str] = arc_ids.ARC_IDS

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
