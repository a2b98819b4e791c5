"""NUMA nodes (Linux): CPUs, memory and the numa_hit/miss/foreign counters per node, from
/sys/devices/system/node/node*/{cpulist,meminfo,numastat}."""

import time

from ..collectors import Collector, Rates, parse_cpulist
from ..collectors.memory import parse_meminfo

NODE_DIR = "/sys/devices/system/node"
COUNTERS = ("numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node",
            "other_node")


def _node_meminfo(text):
    # Lines read "Node 0 MemTotal:       134182340 kB": drop the "Node N" prefix.
    return parse_meminfo("\n".join(line.split(None, 2)[2] for line in text.splitlines()
                                   if line.startswith("Node ") and len(line.split(None, 2)) == 3))


class NumaCollector(Collector):
    name = "numa"
    section = "numa"
    source = NODE_DIR

    def start(self):
        if not self.ctx.linux:
            return "NUMA figures come from Linux sysfs; this is %s" % self.ctx.platform
        self.nodes = [n for n in self.ctx.listdir(NODE_DIR)
                      if n.startswith("node") and n[4:].isdigit()]
        if not self.nodes:
            return "no %s/node* (kernel without NUMA support)" % NODE_DIR
        self.nodes.sort(key=lambda n: int(n[4:]))
        self.cpus = {}
        self.distances = {}
        for node in self.nodes:
            self.cpus[node] = (self.ctx.read(NODE_DIR, node, "cpulist") or "").strip()
            text = self.ctx.read(NODE_DIR, node, "distance")
            self.distances[node] = [int(d) for d in text.split()] if text else None
        self.rates = Rates()
        self.collect()  # prime the counters: the first sample has rates
        return None

    def collect(self):
        now = time.monotonic()
        out = []
        for node in self.nodes:
            cpulist = self.cpus[node]
            item = {"node": int(node[4:]), "cpus": cpulist,
                    "cpu_count": len(parse_cpulist(cpulist)),
                    "distances": self.distances[node]}
            mem = _node_meminfo(self.ctx.read(NODE_DIR, node, "meminfo") or "")
            total, free = mem.get("MemTotal"), mem.get("MemFree")
            item["mem_total"] = total
            item["mem_free"] = free
            item["mem_used"] = mem.get("MemUsed", total - free if total is not None
                                       and free is not None else None)
            counters = {}
            for line in (self.ctx.read(NODE_DIR, node, "numastat") or "").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[0] in COUNTERS and parts[1].isdigit():
                    counters[parts[0]] = int(parts[1])
            item.update(counters)
            for name, rate in self.rates.update(node, now, counters).items():
                item[name + "_rate"] = None if rate is None else round(rate, 1)
            out.append(item)
        return out
