"""`saf top` as a user runs it, against the loopback cluster."""

from __future__ import annotations

import json

import psutil


def test_top_once_json(cluster):
    """One JSON object per node with its hello and one real sample."""
    result = cluster.saf("top", "--once", "--json", "--interval", "0.3")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["node"] for r in rows] == ["alpha", "beta", "gamma"]
    for row in rows:
        assert row["status"] == "up" and not row["stale"]
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
    assert result.returncode == 2 and "--once" in result.stderr
