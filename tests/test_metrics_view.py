"""The core's view model: it reads only what the agent's protocol defines, every key a real
agent writes is in the protocol, and statuses and figures are written one way."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from saf.agents import protocol
from saf.agents.context import Context
from saf.agents.main import Agent
from saf.metrics import events as mev
from saf.metrics.format import MISSING, fmt_bytes, fmt_rate, sparkline
from saf.metrics.store import MetricsStore
from saf.metrics.view import NodeStatus, is_loopback, node_view

VIEW = Path(__file__).resolve().parents[1] / "saf" / "metrics" / "view.py"
FRAME_TYPES = (protocol.HelloFrame, protocol.SampleFrame)


def protocol_fields() -> set[str]:
    """Every field name of every TypedDict reachable from the frames."""
    seen: set[str] = set()
    todo: list[object] = list(FRAME_TYPES)
    done: set[int] = set()
    while todo:
        kind = todo.pop()
        if id(kind) in done:
            continue
        done.add(id(kind))
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
    read = keys_read_by_the_view()
    assert {"util", "rx_bps", "numa_hit_rate", "collectors"} <= read  # the walk finds them
    assert read - protocol_fields() == set()


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
    store.apply(mev.AgentStatus(node="a", status=mev.UP, time=1.0))
    store.apply(mev.SampleReceived(node="a", frame={"type": "sample", "time": 1.0,
                                                    "interval": 1.0, "cpu": {"percent": 5.0}},
                                   raw="", time=1.0))
    assert node_view(store, "a", 1.5).status is NodeStatus.UP
    assert node_view(store, "a", 60.0).status is NodeStatus.STALE
    store.apply(mev.AgentStatus(node="a", status=mev.LOST, reason="exited", time=61.0))
    view = node_view(store, "a", 61.0)
    assert (view.status, view.reason, view.cpu) == (NodeStatus.LOST, "exited", 5.0)


def test_one_way_to_write_a_figure():
    assert (fmt_bytes(1536), fmt_bytes(None), fmt_bytes(3 * 1024**5)) == ("1.5K", MISSING, "3.0P")
    assert (fmt_rate(117.5e6), fmt_rate(1.2e12)) == ("940M", "9.6T")
    assert sparkline([0.0, 50.0, 100.0, None], 5, top=100.0) == " ▁▄█ "
    assert [is_loopback(n) for n in ("lo", "lo0", "lowpan0", "eth0")] == [True, True, False,
                                                                          False]
