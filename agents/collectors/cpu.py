"""CPU: total and per-core busy percent, frequency, load average.

Linux reads /proc/stat (and cpufreq from sysfs) directly: no psutil needed, cheap, and
readable from a recorded tree. Elsewhere (macOS) it uses psutil when importable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import ModuleType

from ..collectors import Collector, Reading, round1

# /proc/stat columns after the name: user nice system idle iowait irq softirq steal guest
# guest_nice. Like psutil: busy = all - idle - iowait, guest time is already inside user.
_IDLE, _IOWAIT = 3, 4


def _busy_total(fields: Sequence[str]) -> tuple[int, int]:
    values = [int(v) for v in fields[:8]]
    total = sum(values)
    idle = values[_IDLE] + (values[_IOWAIT] if len(values) > _IOWAIT else 0)
    return total - idle, total


def _percent(now: tuple[int, int], before: tuple[int, int] | None) -> float | None:
    if before is None:
        return None
    busy = now[0] - before[0]
    total = now[1] - before[1]
    if total <= 0:
        return 0.0
    return max(0.0, min(100.0, 100.0 * busy / total))


class CpuCollector(Collector):
    name = "cpu"
    section = "cpu"

    def start(self) -> str | None:
        self.prev: dict[str, tuple[int, int]] = {}
        self.psutil: ModuleType | None = None
        if self.machine.linux and self.machine.read("/proc/stat"):
            self.source = "/proc/stat"
            self._policies = [p for p in self.machine.listdir("/sys/devices/system/cpu/cpufreq")
                              if p.startswith("policy")]
            self.collect()  # prime the counters: the first sample has real percents
            return None
        psutil, why = self.machine.module("psutil")
        if psutil is None:
            return "no /proc/stat and " + why
        self.psutil = psutil
        self.source = "psutil"
        psutil.cpu_percent(percpu=True)
        return None

    def collect(self) -> Reading:
        if self.psutil is not None:
            return self._collect_psutil(self.psutil)
        out: Reading = {}
        per_core = []
        text = self.machine.read("/proc/stat") or ""
        for line in text.splitlines():
            if not line.startswith("cpu"):
                break
            fields = line.split()
            name = fields[0]
            now = _busy_total(fields[1:])
            pct = _percent(now, self.prev.get(name))
            self.prev[name] = now
            if name == "cpu":
                out["percent"] = round1(pct)
            else:
                per_core.append(round1(pct))
        out["per_core"] = per_core
        out["count"] = len(per_core)
        out["freq_mhz"] = self._freq()
        if out["freq_mhz"] is None:
            out["missing"] = {"freq_mhz": "no cpufreq in /sys (a VM or container)"}
        out["load"] = _load()
        return out

    def _freq(self) -> float | None:
        values = []
        for policy in self._policies:
            text = self.machine.read("/sys/devices/system/cpu/cpufreq", policy, "scaling_cur_freq")
            if text and text.strip().isdigit():
                values.append(int(text) / 1000.0)
        return round1(sum(values) / len(values)) if values else None

    def _collect_psutil(self, psutil: ModuleType) -> Reading:
        per_core = [round1(p) for p in psutil.cpu_percent(percpu=True)]
        out: Reading = {"per_core": per_core, "count": len(per_core),
                        "percent": round1(sum(per_core) / len(per_core)) if per_core else None,
                        "load": _load()}
        try:
            freq = psutil.cpu_freq()
        except Exception:  # noqa: BLE001 - psutil fails variously where it is unreadable (VMs)
            freq = None
        out["freq_mhz"] = round1(freq.current) if freq and freq.current else None
        if out["freq_mhz"] is None:
            out["missing"] = {"freq_mhz": "psutil cannot read the CPU frequency here"}
        return out


def _load() -> list[float] | None:

    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
