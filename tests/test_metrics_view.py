"""The core's view model: it reads only what the agent's protocol defines, every key a real
agent writes is in the protocol, and statuses and figures are written one way."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from saf.agents import protocol
from saf.agents.context import Context
from saf.agents.main import Agent

from saf.format import MISSING, fmt_bytes, fmt_rate, sparkline
from saf.metrics import events as mev
from saf.metrics.store import MetricsStore
from saf.metrics.view import NodeStatus, is_loopback, node_view

VIEW = Path(__file__).resolve().parents[1] / "saf" / "metrics" / "view.py"
FRAME_TYPES = (protocol.HelloFrame, protocol.SampleFrame)


def protocol_fields() -> set[str]:
    """Every field name of every TypedDict reachable from the frames."""
    seen: set[str] = set()
    todo: list[object] = list(FRAME_TYPES)
    done: dict[int, object] = {}  # holds each kind, so its id is not reused by a new one
    while todo:
        kind = todo.pop()
        if id(kind) in done:
            continue
        done[id(kind)] = kind
        if typing.is_typeddict(kind):
            hints = typing.get_type_hints(kind)
            seen.update(hints)
            todo.extend(hints.values())
        else:
            todo.extend(typing.get_args(kind))
    return seen


def keys_read_by_the_view() -> set[str]:
    """String keys the view model reads: `x.get("key")` and `x["key"]`."""
    keys = set()
    for node in ast.walk(ast.parse(VIEW.read_text())):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get" and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            keys.add(node.args[0].value)
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
              and isinstance(node.slice.value, str)):
            keys.add(node.slice.value)
    return keys


def test_the_view_reads_only_fields_the_protocol_defines():
    """The view reads the gate's Structs by attribute, never a frame by key: a field it names
    is one saf.metrics.frames declares (mypy checks it; test_agent_frames keeps the Structs
    equal to the protocol), and a key a newer agent adds is never read."""
    assert keys_read_by_the_view() - protocol_fields() == set()
    assert keys_read_by_the_view() == set()


def test_every_key_a_real_agent_writes_is_in_the_protocol():
    """This machine's agent, its real collectors: hello and two samples."""
    agent = Agent(Context(cluster_addresses={"127.0.0.1"}), interval=0.2)
    try:
        frames = [agent.start(), agent.sample(), agent.sample()]
    finally:
        agent.close()
    fields = protocol_fields()

    def keys(value: object) -> set[str]:
        if isinstance(value, dict):
            out = set()
            for k, v in value.items():
                # `collectors`, `modules` and `missing` are keyed by name, not by field.
                out.add(k)
                if k not in ("collectors", "modules", "missing"):
                    out |= keys(v)
                elif k == "collectors":
                    for entry in v.values():
                        out |= keys(entry)
            return out
        if isinstance(value, list):
            return set().union(*(keys(v) for v in value)) if value else set()
        return set()

    written = set().union(*(keys(f) for f in frames))
    assert {"cpu", "memory", "nics", "per_core", "rx_bps"} <= written
    assert written - fields == set()


def test_statuses_are_one_enum():
    store = MetricsStore()
    store.add_node("a")
    assert node_view(store, "a", 0.0).status is NodeStatus.CONNECTING
    store.apply(mev.AgentStatus(node="a", status=mev.NodeStatus.UP, time=1.0))
    store.apply(mev.SampleReceived(node="a", frame={"type": "sample", "time": 1.0,
                                                    "interval": 1.0, "cpu": {"percent": 5.0}},
                                   raw="", time=1.0))
    assert node_view(store, "a", 1.5).status is NodeStatus.UP
    assert node_view(store, "a", 60.0).status is NodeStatus.STALE
    store.apply(mev.AgentStatus(node="a", status=mev.NodeStatus.LOST, reason="exited", time=61.0))
    view = node_view(store, "a", 61.0)
    assert (view.status, view.reason, view.cpu) == (NodeStatus.LOST, "exited", 5.0)


def test_one_way_to_write_a_figure():
    assert (fmt_bytes(1536), fmt_bytes(None), fmt_bytes(3 * 1024**5)) == ("1.5K", MISSING, "3.0P")
    assert (fmt_rate(117.5e6), fmt_rate(1.2e12)) == ("940M", "9.6T")
    assert sparkline([0.0, 50.0, 100.0, None], 5, top=100.0) == " ▁▄█ "
    assert [is_loopback(n) for n in ("lo", "lo0", "lowpan0", "eth0")] == [True, True, False,
                                                                          False]


