"""The cluster's figures as Prometheus metrics, read from the hub's store when scraped.

`SafCollector` is a prometheus_client custom collector: every scrape reads the metrics store
(saf.metrics.store, through saf.metrics.view as every face does) and the signal book as they
are at that moment; nothing is pushed per sample, so a scrape costs what one screen redraw
does and a node's series are exactly what the cockpit shows.

Names follow Prometheus' conventions: a `saf_` prefix, base units in the name (`_ratio` for
0..1, `_bytes`, `_celsius`, `_watts`, `_seconds`), `_total` on counters. Labels: `node` and
`role` (the inventory's roles, comma-joined) on every node series, plus `gpu` and `gpu_name`,
`interface`, or `numa_node`.

A node that is not up (lost, connecting, stopped, or stale: samples stopped coming) says so
with `saf_node_up 0` and `saf_node_state`, and its figures are left out rather than repeated
at their last value: a graph shows a gap, an alert on `saf_node_up == 0` fires. The counts saf
keeps itself (samples and bad frames received) are always there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from saf.inventory.model import Node
from saf.metrics.frames import NicItem, NumaNode
from saf.metrics.store import MetricsStore
from saf.metrics.view import NodeStatus, NodeView, node_view, num
from saf.signals.feed import SignalFeed

NODE = ["node", "role"]
GPU = [*NODE, "gpu", "gpu_name"]
NIC = [*NODE, "interface"]
NUMA = [*NODE, "numa_node"]
FS = [*NODE, "mountpoint", "device", "fstype"]  # node_exporter's label names
STATES = [s.value for s in NodeStatus]
_NO_NIC, _NO_NUMA = NicItem(), NumaNode()  # an item the sample lacks: no counters


class _Families:
    """The metric families of one scrape, made on first use and yielded in that order."""

    def __init__(self) -> None:
        self._made: dict[str, Metric] = {}

    def gauge(self, name: str, doc: str, labels: Sequence[str]) -> GaugeMetricFamily:
        family = self._made.get(name)
        if family is None:
            family = self._made[name] = GaugeMetricFamily(name, doc, labels=list(labels))
        assert isinstance(family, GaugeMetricFamily)
        return family

    def counter(self, name: str, doc: str, labels: Sequence[str]) -> CounterMetricFamily:
        family = self._made.get(name)
        if family is None:
            family = self._made[name] = CounterMetricFamily(name, doc, labels=list(labels))
        assert isinstance(family, CounterMetricFamily)
        return family

    def __iter__(self) -> Iterator[Metric]:
        return iter(self._made.values())


def _put(family: GaugeMetricFamily | CounterMetricFamily, labels: list[str],
         value: float | None) -> None:
    """One sample, unless the node did not measure it (None: no series, not a zero)."""
    if value is not None and value == value:  # not NaN
        family.add_metric(labels, value)


class SafCollector(Collector):
    """Every node's and the signal stream's figures at scrape time (see the module)."""

    def __init__(self, store: MetricsStore, nodes: Iterable[Node],
                 signal_feed: SignalFeed | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.nodes = tuple(nodes)
        self.signal_feed = signal_feed
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        out = _Families()
        now = self.clock()
        known = set(self.store.nodes)
        for node in self.nodes:
            if node.name in known:
                self._node(out, node, node_view(self.store, node.name, now, node.os))
            else:  # nothing heard of it yet
                self._unheard(out, node)
        if self.signal_feed is not None:
            self._signals(out, self.signal_feed)
        return out

    # -- a node -----------------------------------------------------------------------------
    def _state(self, out: _Families, base: list[str], status: NodeStatus) -> None:
        out.gauge("saf_node_up", "1 when the node's agent is up and its samples are fresh, "
                  "else 0 (lost, connecting, stopped or stale)", NODE).add_metric(
                      base, int(status is NodeStatus.UP))
        state = out.gauge("saf_node_state", "The node's state: 1 for the one it is in",
                          [*NODE, "state"])
        for name in STATES:
            state.add_metric([*base, name], int(status.value == name))

    def _unheard(self, out: _Families, node: Node) -> None:
        self._state(out, [node.name, ",".join(node.roles)], NodeStatus.CONNECTING)

    def _node(self, out: _Families, node: Node, view: NodeView) -> None:
        base = [node.name, ",".join(node.roles)]
        up = view.status is NodeStatus.UP
        self._state(out, base, view.status)
        out.gauge("saf_node_info", "Always 1; the labels say what the agent reported",
                  [*NODE, "host", "os", "arch"]).add_metric(
                      [*base, view.host, view.os, view.arch], 1)
        st = self.store.node(node.name)
        out.counter("saf_agent_samples", "Samples received from the node's agent",
                    NODE).add_metric(base, st.samples)
        bad = out.counter("saf_agent_bad_frames", "Frames from the node's agent that were "
                          "refused, by reason", [*NODE, "reason"])
        for reason, count in sorted(st.bad_frames.items()):
            bad.add_metric([*base, reason], count)
        if view.age is not None:
            out.gauge("saf_node_sample_age_seconds", "Seconds since the node's last sample",
                      NODE).add_metric(base, view.age)
        if not up:
            return  # figures of a node that is not up are not shown as if current
        self._host(out, base, view)
        # A node may report two GPUs with one index (or two NICs or NUMA nodes with one
        # name): the same labels twice make a scrape Prometheus rejects whole. The first is
        # kept, the rest counted in saf_series_dropped.
        dropped = {"gpu": 0, "nic": 0, "numa": 0, "filesystem": 0}
        seen: set[tuple[str, str]] = set()

        def first(kind: str, key: str) -> bool:
            if (kind, key) in seen:
                dropped[kind] += 1
                return False
            seen.add((kind, key))
            return True

        for gpu in view.gpus:
            if first("gpu", str(gpu.index)):
                self._gpu(out, [*base, str(gpu.index), gpu.name], gpu)
        raw_nics = {n.name: n for n in view.sample.nics or () if n.name}
        for nic in view.nics:
            if first("nic", nic.name):
                self._nic(out, [*base, nic.name], nic, raw_nics.get(nic.name, _NO_NIC))
        raw_numa = {n.node: n for n in view.sample.numa or () if isinstance(n.node, int)}
        for numa in view.numa:
            if first("numa", str(numa.node)):
                self._numa(out, [*base, str(numa.node)], numa,
                           raw_numa.get(numa.node, _NO_NUMA))
        for fs in view.filesystems:
            if first("filesystem", fs.mount) and not fs.missing:
                labels = [*base, fs.mount, fs.device, fs.fstype]
                _put(out.gauge("saf_filesystem_size_bytes", "Filesystem size", FS), labels,
                     fs.total)
                _put(out.gauge("saf_filesystem_used_bytes", "Filesystem space in use", FS),
                     labels, fs.used)
                _put(out.gauge("saf_filesystem_free_bytes", "Filesystem space an ordinary "
                               "user may still write (df's Avail)", FS), labels, fs.free)
        family = out.gauge("saf_series_dropped", "Series of the node's last sample left out "
                           "because another had the same labels (a GPU index, interface or "
                           "NUMA node reported twice), by kind", [*NODE, "kind"])
        for kind, count in dropped.items():
            family.add_metric([*base, kind], count)

    def _host(self, out: _Families, base: list[str], view: NodeView) -> None:
        cpu = view.cpu
        _put(out.gauge("saf_node_cpu_ratio", "CPU busy, all cores, 0 to 1", NODE), base,
             None if cpu is None else cpu / 100.0)
        _put(out.gauge("saf_node_cpu_cores", "Logical CPUs", NODE), base, view.cpu_count)
        for window, value in zip(("1", "5", "15"), view.load, strict=False):
            _put(out.gauge(f"saf_node_load{window}", f"Load average over {window} minutes",
                           NODE), base, value)
        _put(out.gauge("saf_node_memory_used_bytes", "Memory in use", NODE), base,
             view.mem_used)
        _put(out.gauge("saf_node_memory_total_bytes", "Memory installed", NODE), base,
             view.mem_total)
        _put(out.gauge("saf_node_swap_used_bytes", "Swap in use", NODE), base, view.swap_used)
        _put(out.gauge("saf_node_swap_total_bytes", "Swap configured", NODE), base,
             view.swap_total)

    def _gpu(self, out: _Families, labels: list[str], gpu: Any) -> None:
        util = gpu.util
        _put(out.gauge("saf_gpu_utilization_ratio", "GPU busy, 0 to 1", GPU), labels,
             None if util is None else util / 100.0)
        if not gpu.unified:  # an Apple GPU's memory is the system's: saf_node_memory_*
            _put(out.gauge("saf_gpu_memory_used_bytes", "GPU memory in use", GPU), labels,
                 gpu.mem_used)
            _put(out.gauge("saf_gpu_memory_total_bytes", "GPU memory installed", GPU),
                 labels, gpu.mem_total)
        # AMD's GTT: system RAM the GPU maps, also counted in saf_node_memory_*.
        _put(out.gauge("saf_gpu_gtt_used_bytes", "System memory the GPU has mapped (AMD GTT)",
                       GPU), labels, gpu.gtt_used)
        _put(out.gauge("saf_gpu_gtt_total_bytes", "System memory the GPU may map (AMD GTT)",
                       GPU), labels, gpu.gtt_total)
        _put(out.gauge("saf_gpu_temperature_celsius", "GPU temperature", GPU), labels,
             gpu.temp)
        _put(out.gauge("saf_gpu_power_watts", "GPU power draw", GPU), labels, gpu.power)
        _put(out.gauge("saf_gpu_power_limit_watts", "GPU power limit", GPU), labels,
             gpu.power_limit)

    def _nic(self, out: _Families, labels: list[str], nic: Any, raw: NicItem) -> None:
        if nic.up is not None:
            out.gauge("saf_nic_up", "1 when the interface is up", NIC).add_metric(
                labels, int(nic.up))
        _put(out.gauge("saf_nic_receive_bytes_per_second", "Bytes received per second, "
                       "over the last sample", NIC), labels, nic.rx)
        _put(out.gauge("saf_nic_transmit_bytes_per_second", "Bytes sent per second, over "
                       "the last sample", NIC), labels, nic.tx)
        _put(out.gauge("saf_nic_errors_per_second", "Receive and transmit errors per "
                       "second, over the last sample", NIC), labels, nic.error_rate)
        for field, name, doc in (
                ("rx_bytes", "saf_nic_receive_bytes", "Bytes received since the node booted"),
                ("tx_bytes", "saf_nic_transmit_bytes", "Bytes sent since the node booted"),
                ("rx_errors", "saf_nic_receive_errors", "Receive errors since the node booted"),
                ("tx_errors", "saf_nic_transmit_errors", "Transmit errors since the node "
                 "booted"),
                ("rx_drops", "saf_nic_receive_drops", "Received packets dropped since the "
                 "node booted"),
                ("tx_drops", "saf_nic_transmit_drops", "Packets to send dropped since the "
                 "node booted")):
            _put(out.counter(name, doc, NIC), labels, num(getattr(raw, field)))
        _put(out.gauge("saf_nic_mtu_bytes", "The interface's MTU", NIC), labels, nic.mtu)
        _put(out.gauge("saf_nic_speed_bits_per_second", "The link's speed", NIC), labels,
             None if nic.speed is None else nic.speed * 1e6)

    def _numa(self, out: _Families, labels: list[str], numa: Any, raw: NumaNode) -> None:
        _put(out.gauge("saf_numa_memory_used_bytes", "Memory in use on the NUMA node", NUMA),
             labels, numa.mem_used)
        _put(out.gauge("saf_numa_memory_total_bytes", "Memory of the NUMA node", NUMA),
             labels, numa.mem_total)
        for field, name, doc in (
                ("numa_hit", "saf_numa_hit", "Allocations meant for and made on this node"),
                ("numa_miss", "saf_numa_miss", "Allocations made here though meant for "
                 "another node"),
                ("numa_foreign", "saf_numa_foreign", "Allocations meant for this node but "
                 "made on another")):
            _put(out.counter(name, doc, NUMA), labels, num(getattr(raw, field)))

    # -- the signal stream ------------------------------------------------------------------
    def _signals(self, out: _Families, feed: SignalFeed) -> None:
        book = feed.book
        for endpoint, state in sorted(feed.sources.items()):
            out.gauge("saf_signal_source_up", "1 while saf is subscribed to the endpoint",
                      ["endpoint"]).add_metric([endpoint], int(state.startswith("connected")))
        out.counter("saf_signal_frames", "Signal frames received (good ones)",
                    []).add_metric([], book.total_count())
        out.gauge("saf_signal_frames_per_second", "Signal frames per second, over the last "
                  "few seconds", []).add_metric([], book.total_rate)
        out.gauge("saf_signal_symbols", "Symbols seen on the stream", []).add_metric(
            [], len(book.symbols))
        bad = out.counter("saf_signal_bad_frames", "Signal frames refused, by reason",
                          ["reason"])
        for reason, count in sorted(book.bad.items()):
            bad.add_metric([reason], count)
        rate = out.gauge("saf_signal_symbol_frames_per_second", "Frames per second of one "
                         "symbol", ["symbol"])
        for name, symbol in sorted(book.symbols.items()):
            rate.add_metric([name], symbol.rate)
        latency = book.latency()
        if latency is not None:
            family = out.gauge("saf_signal_latency_seconds", "Receive time minus the "
                               "publisher's stamp (includes clock skew), by quantile",
                               ["quantile"])
            for q, value in (("0.5", latency.p50_s), ("0.9", latency.p90_s),
                             ("0.99", latency.p99_s), ("1", latency.max_s)):
                family.add_metric([q], value)


def registry(store: MetricsStore, nodes: Iterable[Node],
             signal_feed: SignalFeed | None = None,
             clock: Callable[[], float] = time.time) -> CollectorRegistry:
    """A registry holding only saf's collector (no process or Python metrics of saf)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SafCollector(store, nodes, signal_feed, clock))
    return reg
