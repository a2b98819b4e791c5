"""Memory and swap. Linux reads /proc/meminfo; elsewhere psutil when importable.

`used` is total - available (what psutil's percent is based on), so it counts what programs
hold, not the page cache the kernel would give back.
"""

from __future__ import annotations

from types import ModuleType

from ..collectors import Collector, Reading, round1


def parse_meminfo(text: str) -> dict[str, int]:
    """{'MemTotal': bytes, ...} from /proc/meminfo text (kB values)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            value = int(parts[0])
            out[key.strip()] = value * 1024 if len(parts) > 1 and parts[1] == "kB" else value
    return out


def _pct(part: float, whole: float) -> float | None:
    return round1(100.0 * part / whole) if whole else 0.0


class MemoryCollector(Collector):
    name = "memory"
    section = "memory"

    def start(self) -> str | None:
        self.psutil: ModuleType | None = None
        if self.machine.linux and self.machine.read("/proc/meminfo"):
            self.source = "/proc/meminfo"
            return None
        psutil, why = self.machine.module("psutil")
        if psutil is None:
            return "no /proc/meminfo and " + why
        self.psutil = psutil
        self.source = "psutil"
        return None

    def collect(self) -> Reading:

        if self.psutil is not None:
            vm = self.psutil.virtual_memory()
            sw = self.psutil.swap_memory()
            return {"total": vm.total, "available": vm.available, "used": vm.total - vm.available,
                    "percent": round1(vm.percent), "swap_total": sw.total,
                    "swap_used": sw.used, "swap_percent": round1(sw.percent)}
        info = parse_meminfo(self.machine.read("/proc/meminfo") or "")
        total = info.get("MemTotal", 0)
        available = info.get("MemAvailable")
        if available is None:  # kernels before 3.14
            available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
        swap_total = info.get("SwapTotal", 0)
        swap_used = swap_total - info.get("SwapFree", 0)
        return {"total": total, "available": available, "used": total - available,
                "percent": _pct(total - available, total), "swap_total": swap_total,
                "swap_used": swap_used, "swap_percent": _pct(swap_used, swap_total)}
