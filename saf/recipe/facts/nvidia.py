"""`nvidia-smi -L`, `ubuntu-drivers devices`, and whether the node has an NVIDIA device at all."""

from __future__ import annotations

import re
from dataclasses import dataclass

_GPU = re.compile(r"^GPU (\d+): (.+?) \(UUID: ([^)]+)\)\s*$")
_RECOMMENDED = re.compile(r"^driver\s*:\s*(\S+)\s.*\brecommended\b")
_PACKAGE = re.compile(r"nvidia-driver-\d{3}(-open|-server|-server-open)?")


@dataclass(frozen=True)
class NvidiaGpu:
    index: int
    name: str
    uuid: str


def parse_list(text: str) -> list[NvidiaGpu]:
    """The GPUs `nvidia-smi -L` lists (MIG devices under a GPU are not GPUs of their own)."""
    gpus = []
    for line in text.splitlines():
        match = _GPU.match(line.strip())
        if match:
            gpus.append(NvidiaGpu(int(match[1]), match[2], match[3]))
    return gpus


def recommended_driver(text: str) -> str | None:
    """The package `ubuntu-drivers devices` marks recommended (e.g. nvidia-driver-570)."""
    for line in text.splitlines():
        match = _RECOMMENDED.match(line.strip())
        if match and _PACKAGE.fullmatch(match[1]):  # a node's word is not trusted as a name
            return match[1]
    return None


def driver_package(choice: str) -> str | None:
    """A person's choice of driver as a package name: "570" or "nvidia-driver-570" ->
    nvidia-driver-570 (also -open and -server flavours); "recommended" -> None (ask
    ubuntu-drivers). Anything else is refused with ValueError."""
    choice = choice.strip()
    if choice == "recommended":
        return None
    if re.fullmatch(r"\d{3}(-open|-server|-server-open)?", choice):
        return "nvidia-driver-" + choice
    if _PACKAGE.fullmatch(choice):
        return choice
    raise ValueError(f"driver must be 'recommended', a number like 570 or a package like "
                     f"nvidia-driver-570, not {choice!r}")


NVIDIA_VENDOR = "10de"  # NVIDIA's PCI vendor id

# PCI vendors as the node sees them: sysfs's vendor files (0x10de) and `lspci -n` (01:00.0
# 0300: 10de:2204). Either may be missing (a container, no pciutils).
PCI_SCRIPT = ('cat "${SAF_FACTS_ROOT:-}"/sys/bus/pci/devices/*/vendor 2>/dev/null; '
              "lspci -n 2>/dev/null; true")


def has_nvidia(pci: str) -> bool | None:
    """Whether PCI_SCRIPT's output names an NVIDIA device; None when it says nothing (no
    PCI facts: saf cannot tell, and does not skip)."""
    if not pci.strip():
        return None
    return (f"0x{NVIDIA_VENDOR}" in pci.lower()
            or re.search(rf"\s{NVIDIA_VENDOR}:[0-9a-f]{{4}}", pci.lower()) is not None)
