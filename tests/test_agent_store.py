"""The metrics store: flattening, rates from counters, bounded history, replay."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from saf.agents.protocol import FrameError

from saf.metrics import events as mev
from saf.metrics.store import MetricsStore, flatten


def hello(node: str = "n1", t: float = 100.0) -> mev.HelloReceived:
    frame = {"type": "hello", "protocol": 1, "collectors": {}}
    return mev.HelloReceived(node=node, frame=frame, raw=json.dumps(frame), time=t)


def sample(node: str = "n1", t: float = 101.0, seq: int = 0, rx: int = 0,
           nic: str = "eth0", cpu: float | None = 10.0, interval: float = 1.0):
    frame = {"type": "sample", "seq": seq, "time": t, "interval": interval,
             "cpu": {"percent": cpu, "per_core": [cpu, 0.0], "load": [0.5, 0.4, 0.3]},
             "memory": {"total": 1000, "used": 250, "percent": 25.0, "swap_total": 0,
                        "swap_used": 0},
             "nics": [{"name": nic, "rx_bytes": rx, "tx_bytes": 0, "mtu": 9000, "up": True,
                       "speed_mbps": None}],
             "gpus": [{"index": 0, "util": 50, "name": "x", "processes": []}]}
    return mev.SampleReceived(node=node, frame=frame, raw=json.dumps(frame), time=t + 0.01)


def test_flatten_names_and_skips_nulls():
    names = dict(flatten(sample(cpu=None).typed))
    assert "cpu.percent" not in names  # unmeasured: no point, not a zero
    assert names["cpu.core.1"] == 0.0
    assert names["load.15"] == 0.3
    assert names["mem.used"] == 250
    assert names["swap.total"] == 0
    assert names["nic.eth0.mtu"] == 9000
    assert names["nic.eth0.up"] == 1.0
    assert "nic.eth0.speed_mbps" not in names
    assert names["gpu.0.util"] == 50


def test_rates_from_counters_and_resets():
    store = MetricsStore()
    store.apply(hello())
    for i, rx in enumerate([1000, 3000, 7000, 500, 1500]):
        store.apply(sample(t=101.0 + i * 0.5, seq=i, rx=rx))
    rates = store.values("n1", "nic.eth0.rx_bytes/s")
    # 2000 B in 0.5 s, 4000 B in 0.5 s, reset (no rate, never negative), 1000 B in 0.5 s
    assert rates == [None, 4000.0, 8000.0, None, 2000.0]
    assert store.value("n1", "nic.eth0.rx_bytes") == 1500
    # A new agent (new hello) starts its counters over: no rate spans two agents.
    store.apply(hello(t=104.0))
    store.apply(sample(t=104.5, seq=0, rx=100))
    assert store.value("n1", "nic.eth0.rx_bytes/s") is None


def test_history_is_bounded_and_ten_minutes_fit():
    store = MetricsStore()
    assert store.capacity >= 600  # at least 10 minutes at 1 Hz
    store.apply(hello())
    for i in range(store.capacity + 50):
        store.apply(sample(t=101.0 + i, seq=i, rx=i * 10))
    series = store.series("n1", "cpu.percent")
    assert len(series) == store.capacity
    assert series[0][0] == 101.0 + 50 + 0.01
    assert series[-1][0] == 101.0 + store.capacity + 49.01
    assert len(store.series("n1", "cpu.percent", last=5)) == 5
    assert len(store.series("n1", "cpu.percent", since=series[-3][0])) == 3


def own_bytes() -> int:
    """Traced memory the store's code or this module's allocated and still holds. Not the
    process's whole traced memory: under xdist other threads of the worker (a fixture's SSH
    server, a Ray client) allocate meanwhile, and once made such a run fail (830 kB against
    174 kB early)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(True, "*/saf/metrics/*"), tracemalloc.Filter(True, __file__)])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def test_vanished_metrics_are_forgotten_and_memory_stays_flat():
    """Interfaces that come and go (containers' veths) do not grow the store forever."""
    store = MetricsStore(capacity=60, max_metrics=200)
    store.apply(hello())
    tracemalloc.start()
    for i in range(3000):
        store.apply(sample(t=101.0 + i, seq=i, rx=i, nic=f"veth{i // 10}"))
        if i == 1000:
            early = own_bytes()
    late = own_bytes()
    tracemalloc.stop()
    nics = {m.split(".")[1] for m in store.metrics("n1", "nic.")}
    assert len(nics) <= 60 // 10 + 8
    assert late < early * 1.5


