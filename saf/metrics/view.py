"""What a person reads of a node, from the metrics store's `NodeState` and history: its status,
figures, GPUs, interfaces, NUMA nodes and disks, and the alerts they raise.

Every face reads nodes through here (the cockpit's screens and `saf top`), so they agree on
what "the cluster interface" or "stale" means. The only place that knows the agent's sample
sections by name; it reads the gate's Structs (saf.metrics.frames), so only fields the protocol
defines, each of a checked type. Reading only: nothing here changes the store. A value the node
did not measure (null, or left out: UNSET) is None, never 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from saf.format import MISSING, fmt_bytes
from saf.metrics.events import NodeStatus as NodeStatus  # re-exported: a NodeView's status
from saf.metrics.frames import CollectorStatus, CpuSection, HelloFrame, MemorySection, SampleFrame
from saf.metrics.store import MetricsStore, NodeState
from saf.metrics.thresholds import Level, Thresholds

# Linux's "lo", macOS's "lo0": the interface whose traffic never leaves the node.
_LOOPBACK = re.compile(r"lo\d*")


def is_loopback(nic: str) -> bool:
    return _LOOPBACK.fullmatch(nic) is not None


def node_status(state: NodeState, now: float) -> NodeStatus:
    if state.status == NodeStatus.LOST or (state.status == NodeStatus.CONNECTING and state.failure):
        return NodeStatus.LOST  # a retry of a failed node is still a failed node
    if state.status == NodeStatus.STOPPED:
        return NodeStatus.STOPPED
    if state.sample is not None and state.stale(now):
        return NodeStatus.STALE
    return NodeStatus.UP if state.status == NodeStatus.UP else NodeStatus.CONNECTING


def num(value: object) -> float | None:
    """A number from a frame as a float; None for null, a field left out (UNSET) or a
    non-number (bool included). By exact type: it runs some forty times per node per second."""
    if type(value) is float:
        return value
    if type(value) is int:
        return float(value)
    return None


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
    # AMD: system RAM the GPU has mapped (GTT), shown beside its VRAM, never added to it
    gtt_used: float | None = None
    gtt_total: float | None = None
    # field -> why the node does not measure it (the agent's per-GPU `missing`)
    missing: dict[str, str] = field(default_factory=dict)

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
    # Traffic that never leaves the node; worked out once, as rows read it several times.
    loopback: bool = field(init=False)

    def __post_init__(self) -> None:
        self.loopback = is_loopback(self.name)

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
    hit: float | None       # per second when a rate is known, else the counter
    miss: float | None
    foreign: float | None
    rates: bool


@dataclass(frozen=True)
class Disk:
    name: str
    read: float | None  # bytes/s
    write: float | None


@dataclass(frozen=True)
class Filesystem:
    mount: str
    device: str
    fstype: str
    total: float | None  # bytes
    used: float | None
    free: float | None  # what an ordinary user may still write
    missing: str = ""  # why there are no figures (a network filesystem that did not answer)

    @property
    def free_pct(self) -> float | None:
        if self.free is None or not self.total:
            return None
        return 100.0 * self.free / self.total


@dataclass
class NodeView:
    """One node as the dashboard, the node screen and `saf top` show it.

    The plain figures are read at once; what takes building (GPUs, interfaces, cores, load,
    NUMA, disks, the collectors' reasons) is computed when first asked, from the same sample
    (a view is made again whenever its node changes, so it is never older than that): the
    header reads 256 nodes a second and builds only what its totals need, and a row builds
    its interfaces only while it is on screen.
    """

    name: str
    status: NodeStatus
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
    age: float | None = None
    has_sample: bool = False
    retry_in: float | None = None  # seconds to the next try of a lost node (0: trying now)
    sample: SampleFrame = field(default_factory=lambda: SampleFrame(), repr=False)
    hello: HelloFrame = field(default_factory=lambda: HelloFrame(), repr=False)
    store: MetricsStore | None = field(default=None, repr=False, compare=False)

    @property
    def live(self) -> bool:
        """Figures are current: the node is up and its samples keep coming."""
        return self.status is NodeStatus.UP

    @cached_property
    def gpus(self) -> tuple[Gpu, ...]:
        return _gpus(self.sample)

    @cached_property
    def nics(self) -> tuple[Nic, ...]:
        return _nics(self.sample, self.store, self.name) if self.store else ()

    @property
    def nic_trouble(self) -> bool:
        """Whether any interface has ever counted an error or a drop (read from the sample
        as it came, so a header looking at 256 nodes need not build their interfaces)."""
        return any(n.rx_errors or n.tx_errors or n.rx_drops or n.tx_drops
                   for n in self.sample.nics or ())

    @cached_property
    def cores(self) -> tuple[float | None, ...]:
        return tuple(num(c) for c in (self.sample.cpu or _NO_CPU).per_core or ())

    @cached_property
    def load(self) -> tuple[float | None, ...]:
        return tuple(num(v) for v in (self.sample.cpu or _NO_CPU).load or ())

    @cached_property
    def numa(self) -> tuple[Numa, ...]:
        return _numa(self.sample, self.store, self.name) if self.store else ()

    @cached_property
    def disks(self) -> tuple[Disk, ...]:
        return _disks(self.sample, self.store, self.name) if self.store else ()

    @cached_property
    def filesystems(self) -> tuple[Filesystem, ...]:
        return _filesystems(self.sample)

    @cached_property
    def missing(self) -> dict[str, str]:
        return dict(self.sample.missing or {})

    @cached_property
    def collectors(self) -> dict[str, CollectorStatus]:
        return dict(self.hello.collectors or {})

    @property
    def mem_pct(self) -> float | None:
        if self.mem_used is None or not self.mem_total:
            return None
        return 100.0 * self.mem_used / self.mem_total

    @property
    def swap_pct(self) -> float | None:
        if self.swap_used is None or not self.swap_total:
            return None
        return 100.0 * self.swap_used / self.swap_total

    @cached_property
    def cluster_nic(self) -> Nic | None:
        for nic in self.nics:
            if nic.cluster:
                return nic
        # No interface marked: the busiest one that is up and not loopback.
        candidates = [n for n in self.nics if n.up is not False and not n.loopback]
        return max(candidates, key=lambda n: (n.rx or 0) + (n.tx or 0), default=None)

    @cached_property
    def _counted(self) -> list[Nic]:
        """Interfaces whose traffic counts in NET IN/OUT: all but loopback, even when loopback
        carries the cluster's address (the demo cluster lives on 127.0.0.1): what a node says
        to itself never crosses a wire, and help says the total leaves it out."""
        return [n for n in self.nics if not n.loopback]

    @property
    def net_in(self) -> float | None:
        values = [n.rx for n in self._counted if n.rx is not None]
        return sum(values) if values else None

    @property
    def net_out(self) -> float | None:
        values = [n.tx for n in self._counted if n.tx is not None]
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


def _gpus(sample: SampleFrame) -> tuple[Gpu, ...]:
    out = []
    for i, g in enumerate(sample.gpus or ()):
        procs = tuple(GpuProcess(p.pid or 0, p.name or "?", num(p.mem_used))
                      for p in g.processes or ())
        clock = num(g.clock_sm_mhz)
        out.append(Gpu(
            index=g.index if isinstance(g.index, int) else i,
            name=g.name or "GPU",
            util=num(g.util),
            mem_used=num(g.mem_used),
            mem_total=num(g.mem_total),
            temp=num(g.temp),
            power=num(g.power_w),
            power_limit=num(g.power_limit_w),
            fan=num(g.fan),
            # NVIDIA reports its shader clock, Apple and Intel their GPU frequency.
            clock_mhz=clock if clock is not None else num(g.freq_mhz),
            processes=procs, vendor=g.vendor or "",
            gtt_used=num(g.gtt_used), gtt_total=num(g.gtt_total),
            missing=dict(g.missing or {})))
    return tuple(out)


def _nics(sample: SampleFrame, store: MetricsStore, node: str) -> tuple[Nic, ...]:
    out = []
    value = store.value
    for n in sample.nics or ():
        if not n.name:
            continue
        name = n.name
        base = f"nic.{name}."
        rx, tx = num(n.rx_bps), num(n.tx_bps)
        if rx is None:
            rx = value(node, base + "rx_bytes/s")
        if tx is None:
            tx = value(node, base + "tx_bytes/s")
        rx_errors, tx_errors = num(n.rx_errors), num(n.tx_errors)
        rx_drops, tx_drops = num(n.rx_drops), num(n.tx_drops)
        # A counter at zero has not grown: no need to ask the store for its rate.
        error_rate = drop_rate = 0.0
        if rx_errors or tx_errors:
            error_rate = ((value(node, base + "rx_errors/s") or 0.0)
                          + (value(node, base + "tx_errors/s") or 0.0))
        if rx_drops or tx_drops:
            drop_rate = ((value(node, base + "rx_drops/s") or 0.0)
                         + (value(node, base + "tx_drops/s") or 0.0))
        out.append(Nic(
            name=name, rx=rx, tx=tx, rx_errors=rx_errors, tx_errors=tx_errors,
            rx_drops=rx_drops, tx_drops=tx_drops,
            mtu=num(n.mtu), speed=num(n.speed_mbps),
            up=n.up if isinstance(n.up, bool) else None, cluster=n.cluster is True,
            addresses=tuple(n.addresses or ()),
            error_rate=error_rate, drop_rate=drop_rate))
    return tuple(out)


def _numa(sample: SampleFrame, store: MetricsStore, node: str) -> tuple[Numa, ...]:
    out = []
    for n in sample.numa or ():
        if not isinstance(n.node, int):
            continue
        ident = n.node
        total, used = num(n.mem_total), num(n.mem_used)
        free = num(n.mem_free)
        if used is None and total is not None and free is not None:
            used = total - free
        # Rates the store derived from the counters first, else the agent's own rates,
        # else the counters since boot.
        hit = store.value(node, f"numa.{ident}.numa_hit/s")
        miss = store.value(node, f"numa.{ident}.numa_miss/s")
        foreign = store.value(node, f"numa.{ident}.numa_foreign/s")
        rates = hit is not None
        if not rates and num(n.numa_hit_rate) is not None:
            hit, miss, foreign = (num(n.numa_hit_rate), num(n.numa_miss_rate),
                                  num(n.numa_foreign_rate))
            rates = True
        if not rates:
            hit, miss, foreign = num(n.numa_hit), num(n.numa_miss), num(n.numa_foreign)
        out.append(Numa(ident, n.cpus or MISSING, total, used, hit, miss, foreign, rates))
    return tuple(out)


def _disks(sample: SampleFrame, store: MetricsStore, node: str) -> tuple[Disk, ...]:
    out = []
    for d in sample.disks or ():
        if not d.name:
            continue
        name = d.name
        read, write = num(d.read_bps), num(d.write_bps)
        if read is None:
            read = store.value(node, f"disk.{name}.read_bytes/s")
        if write is None:
            write = store.value(node, f"disk.{name}.write_bytes/s")
        out.append(Disk(name, read, write))
    return tuple(out)


def _filesystems(sample: SampleFrame) -> tuple[Filesystem, ...]:
    out = []
    for f in sample.filesystems or ():
        if not f.mount:  # UNSET or empty: nothing to name it by
            continue
        out.append(Filesystem(f.mount, f.device or "", f.fstype or "", num(f.total_bytes),
                              num(f.used_bytes), num(f.free_bytes),
                              "; ".join((f.missing or {}).values())))
    return tuple(out)


# What a node that sent nothing yet (or left a section out) reads as: no figures.
_NO_SAMPLE, _NO_HELLO = SampleFrame(), HelloFrame()
_NO_CPU, _NO_MEMORY = CpuSection(), MemorySection()


def node_view(store: MetricsStore, name: str, now: float,
              os_hint: str | None = None) -> NodeView:
    state = store.node(name)
    sample = state.sample or _NO_SAMPLE
    hello = state.hello or _NO_HELLO
    cpu = sample.cpu or _NO_CPU
    mem = sample.memory or _NO_MEMORY
    per_core = cpu.per_core
    status = node_status(state, now)
    failed = status is NodeStatus.LOST
    return NodeView(
        name=name,
        status=status,
        reason=state.failure if failed and state.failure else state.reason,
        message=state.failure_message if failed and state.failure else state.message,
        os=hello.os or os_hint or MISSING,
        arch=hello.arch or "",
        host=hello.host or "",
        cpu=num(cpu.percent),
        cpu_count=num(cpu.count) or (float(len(per_core)) if per_core else None),
        mem_used=num(mem.used),
        mem_total=num(mem.total),
        swap_used=num(mem.swap_used),
        swap_total=num(mem.swap_total),
        age=None if state.sample_time is None else max(0.0, now - state.sample_time),
        has_sample=state.sample is not None,
        retry_in=(max(0.0, state.retry_at - now) if state.retry_at is not None else None)
        if failed else None,
        sample=sample, hello=hello, store=store,
    )


@dataclass(frozen=True)
class Alert:
    level: Level
    node: str
    text: str


def lost_words(view: NodeView) -> str:
    """Why a lost node is down and when it is tried again, the same on every face:
    'refused · retry in 6s', 'refused · retrying'."""
    reason = view.reason or "lost"
    if view.retry_in is None:
        return reason
    if view.retry_in > 0.5:
        return f"{reason} · retry in {view.retry_in:.0f}s"
    return f"{reason} · retrying"


def alerts(views: list[NodeView], th: Thresholds) -> list[Alert]:
    """What the header warns about: a lost node, a GPU over temperature, swap in use, a
    filesystem running out of space, an interface with errors or drops."""
    out: list[Alert] = []
    for v in views:
        lost = v.status is NodeStatus.LOST
        if lost:
            out.append(Alert(Level.ALERT, v.name, f"{v.name} lost ({lost_words(v)})"))
        elif v.status is NodeStatus.STALE:
            out.append(Alert(Level.WARN, v.name, f"{v.name} stale"))
        for g in v.gpus:
            if g.temp is not None and g.temp >= th.gpu_temp_alert:
                out.append(Alert(Level.ALERT, v.name, f"{v.name} GPU{g.index} {g.temp:.0f}°C"))
        if v.swap_used and v.swap_used > 0 and not lost:
            out.append(Alert(Level.WARN, v.name, f"{v.name} swap {fmt_bytes(v.swap_used)}"))
        for fs in v.filesystems if not lost else ():
            pct = fs.free_pct
            if pct is None or fs.free is None:
                continue
            fs_level = (Level.ALERT if pct < th.disk_free_alert else
                        Level.WARN if pct < th.disk_free_warn else Level.OK)
            if fs_level is not Level.OK:
                out.append(Alert(fs_level, v.name, f"{v.name} {fs.mount} {fmt_bytes(fs.free)} "
                                                   f"free ({pct:.0f}%)"))
        for nic in v.nics if v.nic_trouble else ():
            if (nic.error_rate or nic.drop_rate) and not lost:
                what = []
                if nic.error_rate:
                    what.append(f"{nic.errors:.0f} errors")
                if nic.drop_rate:
                    what.append(f"{nic.drops:.0f} drops")
                out.append(Alert(Level.WARN, v.name, f"{v.name} {nic.name} {' '.join(what)}"))
    return out
