"""`system_profiler -json SPDisplaysDataType SPHardwareDataType` on Apple Silicon: the chip,
its GPU cores and its unified memory."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class AppleChip:
    chip: str
    model: str
    gpu_cores: int | None
    memory: str

    def line(self) -> str:
        cores = f"{self.gpu_cores} GPU cores" if self.gpu_cores else "GPU cores not reported"
        return f"{self.chip} ({self.model}), {cores}, {self.memory} unified memory"


def parse_profile(text: str) -> AppleChip:
    """Read the two data types; ValueError says what is missing (not Apple Silicon, no JSON)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"system_profiler did not print JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("system_profiler printed JSON that is not an object")
    # What a node printed is untrusted: every level is checked for its type.
    entries = data.get("SPHardwareDataType")
    hardware = entries[0] if isinstance(entries, list) and entries else {}
    if not isinstance(hardware, dict):
        hardware = {}
    chip = hardware.get("chip_type")
    if not isinstance(chip, str) or not chip.startswith("Apple"):
        raise ValueError("no Apple Silicon chip in SPHardwareDataType"
                         + (f" (cpu_type: {hardware.get('cpu_type')})"
                            if hardware.get("cpu_type") else ""))
    cores = None
    displays = data.get("SPDisplaysDataType")
    for gpu in displays if isinstance(displays, list) else []:
        if isinstance(gpu, dict) and str(gpu.get("sppci_cores", "")).isdigit():
            cores = int(gpu["sppci_cores"])
            break
    model = " ".join(str(hardware[k]) for k in ("machine_name", "machine_model")
                     if hardware.get(k))
    return AppleChip(chip, model, cores, str(hardware.get("physical_memory") or "?"))
