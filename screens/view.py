"""What the screens show of a node, read from the metrics store's `NodeState` and history.

The only place that knows the agent's sample sections by name (see agents/protocol.py and
saf/metrics/store.py), so the screens stay about layout. Reading only: nothing here changes
the store. A value the node did not measure is None, shown as '–', never 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from saf.metrics.events import CONNECTING, LOST, STOPPED, UP
from saf.metrics.store import MetricsStore, NodeState

from saf.screens.settings import Thresholds
from saf.screens.widgets import fmt_bytes

OK, WARN, ALERT = "ok", "warn", "alert"


def num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def first(item: dict[str, Any], *keys: str) -> float | None:
    """The first numeric value among `keys` (agents name a few fields in more than one way)."""
    for key in keys:
        value = num(item.get(key))
        if value is not None:
            return value
    return None


def level(value: float | None, warn: float, alert: float) -> str:
    if value is None:
        return OK
    return ALERT if value >= alert else WARN if value >= warn else OK


# GpuProcess, Gpu and Nic are made for every node every second: plain (not frozen)
# dataclasses, as a frozen one's __init__ costs four times as much. Treat them as read-only.
@dataclass
class GpuProcess:
    pid: int
    name: str
    mem: float | None  # bytes


@dataclass
class Gpu:
    index: int
    name: str
    util: float | None
    mem_used: float | None
    mem_total: float | None
    temp: float | None
    power: float | None
    power_limit: float | None
    fan: float | None = None
    clock_mhz: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    vendor: str = ""

    @property
    def unified(self) -> bool:
        """Apple GPUs share the system's memory: their "GPU memory" is the RAM."""
        return self.vendor == "apple"

    @property
    def mem_pct(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total


@dataclass
class Nic:
    name: str
    rx: float | None  # bytes/s
    tx: float | None
    rx_errors: float | None
    tx_errors: float | None
    rx_drops: float | None
    tx_drops: float | None
    mtu: float | None
    speed: float | None  # Mb/s
    up: bool | None
    cluster: bool
    addresses: tuple[str, ...] = ()
    # Errors (drops) per second in the latest sample: counters since boot may hold old
    # history, a rate says it is happening now.
    error_rate: float = 0.0
    drop_rate: float = 0.0

    @property
    def errors(self) -> float:
        return (self.rx_errors or 0) + (self.tx_errors or 0)

    @property
    def drops(self) -> float:
        return (self.rx_drops or 0) + (self.tx_drops or 0)


@dataclass(frozen=True)
class Numa:
    node: int
    cpus: str
    mem_total: float | None
    mem_used: float | None
    hit: float | None       # per second when the store could derive it, else the counter
    miss: float | None
    foreign: float | None
    rates: bool


@dataclass(frozen=True)
class Disk:
    name: str
    read: float | None
    write: float | None


@dataclass
class NodeView:
    """One node as the dashboard and the node screen show it.

    What the dashboard reads is computed at once; what only the node screen reads (cores,
    load, NUMA, disks, the collectors' reasons) is computed when first asked, from the same
    sample (a view is made again whenever its node changes, so it is never older than that):
    64 nodes a second stay cheap on the dashboard.
    """

    name: str
    status: str          # connected, connecting, lost, stale, stopped
    reason: str
    message: str
    os: str
    arch: str
    host: str
    cpu: float | None
    cpu_count: float | None
    mem_used: float | None
    mem_total: float | None
    swap_used: float | None
    swap_total: float | None
    gpus: tuple[Gpu, ...]
    nics: tuple[Nic, ...]
    age: float | None = None
    has_sample: bool = False
    sample: dict[str, Any] = field(default_factory=dict, repr=False)
    hello: dict[str, Any] = field(default_factory=dict, repr=False)
    store: MetricsStore | None = field(default=None, repr=False, compare=False)

    @cached_property
    def cores(self) -> tuple[float | None, ...]:
        return tuple(num(c) for c in (self.sample.get("cpu") or {}).get("per_core") or ())

    @cached_property
    def load(self) -> tuple[float | None, ...]:
        return tuple(num(v) for v in (self.sample.get("cpu") or {}).get("load") or ())

    @cached_property
    def numa(self) -> tuple[Numa, ...]:
        return _numa(self.sample, self.store, self.name) if self.store else ()

    @cached_property
    def disks(self) -> tuple[Disk, ...]:
        return _disks(self.sample, self.store, self.name) if self.store else ()

    @cached_property
    def missing(self) -> dict[str, str]:
        return dict(self.sample.get("missing") or {})

    @cached_property
    def collectors(self) -> dict[str, Any]:
        return dict(self.hello.get("collectors") or {})

    @property
    def mem_pct(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total

    @property
    def cluster_nic(self) -> Nic | None:
        for nic in self.nics:
            if nic.cluster:
                return nic
        # No interface marked: the busiest one that is up and not loopback.
        candidates = [n for n in self.nics if n.up is not False and not n.name.startswith("lo")]
        return max(candidates, key=lambda n: (n.rx or 0) + (n.tx or 0), default=None)

    def _counted(self) -> list[Nic]:
        """Interfaces whose traffic counts: all but loopback, unless loopback is the cluster's
        (the demo cluster lives on 127.0.0.1)."""
        return [n for n in self.nics if n.cluster or not n.name.startswith("lo")]

    @property
    def net_in(self) -> float | None:
        values = [n.rx for n in self._counted() if n.rx is not None]
        return sum(values) if values else None

    @property
    def net_out(self) -> float | None:
        values = [n.tx for n in self._counted() if n.tx is not None]
        return sum(values) if values else None

    @property
    def hottest_gpu(self) -> Gpu | None:
        return max(self.gpus, key=lambda g: g.temp if g.temp is not None else -1, default=None)

    def gpu_util(self) -> float | None:
        values = [g.util for g in self.gpus if g.util is not None]
        return sum(values) / len(values) if values else None

    def gpu_mem(self) -> tuple[float | None, float | None]:
        used = [g.mem_used for g in self.gpus if g.mem_used is not None and not g.unified]
        total = [g.mem_total for g in self.gpus if g.mem_total is not None and not g.unified]
        return (sum(used) if used else None, sum(total) if total else None)

    def gpu_power(self) -> float | None:
        values = [g.power for g in self.gpus if g.power is not None]
        return sum(values) if values else None


def node_status(state: NodeState, now: float) -> str:
    if state.status == LOST:
        return "lost"
    if state.status == STOPPED:
        return "stopped"
    if state.status == CONNECTING and state.sample is None:
        return "connecting"
    if state.sample is not None and state.stale(now):
        return "stale"
    return "connected" if state.status == UP else state.status


def _gpus(sample: dict[str, Any]) -> tuple[Gpu, ...]:
    out = []
    for i, g in enumerate(sample.get("gpus") or ()):
        if not isinstance(g, dict):
            continue
        procs = tuple(
            GpuProcess(int(p.get("pid", 0)), str(p.get("name") or p.get("command") or "?"),
                       first(p, "mem_used", "memory", "used_memory", "mem"))
            for p in g.get("processes") or () if isinstance(p, dict))
        out.append(Gpu(
            index=int(num(g.get("index")) if num(g.get("index")) is not None else i),
            name=str(g.get("name") or "GPU"),
            util=first(g, "util", "utilization", "gpu_util"),
            mem_used=first(g, "mem_used", "memory_used"),
            mem_total=first(g, "mem_total", "memory_total"),
            temp=first(g, "temp", "temperature"),
            power=first(g, "power_w", "power", "power_draw"),
            power_limit=first(g, "power_limit_w", "power_limit"),
            fan=first(g, "fan", "fan_pct"),
            clock_mhz=first(g, "clock_sm_mhz", "clock_mhz", "freq_mhz"),
            processes=procs, vendor=str(g.get("vendor") or "")))
    return tuple(out)


def _nics(sample: dict[str, Any], store: MetricsStore, node: str) -> tuple[Nic, ...]:
    out = []
    value = store.value
    for n in sample.get("nics") or ():
        if not isinstance(n, dict) or not n.get("name"):
            continue
        name = str(n["name"])
        base = f"nic.{name}."
        rx, tx = num(n.get("rx_bps")), num(n.get("tx_bps"))
        if rx is None:
            rx = value(node, base + "rx_bytes/s")
        if tx is None:
            tx = value(node, base + "tx_bytes/s")
        rx_errors = first(n, "rx_errors", "errin")
        tx_errors = first(n, "tx_errors", "errout")
        rx_drops = first(n, "rx_drops", "dropin")
        tx_drops = first(n, "tx_drops", "dropout")
        # A counter at zero has not grown: no need to ask the store for its rate.
        error_rate = drop_rate = 0.0
        if rx_errors or tx_errors:
            error_rate = ((value(node, base + "rx_errors/s") or 0.0)
                          + (value(node, base + "tx_errors/s") or 0.0))
        if rx_drops or tx_drops:
            drop_rate = ((value(node, base + "rx_drops/s") or 0.0)
                         + (value(node, base + "tx_drops/s") or 0.0))
        up = n.get("up")
        out.append(Nic(
            name=name, rx=rx, tx=tx, rx_errors=rx_errors, tx_errors=tx_errors,
            rx_drops=rx_drops, tx_drops=tx_drops,
            mtu=num(n.get("mtu")), speed=first(n, "speed_mbps", "speed"),
            up=up if isinstance(up, bool) else None, cluster=bool(n.get("cluster")),
            addresses=tuple(str(a) for a in n.get("addresses") or ()),
            error_rate=error_rate, drop_rate=drop_rate))
    return tuple(out)


def _numa(sample: dict[str, Any], store: MetricsStore, node: str) -> tuple[Numa, ...]:
    out = []
    for n in sample.get("numa") or ():
        if not isinstance(n, dict) or num(n.get("node")) is None:
            continue
        ident = int(n["node"])
        total = first(n, "mem_total")
        used = first(n, "mem_used")
        if used is None and total is not None and first(n, "mem_free") is not None:
            used = total - (first(n, "mem_free") or 0)
        hit = store.value(node, f"numa.{ident}.numa_hit/s")
        miss = store.value(node, f"numa.{ident}.numa_miss/s")
        foreign = store.value(node, f"numa.{ident}.numa_foreign/s")
        rates = hit is not None
        if not rates and first(n, "numa_hit_rate") is not None:
            hit, miss, foreign = (first(n, "numa_hit_rate"), first(n, "numa_miss_rate"),
                                  first(n, "numa_foreign_rate"))
            rates = True
        if not rates:
            hit, miss, foreign = (first(n, "numa_hit"), first(n, "numa_miss"),
                                  first(n, "numa_foreign"))
        cpus = n.get("cpus")
        if isinstance(cpus, list):
            cpus = _cpu_ranges(cpus)
        out.append(Numa(ident, str(cpus or "–"), total, used, hit, miss, foreign, rates))
    return tuple(out)


def _cpu_ranges(cpus: list[Any]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (how Linux writes a cpulist)."""
    numbers = sorted(int(c) for c in cpus if isinstance(c, int))
    if not numbers:
        return "none"
    parts, start, prev = [], numbers[0], numbers[0]
    for c in numbers[1:] + [None]:  # type: ignore[list-item]
        if c is not None and c == prev + 1:
            prev = c
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if c is not None:
            start = prev = c
    return ",".join(parts)


def _disks(sample: dict[str, Any], store: MetricsStore, node: str) -> tuple[Disk, ...]:
    out = []
    for d in sample.get("disks") or ():
        if not isinstance(d, dict) or not d.get("name"):
            continue
        name = str(d["name"])
        read = first(d, "read_bps")
        write = first(d, "write_bps")
        if read is None:
            read = store.value(node, f"disk.{name}.read_bytes/s")
        if write is None:
            write = store.value(node, f"disk.{name}.write_bytes/s")
        out.append(Disk(name, read, write))
    return tuple(out)


def node_view(store: MetricsStore, name: str, now: float,
              os_hint: str | None = None) -> NodeView:
    state = store.node(name)
    sample = state.sample or {}
    hello = state.hello or {}
    cpu = sample.get("cpu") or {}
    mem = sample.get("memory") or {}
    per_core = cpu.get("per_core")
    return NodeView(
        name=name,
        status=node_status(state, now),
        reason=state.reason,
        message=state.message,
        os=str(hello.get("os") or os_hint or "–"),
        arch=str(hello.get("arch") or ""),
        host=str(hello.get("host") or ""),
        cpu=first(cpu, "percent"),
        cpu_count=first(cpu, "count") or (float(len(per_core)) if per_core else None),
        mem_used=first(mem, "used"),
        mem_total=first(mem, "total"),
        swap_used=first(mem, "swap_used"),
        swap_total=first(mem, "swap_total"),
        gpus=_gpus(sample),
        nics=_nics(sample, store, name),
        age=None if state.sample_time is None else max(0.0, now - state.sample_time),
        has_sample=state.sample is not None,
        sample=sample, hello=hello, store=store,
    )


@dataclass(frozen=True)
class Alert:
    level: str
    node: str
    text: str


def alerts(views: list[NodeView], th: Thresholds) -> list[Alert]:
    """What the header warns about: a lost node, a GPU over temperature, swap in use, an
    interface with errors or drops."""
    out: list[Alert] = []
    for v in views:
        if v.status == "lost":
            out.append(Alert(ALERT, v.name, f"{v.name} lost ({v.reason or 'no reason'})"))
        elif v.status == "stale":
            out.append(Alert(WARN, v.name, f"{v.name} stale"))
        for g in v.gpus:
            if g.temp is not None and g.temp >= th.gpu_temp_alert:
                out.append(Alert(ALERT, v.name, f"{v.name} GPU{g.index} {g.temp:.0f}°C"))
        if v.swap_used and v.swap_used > 0 and v.status != "lost":
            out.append(Alert(WARN, v.name, f"{v.name} swap {fmt_bytes(v.swap_used)}"))
        for nic in v.nics:
            if (nic.error_rate or nic.drop_rate) and v.status != "lost":
                what = []
                if nic.error_rate:
                    what.append(f"{nic.errors:.0f} errors")
                if nic.drop_rate:
                    what.append(f"{nic.drops:.0f} drops")
                out.append(Alert(WARN, v.name, f"{v.name} {nic.name} {' '.join(what)}"))
    return out


Clock = Callable[[], float]
