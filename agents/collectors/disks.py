"""Disks: read and write bytes per second (and the counters), per whole disk.

Linux reads /proc/diskstats for the devices in /sys/block (loop and ram devices left out);
elsewhere psutil when importable."""

from __future__ import annotations

import time
from collections.abc import Collection
from types import ModuleType

from ..collectors import Collector, Rates, Reading

SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's sector size
SKIP = ("loop", "ram")
DEVICE_REFRESH = 30.0


def parse_diskstats(text: str, wanted: Collection[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 10 and f[2] in wanted:
            out[f[2]] = {"read_count": int(f[3]), "read_bytes": int(f[5]) * SECTOR,
                         "write_count": int(f[7]), "write_bytes": int(f[9]) * SECTOR}
    return out


class DiskCollector(Collector):
    name = "disks"
    section = "disks"

    def start(self) -> str | None:
        self.rates = Rates()
        self.devices: set[str] = set()
        self.refreshed = 0.0
        self.psutil: ModuleType | None = None
        if self.machine.linux and self.machine.read("/proc/diskstats") is not None:
            self.source = "/proc/diskstats"
            self.collect()
            return None
        psutil, why = self.machine.module("psutil")
        if psutil is None:
            return "no /proc/diskstats and " + why
        self.psutil = psutil
        self.source = "psutil"
        self.collect()
        return None

    def _counters(self, now: float) -> dict[str, dict[str, int]]:
        if self.psutil is not None:
            found = self.psutil.disk_io_counters(perdisk=True) or {}
            return {name: {"read_count": c.read_count, "read_bytes": c.read_bytes,
                           "write_count": c.write_count, "write_bytes": c.write_bytes}
                    for name, c in found.items()}
        if now - self.refreshed >= DEVICE_REFRESH:
            self.devices = {d for d in self.machine.listdir("/sys/block") if not d.startswith(SKIP)}
            self.refreshed = now
        return parse_diskstats(self.machine.read("/proc/diskstats") or "", self.devices)

    def collect(self) -> list[Reading]:
        now = time.monotonic()
        counters = self._counters(now)
        out = []
        for name in sorted(counters):
            c = counters[name]
            item: Reading = {"name": name}

            item.update(c)
            rates = self.rates.update(name, now, c)
            for key, out_key in (("read_bytes", "read_bps"), ("write_bytes", "write_bps")):
                rate = rates.get(key)
                item[out_key] = None if rate is None else round(rate, 1)
            out.append(item)
        self.rates.forget_except(counters)
        return out