def test_max_metrics_per_node():
    store = MetricsStore(capacity=10, max_metrics=20)
    store.apply(sample())
    frame = dict(sample().frame, cpu={"per_core": list(range(100))})
    store.apply(mev.SampleReceived(node="n1", frame=frame, raw="", time=200.0))
    assert len(store.metrics("n1")) == 20


def test_status_stale_and_bad_frames():
    store = MetricsStore()
    store.add_node("n1")
    assert store.node("n1").status == mev.NodeStatus.CONNECTING
    assert store.node("n1").stale()
    store.apply(hello(t=100.0))
    store.apply(sample(t=100.5))
    state = store.node("n1")
    assert state.status == mev.NodeStatus.UP
    assert not state.stale(now=101.0)
    assert state.stale(now=104.0)  # more than two intervals without a sample
    store.apply(mev.AgentStatus(node="n1", status=mev.NodeStatus.LOST, reason="exited",
                                message="the agent was killed", retry_in=0.5))
    assert store.lost("n1")
    assert state.stale(now=100.6)
    assert store.value("n1", "cpu.percent") == 10.0  # last good values kept
    store.apply(mev.FrameRejected(node="n1", reason="bad_json", message="x", raw="{"))
    store.apply(mev.FrameRejected(node="n1", reason="bad_json", message="x", raw="{"))
    assert state.bad_frames == {"bad_json": 2}
    snap = store.snapshot(now=101.0)
    assert snap["nodes"][0]["status"] == mev.NodeStatus.LOST
    assert snap["nodes"][0]["bad_frames"]


def test_recording_replays_into_the_same_store():
    """Events written as JSON lines and read back fill a store exactly like the live ones."""
    events = [hello()] + [sample(t=101.0 + i, seq=i, rx=i * 100) for i in range(5)] + [
        mev.FrameRejected(node="n1", reason="truncated", message="cut", raw='{"ty'),
        mev.AgentStatus(node="n1", status=mev.NodeStatus.LOST, reason="silent", message="quiet",
                        retry_in=1.0)]
    live, replayed = MetricsStore(), MetricsStore()
    lines = []
    for e in events:
        live.apply(e)
        lines.append(json.dumps(e.to_json()))
    for line in lines:
        replayed.apply(mev.event_from_json(json.loads(line)))
    assert replayed.snapshot(now=0) == live.snapshot(now=0)
    assert replayed.series("n1", "nic.eth0.rx_bytes/s") == live.series("n1",
                                                                       "nic.eth0.rx_bytes/s")


def test_a_newer_agents_fields_are_kept_as_sent_but_never_read():
    """docs/agent.md, "Frames from a newer agent": a field this saf does not declare is no
    metric and no bad frame (good or bad, it is unread), the declared ones are read as ever,
    and `saf top --json` still prints the frame as the node sent it."""
    store = MetricsStore()
    store.apply(hello())
    event = sample()
    frame = json.loads(event.raw)
    frame["gpus"][0]["hbm_temp"] = 61.0    # a reading added since
    frame["memory"]["cached"] = "lots"     # a value no check would pass, at a key not known
    frame["future"] = {"x": [1, "y"]}      # a section of its own
    store.apply(mev.SampleReceived(node="n1", frame=frame, raw=json.dumps(frame), time=102.0))
    state = store.node("n1")
    assert state.bad_frames == {}
    assert store.value("n1", "gpu.0.util") == 50
    assert store.value("n1", "mem.used") == 250
    assert not [m for m in store.metrics("n1") if "hbm_temp" in m or "cached" in m]
    sent = store.snapshot(now=102.0)["nodes"][0]["sample"]
    assert sent["gpus"][0]["hbm_temp"] == 61.0
    assert sent["future"] == {"x": [1, "y"]}


def test_an_event_is_checked_as_it_is_made():
    """An event read back from JSON (or made by hand) goes through the gate's check: a bad
    frame is a FrameError naming the field, not a value the store trips on later."""
    data = sample().to_json()
    data["frame"]["cpu"]["percent"] = "hot"
    with pytest.raises(FrameError, match=r"sample\.cpu\.percent: expected a number"):
        mev.event_from_json(data)
