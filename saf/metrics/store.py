"""The metrics store: the latest state of every node's agent and a bounded history per metric.

Widgets and `saf top` read it; only `apply(event)` writes it, so a live hub and a replayed
recording fill it the same way. Memory is bounded however long saf runs: each node keeps the
last `capacity` samples, a row of floats each (8 bytes a point; saf.metrics.history); a
metric not seen for a whole ring (an interface that went away) is dropped, and a node has at
most `max_metrics` metrics.

Metric names flatten a sample (see `flatten`): `cpu.percent`, `cpu.core.3`, `load.1`,
`mem.used`, `swap.percent`, `numa.0.mem_used`, `gpu.0.util`, `nic.eth0.rx_bps`,
`disk.sda.write_bps`. Counters (`nic.eth0.rx_bytes`, `disk.sda.read_bytes`,
`numa.1.numa_miss`, ...) also have a rate series named with `/s` appended, derived from
consecutive counter values and the agent's own sample times when read; a counter that goes
backwards (agent restarted, interface reset) yields no rate for that step, never a negative
one.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from msgspec import Struct
from msgspec.structs import astuple

from saf.events import Event
from saf.metrics.events import (
    AgentErrorReported,
    AgentStatus,
    FrameRejected,
    HelloReceived,
    NodeStatus,
    ReplyReceived,
    SampleReceived,
)
from saf.metrics.extract import CPU_KEYS, SECTIONS, Shape, named
from saf.metrics.frames import CpuSection, ErrorFrame, HelloFrame, ReplyFrame, SampleFrame
from saf.metrics.history import History

DEFAULT_CAPACITY = 900  # points per metric: 15 minutes at 1 Hz
MAX_METRICS = 4096      # per node
STALE_INTERVALS = 2.0   # a sample older than this many intervals is stale


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


_CORE_NAMES: list[str] = []  # "cpu.core.0", "cpu.core.1", ...: made once, not per sample
_CPU_KEYS = tuple((key, f"cpu.{key}") for key in CPU_KEYS)
_LOAD_NAMES = ("load.1", "load.5", "load.15")
_MEM_NAMES: dict[str, str] = {}  # memory field -> metric name (a few, bounded below)


def _core_name(i: int) -> str:
    if i >= MAX_METRICS:
        return f"cpu.core.{i}"
    while len(_CORE_NAMES) <= i:
        _CORE_NAMES.append(f"cpu.core.{len(_CORE_NAMES)}")
    return _CORE_NAMES[i]


def _mem_name(key: str) -> str:
    name = _MEM_NAMES.get(key)
    if name is None:
        name = f"swap.{key[5:]}" if key.startswith("swap_") else f"mem.{key}"
        if len(_MEM_NAMES) < 256:
            _MEM_NAMES[key] = name
    return name


def flatten(sample: SampleFrame) -> Iterator[tuple[str, float]]:
    """(metric name, value) for every number in a sample frame. Nulls are skipped: a value the
    node cannot measure has no point, not a zero."""
    names, values = flatten_lists(sample)
    return zip(names, values, strict=True)


def flatten_lists(sample: SampleFrame) -> tuple[list[str], list[float]]:
    """`flatten` as two lists, names and values: what the store takes, made with no tuple
    or generator step per value (a frame has about a hundred numbers, 64 nodes send one a
    second). Reads the gate's Struct, so only fields the protocol declares: a newer agent's
    reading has no metric until this saf declares it (saf.metrics.frames)."""
    names: list[str] = []
    values: list[float] = []
    name_, value_ = names.append, values.append
    if sample.cpu:
        _add_cpu(sample.cpu, names, values)
    if sample.memory:
        _numbers(sample.memory, None, "", _mem_name, name_, value_)
    for section, prefix, key in SECTIONS:
        items: list[Struct] = getattr(sample, section) or []
        for item in items:
            if named(item, key):
                _numbers(item, key, f"{prefix}.{getattr(item, key)}.", None, name_, value_)
    return names, values


def _add_cpu(cpu: CpuSection, names: list[str], values: list[float]) -> None:
    """The CPU's totals, each core's use and the load averages, in that order (the order
    is part of a node's shape, saf.metrics.extract)."""
    name_, value_ = names.append, values.append
    for key, name in _CPU_KEYS:
        v = _number(getattr(cpu, key))
        if v is not None:
            name_(name)
            value_(v)
    _add_cores(cpu.per_core or (), names, values)
    # A node may report fewer load averages than three (or none): name what is there.
    for name, value in zip(_LOAD_NAMES, cpu.load or (), strict=False):
        name_(name)
        value_(float(value))


def _add_cores(per_core: Sequence[float | None], names: list[str], values: list[float]) -> None:
    """Each core's use: all at once when none is null, else one by one."""
    cores = [float(v) for v in per_core if v is not None]
    if len(cores) == len(per_core) and len(per_core) <= MAX_METRICS:  # no nulls
        if len(_CORE_NAMES) < len(cores):
            _core_name(len(cores) - 1)
        names.extend(_CORE_NAMES[:len(cores)])
        values.extend(cores)
    else:  # nulls (unmeasured cores): one by one
        for i, core in enumerate(per_core):
            if core is not None:
                names.append(_core_name(i))
                values.append(float(core))


def _numbers(part: Struct, ident: str | None, base: str, naming: Callable[[str], str] | None,
             name_: Callable[[str], None], value_: Callable[[float], None]) -> None:
    """Every field of `part` that holds a number (bools as 0 and 1), but its `ident`, as
    `base` + field (or `naming(field)`)."""
    for field_name, v in zip(part.__struct_fields__, astuple(part), strict=True):
        t = type(v)
        if (t is float or t is int or t is bool) and field_name != ident:
            name_(naming(field_name) if naming is not None else base + field_name)
            value_(float(v))


@dataclass
class NodeState:
    """What the store knows of one node. Read it; only the store changes it."""

    name: str
    status: NodeStatus = NodeStatus.CONNECTING
    reason: str = ""
    message: str = ""
    retry_in: float | None = None
    # The last failure, kept while the link retries and until the node is up again, so a
    # dead node shows why (and when the next try is) instead of flickering to `connecting`.
    failure: str = ""
    failure_message: str = ""
    retry_at: float | None = None  # when the next try starts (the lost event's time + retry_in)
    since: float = field(default_factory=time.time)
    # The last hello and sample as the gate checked them (what every face reads), and as
    # sent (every key, a newer agent's too: what `saf top --json` prints).
    hello: HelloFrame | None = None
    sample: SampleFrame | None = None
    hello_sent: dict[str, Any] | None = None
    sample_sent: dict[str, Any] | None = None
    sample_time: float | None = None  # when saf received the last sample
    interval: float = 1.0
    samples: int = 0
    bad_frames: Counter[str] = field(default_factory=Counter)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    replies: deque[ReplyFrame] = field(default_factory=lambda: deque(maxlen=20))

    def stale(self, now: float | None = None) -> bool:
        """True when the last values are not live: the link is not up, or the last sample is
        older than two intervals."""
        if self.status != NodeStatus.UP or self.sample_time is None:
            return True
        now = time.time() if now is None else now
        return now - self.sample_time > STALE_INTERVALS * self.interval + 0.5

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        return {
            "node": self.name, "status": self.status, "reason": self.reason,
            "message": self.message, "stale": self.stale(now), "since": self.since,
            "hello": self.hello_sent, "sample": self.sample_sent,
            "sample_time": self.sample_time,
            "samples": self.samples, "bad_frames": dict(self.bad_frames),
            "errors": list(self.errors),
        }


class MetricsStore:
    """Latest state and bounded history of every node; fed only by `apply(event)`."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, max_metrics: int = MAX_METRICS) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        self.max_metrics = max_metrics
        self._nodes: dict[str, NodeState] = {}
        self._history: dict[str, History] = {}
        self._shapes: dict[str, Shape] = {}  # how each node's frames look, to read them fast

    # -- writing --------------------------------------------------------------------------
    def add_node(self, name: str) -> NodeState:
        """Make a node known (shown as connecting) before any event about it arrives."""
        if name not in self._nodes:
            self._nodes[name] = NodeState(name)
            self._history[name] = History(self.capacity, self.max_metrics)
        return self._nodes[name]

    def apply(self, event: Event) -> None:
        """Take one event into the store; events of other domains are ignored."""
        node = getattr(event, "node", None)
        if not isinstance(node, str):
            return
        typed = getattr(event, "typed", None)
        if isinstance(event, SampleReceived) and isinstance(typed, SampleFrame):
            state = self.add_node(node)
            frame = typed
            state.sample, state.sample_sent = frame, event.frame
            state.sample_time = event.time
            state.samples += 1
            if isinstance(frame.interval, float):  # in the protocol's range: the gate checked
                state.interval = frame.interval
            if state.status != NodeStatus.UP and state.hello is not None:
                state.status, state.reason, state.message = NodeStatus.UP, "", ""
            agent_time = frame.time if isinstance(frame.time, float) else None  # UNSET
            history = self._history[node]
            # The node's last frame shape reads this one at C speed; a new shape (or a frame
            # it cannot model) is flattened key by key, and its shape kept for the next.
            shape = self._shapes.get(node)
            values = shape.values(frame) if shape is not None else None
            if shape is not None and values is not None:
                history.append(event.time, agent_time, shape.names, values)
            else:
                names, flat = flatten_lists(frame)
                shape = Shape.of(frame, names, flat)
                if shape is not None:
                    self._shapes[node] = shape
                else:
                    self._shapes.pop(node, None)
                history.append(event.time, agent_time, names, flat)
        elif isinstance(event, HelloReceived) and isinstance(typed, HelloFrame):
            state = self.add_node(node)
            state.hello, state.hello_sent = typed, event.frame
            state.status, state.reason, state.message = NodeStatus.UP, "", ""
            state.retry_in = None
            state.failure, state.failure_message, state.retry_at = "", "", None
            state.since = event.time
            # A new agent's counters start over: rates must not span two agents.
            self._history[node].restart()
        elif isinstance(event, AgentStatus):
            state = self.add_node(node)
            if event.status != state.status:
                state.since = event.time
            state.status, state.reason = event.status, event.reason
            state.message, state.retry_in = event.message, event.retry_in
            if event.status == NodeStatus.LOST:
                state.failure, state.failure_message = event.reason, event.message
                state.retry_at = event.time + event.retry_in if event.retry_in else None
        elif isinstance(event, FrameRejected):
            self.add_node(node).bad_frames[event.reason] += 1
        elif isinstance(event, AgentErrorReported) and isinstance(typed, ErrorFrame):
            self.add_node(node).errors.append(typed.message or "")
        elif isinstance(event, ReplyReceived) and isinstance(typed, ReplyFrame):
            self.add_node(node).replies.append(typed)

    # -- reading --------------------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self._nodes)

    def node(self, name: str) -> NodeState:
        """The state of a node (KeyError when the store has never heard of it)."""
        return self._nodes[name]

    def metrics(self, node: str, prefix: str = "") -> list[str]:
        """The metric names a node has, optionally only those starting with `prefix`."""
        history = self._history.get(node)
        if history is None:
            return []
        return sorted(n for n in history.names() if n.startswith(prefix))

    def value(self, node: str, metric: str) -> float | None:
        """The metric's value in the node's latest sample (None when it had none)."""
        history = self._history.get(node)
        return history.latest(metric) if history else None

    def series(self, node: str, metric: str, *, last: int | None = None,
               since: float | None = None) -> list[tuple[float, float | None]]:
        """(receive time, value or None) points, oldest first: the last `last` samples, or
        those received at or after `since`, or everything kept."""
        history = self._history.get(node)
        return history.series(metric, last, since) if history else []

    def values(self, node: str, metric: str, last: int | None = None) -> list[float | None]:
        """Just the values of `series`, for sparklines."""
        history = self._history.get(node)
        return history.values(metric, last) if history else []

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Every node's state and last sample, as JSON (what `saf top --once --json` prints)."""
        now = time.time() if now is None else now
        return {"time": now, "nodes": [s.to_json(now) for s in self._nodes.values()]}

    def lost(self, name: str) -> bool:
        state = self._nodes.get(name)
        return state is not None and state.status == NodeStatus.LOST