def test_a_dead_node_keeps_its_reason_and_a_countdown_while_it_retries():
    """refused, retry in 6 s, trying again, refused again: the node reads lost with its
    reason all along (never `connecting` in between), the countdown counts down, and the
    alert line names every node that is down; a hello clears it."""
    from saf.metrics.thresholds import Thresholds
    from saf.metrics.view import alerts, lost_words

    store = MetricsStore()
    for name in ("a", "b", "c"):
        store.add_node(name)
    for name in ("b", "c"):
        store.apply(mev.AgentStatus(node=name, status=mev.NodeStatus.CONNECTING, time=99.0))
        store.apply(mev.AgentStatus(node=name, status=mev.NodeStatus.LOST, reason="refused",
                                    message="connection refused", retry_in=6.0, time=100.0))
    store.apply(mev.HelloReceived(node="a", frame={"type": "hello", "protocol": 1},
                                  raw="{}", time=100.0))
    words = []
    for now in (100.2, 103.0, 105.9):
        view = node_view(store, "b", now)
        assert view.status is NodeStatus.LOST
        assert view.reason == "refused"
        words.append(lost_words(view))
    assert words == ["refused · retry in 6s", "refused · retry in 3s", "refused · retrying"]
    # the retry
    store.apply(mev.AgentStatus(node="b", status=mev.NodeStatus.CONNECTING, time=106.0))
    trying = node_view(store, "b", 106.1)
    assert trying.status is NodeStatus.LOST
    assert lost_words(trying) == "refused · retrying"
    views = [node_view(store, n, 106.1) for n in ("a", "b", "c")]
    assert [a.text for a in alerts(views, Thresholds())] == [
        "b lost (refused · retrying)", "c lost (refused · retrying)"]
    store.apply(mev.HelloReceived(node="b", frame={"type": "hello", "protocol": 1},
                                  raw="{}", time=106.5))
    back = node_view(store, "b", 106.6)
    assert back.status is NodeStatus.UP
    assert back.reason == ""
    assert back.retry_in is None


def test_a_sparkline_cell_is_the_highest_value_of_its_bucket():
    """sparkline's own bucketing gives what `downsample` (the graphs' (min, max) buckets)
    gives for the highest value of each, for any length, gaps and scale."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from saf.format import BLOCKS, downsample, scale_of

    def reference(values, width, top):
        points = downsample(values, width)
        scale = scale_of(points, top)
        cells = [" " if p is None else BLOCKS[1] if scale <= 0 else
                 BLOCKS[max(int(round(min(max(p[1] / scale, 0.0), 1.0) * 8)), 1)]
                 for p in points]
        return "".join(cells).rjust(width)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(st.none(), st.floats(-10, 1e6, allow_nan=False)), max_size=150),
           st.integers(1, 20), st.sampled_from([None, 100.0]))
    def check(values, width, top):
        assert sparkline(values, width, top=top) == reference(values, width, top)

    check()


def test_net_in_and_out_leave_loopback_out_even_as_the_cluster_interface():
    """This machine's agent as the demo runs it (the cluster on 127.0.0.1, so `lo` is the
    cluster interface), with traffic on loopback between two samples: the node's NET IN/OUT
    total is every other interface's, never `lo`'s, as help says."""
    import socket

    agent = Agent(Context(cluster_addresses={"127.0.0.1"}), interval=0.2)
    store = MetricsStore()
    store.add_node("n")
    try:
        agent.start()
        agent.sample()
        with socket.create_server(("127.0.0.1", 0)) as server:
            with socket.create_connection(server.getsockname()) as client:
                peer, _ = server.accept()
                with peer:
                    for _ in range(64):  # 4 MiB, a piece at a time: one thread sends and reads
                        client.sendall(b"x" * 65536)
                        got = 0
                        while got < 65536:
                            got += len(peer.recv(65536))
        frame = agent.sample()
    finally:
        agent.close()
    store.apply(mev.SampleReceived(node="n", frame=frame, raw="", time=frame["time"]))
    view = node_view(store, "n", frame["time"])
    lo = next(n for n in view.nics if n.name == "lo")
    assert lo.cluster
    assert lo.rx
    assert lo.rx > 1_000_000
    others = [n for n in view.nics if not n.loopback]
    rx = [n.rx for n in others if n.rx is not None]
    tx = [n.tx for n in others if n.tx is not None]
    assert view.net_in == (sum(rx) if rx else None)
    assert view.net_out == (sum(tx) if tx else None)
