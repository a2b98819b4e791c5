"""`saf top` as a user runs it, against the loopback cluster."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def test_top_once_json(cluster):
    """One JSON object per node with its hello and one real sample."""
    result = cluster.saf("top", "--once", "--json", "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["node"] for r in rows] == ["alpha", "beta", "gamma"]
    for row in rows:
        assert row["status"] == "up"
        assert not row["stale"]
        assert row["sample"]["memory"]["total"] == psutil.virtual_memory().total
        assert row["hello"]["collectors"]["cpu"]["ok"]


def test_top_once_table_and_a_dead_node(asyncssh_cluster, tmp_path):
    """The table names every node; a node whose port answers nothing is shown lost with its
    reason, and the command exits 1."""
    import tomllib

    import tomli_w

    from tests.helpers.servers import free_port
    data = tomllib.loads(asyncssh_cluster.inventory.read_text())
    data["nodes"].append({"name": "ghost", "host": "127.0.0.1", "port": free_port()})
    inv = tmp_path / "saf.toml"
    inv.write_text(tomli_w.dumps(data))
    from dataclasses import replace
    cluster = replace(asyncssh_cluster, inventory=inv)
    result = cluster.saf("top", "--once", "--interval", "0.3", COLUMNS="200")
    assert result.returncode == 1
    for name in ("alpha", "beta", "gamma", "ghost"):
        assert name in result.stdout
    assert "lost: refused" in result.stdout
    assert "ghost: connection refused" in result.stdout


def test_top_json_needs_once(cluster):
    result = cluster.saf("top", "--json")
    assert result.returncode == 2
    assert "--once" in result.stderr


def test_top_drops_columns_by_priority_and_never_squeezes_a_cell():
    """A long lost reason at 140 columns, then a narrow terminal: every shown cell is whole
    (no `10…` grid); columns go by priority, one priority at a time; the message has its own
    line."""
    from rich.console import Console

    from saf.metrics import events as mev
    from saf.metrics.store import MetricsStore
    from saf.recording import load_recording
    from saf.render.top_view import COLUMNS, problems, top_table

    recording = load_recording(FRAMES / "healthy-3-nodes.jsonl")
    store = MetricsStore()
    for event in recording.events:
        store.apply(event)
    store.apply(mev.AgentStatus(node="gamma", status=mev.NodeStatus.LOST, reason="error",
                                message="RuntimeError: " + "something went wrong " * 12,
                                retry_in=15.0, time=recording.end))
    widths = {}
    for width in (140, 100, 70):
        console = Console(width=width, record=True, color_system=None)
        table = top_table(store, ["alpha", "beta", "gamma"], recording.end, width=width)
        console.print(table)
        for line in problems(store, ["gamma"]):
            console.print(line)
        text = console.export_text()
        rows = text.splitlines()
        assert [r.split()[0] for r in rows[1:4]] == ["alpha", "beta", "gamma"]
        assert "…" not in "".join(rows[1:3])  # the healthy rows: nothing cut
        assert all(len(r) <= width for r in rows)
        assert "something went wrong something" in text  # the whole message, on its own
        widths[width] = len(table.columns)
    assert len(COLUMNS) >= widths[140] > widths[100] > widths[70] >= 4
