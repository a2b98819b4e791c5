"""NUMA nodes (Linux): CPUs, memory and the numa_hit/miss/foreign counters per node, from
/sys/devices/system/node/node*/{cpulist,meminfo,numastat} and /proc/zoneinfo.

A node's used memory is its MemTotal less what is available on it, worked out as the kernel
works out /proc/meminfo's MemAvailable (mm/show_mem.c, si_mem_available), from the node's own
figures: free pages less the node's reserve, plus the file pages and reclaimable kernel memory
it could drop, each less what the low watermark keeps. So `used` means the same for a NUMA
node as for the whole machine (total - available, as `free` and psutil say), and on a
one-node machine the two agree. The reserves and watermarks come from /proc/zoneinfo; without
it (or on a recorded tree that lacks it) they count as 0, which reads a little low.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from ..collectors import Collector, Rates, Reading, parse_cpulist
from ..collectors.memory import parse_meminfo

NODE_DIR = "/sys/devices/system/node"
COUNTERS = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
            "other_node")


def _page_size() -> int:
    try:
        return os.sysconf("SC_PAGESIZE")
    except (AttributeError, OSError, ValueError):
        return 4096


def parse_zoneinfo(text: str, page_size: int) -> dict[int, tuple[int, int]]:
    """{node: (reserve, low)} in bytes from /proc/zoneinfo: per node, the pages the kernel
    keeps back (each zone's largest lowmem reserve plus its high watermark, no more than the
    zone manages: calculate_totalreserve_pages) and the sum of its zones' low watermarks."""
    zones: list[list[int]] = []  # [node, high, low, managed, largest protection]
    for line in text.splitlines():
        parts = line.split()
        if line.startswith("Node ") and len(parts) >= 2:
            zones.append([int(parts[1].rstrip(",")), 0, 0, 0, 0])
        elif zones and len(parts) == 2 and parts[0] in ("high", "low", "managed") \
                and parts[1].isdigit() and line.startswith("        "):
            # The zone's watermarks are indented 8; the per-CPU pagesets' "high:" deeper.
            zones[-1][{"high": 1, "low": 2, "managed": 3}[parts[0]]] = int(parts[1])
        elif zones and parts and parts[0] == "protection:":
            values = [int(v) for v in line.split("(", 1)[-1].rstrip(")").replace(",", " ")
                      .split() if v.isdigit()]
            zones[-1][4] = max(values or [0])
    out: dict[int, tuple[int, int]] = {}
    for node, high, low, managed, protection in zones:
        reserve, lows = out.get(node, (0, 0))
        out[node] = (reserve + min(protection + high, managed) * page_size,
                     lows + low * page_size)
    return out


def available(mem: Mapping[str, int], reserve: int = 0, low: int = 0) -> int | None:
    """What the node could give programs without swapping, as si_mem_available reckons it
    for the machine; None without MemFree."""
    free = mem.get("MemFree")
    if free is None:
        return None
    if "Active(file)" in mem and "Inactive(file)" in mem:
        pagecache = mem["Active(file)"] + mem["Inactive(file)"]
    else:  # kernels that do not split the LRU lists by kind
        pagecache = mem.get("FilePages", 0) - mem.get("Shmem", 0)
    reclaimable = mem.get("KReclaimable", mem.get("SReclaimable", 0))
    out = (free - reserve + pagecache - min(pagecache // 2, low)
           + reclaimable - min(reclaimable // 2, low))
    return max(0, out)


def _node_meminfo(text: str) -> dict[str, int]:
    # Lines read "Node 0 MemTotal:       134182340 kB": drop the "Node N" prefix.
    return parse_meminfo("\n".join(line.split(None, 2)[2] for line in text.splitlines()
                                   if line.startswith("Node ") and len(line.split(None, 2)) == 3))


class NumaCollector(Collector):
    name = "numa"
    section = "numa"
    source = NODE_DIR

    def start(self) -> str | None:
        if not self.machine.linux:
            return "NUMA figures come from Linux sysfs; this is %s" % self.machine.platform
        self.nodes = [n for n in self.machine.listdir(NODE_DIR)
                      if n.startswith("node") and n[4:].isdigit()]
        if not self.nodes:
            return "no %s/node* (kernel without NUMA support)" % NODE_DIR
        self.nodes.sort(key=lambda n: int(n[4:]))
        self.cpus: dict[str, str] = {}
        self.distances: dict[str, list[int] | None] = {}
        for node in self.nodes:
            self.cpus[node] = (self.machine.read(NODE_DIR, node, "cpulist") or "").strip()
            text = self.machine.read(NODE_DIR, node, "distance")
            self.distances[node] = [int(d) for d in text.split()] if text else None
        # Watermarks and reserves change only when an admin tunes vm.* or memory is added.
        self.reserves = parse_zoneinfo(self.machine.read("/proc/zoneinfo") or "", _page_size())
        self.rates = Rates()
        self.collect()  # prime the counters: the first sample has rates
        return None

    def collect(self) -> list[Reading]:
        now = time.monotonic()
        out = []
        for node in self.nodes:
            cpulist = self.cpus[node]
            item: Reading = {"node": int(node[4:]), "cpus": cpulist,
                    "cpu_count": len(parse_cpulist(cpulist)),
                    "distances": self.distances[node]}
            mem = _node_meminfo(self.machine.read(NODE_DIR, node, "meminfo") or "")
            total, free = mem.get("MemTotal"), mem.get("MemFree")
            avail = available(mem, *self.reserves.get(int(node[4:]), (0, 0)))
            item["mem_total"] = total
            item["mem_free"] = free
            item["mem_available"] = avail
            item["mem_used"] = (max(0, total - avail) if total is not None
                                and avail is not None else None)
            counters: dict[str, int] = {}

            for line in (self.machine.read(NODE_DIR, node, "numastat") or "").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in COUNTERS and parts[1].isdigit():
                    counters[parts[0]] = int(parts[1])
            item.update(counters)
            for name, rate in self.rates.update(node, now, counters).items():
                item[name + "_rate"] = None if rate is None else round(rate, 1)
            out.append(item)
        return out
