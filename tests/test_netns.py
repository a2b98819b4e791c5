"""The namespaced test hosts themselves (tests/helpers/netns.py): saf reaches each node over
its own veth, the agent there reports that veth as its cluster interface, MTU and link changes
act on the real path, and nothing is left behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from typing import Any

import pytest

from saf.agentlink.node_links import NodeLinks
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.metrics.events import SampleReceived
from tests.helpers.netns import IP, NetnsCluster, netns_skip_reason
from tests.helpers.own_machine import own_machine_skip_reason


def test_each_node_is_reached_on_its_own_address(netns_cluster):
    """`saf exec` on every node runs inside that node's namespace: it sees its own eth0
    address and SSH says it was reached there."""
    done = netns_cluster.saf("exec", "--on", "all", "--json",
                             "ip -4 -o addr show dev eth0; echo conn $SSH_CONNECTION")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for node in netns_cluster.nodes:
        assert f"inet {netns_cluster.address(node)}/24" in text
        assert f"{netns_cluster.address(node)} {netns_cluster.ports[node]}" in text


def test_mtu_and_link_act_on_the_real_path(netns_cluster):
    """A don't-fragment ping of 8972 bytes passes only when every hop carries 9000, and a
    node whose bridge port is down cannot be pinged."""
    net = netns_cluster
    beta = net.address("beta")

    def df_ping(size: int) -> int:
        return net.exec("alpha", ["ping", "-c", "1", "-W", "1", "-M", "do", "-s", str(size),
                                  beta], check=False).returncode

    assert df_ping(1472) == 0
    try:
        net.set_mtu("alpha", 9000)
        net.set_mtu("beta", 9000, end="node")  # beta's bridge port stays at 1500
        assert (net.mtu("alpha"), net.mtu("beta"), net.mtu("beta", "bridge")) == \
            (9000, 9000, 1500)
        assert df_ping(8972) != 0
        net.set_mtu("beta", 9000, end="bridge")
        assert df_ping(8972) == 0
    finally:
        net.set_mtu("alpha", 1500)
        net.set_mtu("beta", 1500)
    net.link_down("beta")
    try:
        assert df_ping(56) != 0
    finally:
        net.link_up("beta")
    assert df_ping(56) == 0


async def test_the_agent_reports_its_veth_as_the_cluster_interface(netns_cluster):
    """The real agent, deployed over SSH into each namespace, sees only that namespace's
    interfaces and marks eth0 (the address saf reached it on) as the cluster's."""
    inv = load_inventory(netns_cluster.inventory_path)
    samples: dict[str, dict] = {}
    every_node = asyncio.Event()

    def keep(event) -> None:
        if isinstance(event, SampleReceived):
            samples[event.node] = event.frame
            if len(samples) == len(inv.nodes):
                every_node.set()

    async with Fleet(inv) as fleet:
        hub = NodeLinks(fleet, inv.nodes, keep, interval=0.3)
        await hub.start()
        try:
            async with asyncio.timeout(60):
                await every_node.wait()
        finally:
            await hub.stop()
    for node in netns_cluster.nodes:
        nics = {n["name"]: n for n in samples[node]["nics"]}
        assert set(nics) == {"lo", "eth0"}
        assert nics["eth0"]["cluster"] is True
        assert netns_cluster.address(node) in nics["eth0"]["addresses"]
        assert nics["eth0"]["mtu"] == 1500


@pytest.mark.skipif(netns_skip_reason() is not None, reason=str(netns_skip_reason()))
def test_close_leaves_nothing(tmp_path):
    """A cluster whose test failed still takes its namespaces, links, servers and every
    process started in them away (here a sleeper that ignores its parent)."""
    seen: dict[str, Any] = {}
    with pytest.raises(RuntimeError, match="the test failed"):
        _fail_inside_a_cluster(tmp_path, seen)
    namespaces, operator_if, pids = seen["namespaces"], seen["operator_if"], seen["pids"]
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    assert not any(ns in listed for ns in namespaces)
    links = subprocess.run([IP, "-o", "link"], capture_output=True, text=True).stdout
    assert operator_if not in links
    for pid in pids:
        assert not _alive(int(pid))


def _fail_inside_a_cluster(tmp_path, seen: dict[str, Any]) -> None:
    """Start a cluster and a sleeper on its node one, note in `seen` what must go with the
    cluster, then fail as a test would."""
    with NetnsCluster(tmp_path, ["one", "two"], server="asyncssh") as net:
        seen["namespaces"] = [net.namespace(n) for n in net.nodes] + [net.bridge_ns]
        seen["operator_if"] = net._operator_if
        done = net.saf("exec", "--on", "one", "setsid sleep 913 </dev/null >/dev/null "
                       "2>&1 & echo started")
        assert "started" in done.stdout, done.stderr
        pids = subprocess.run([IP, "netns", "pids", net.namespace("one")],
                              capture_output=True, text=True).stdout.split()
        assert len(pids) >= 2  # the server and the sleeper
        seen["pids"] = pids
        raise RuntimeError("the test failed")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_inventory_reaches_nodes_by_their_veth_address(netns_cluster):
    """The inventory reaches nodes by their veth addresses, never loopback."""
    inv = load_inventory(netns_cluster.inventory_path)
    assert [n.host for n in inv.nodes] == [netns_cluster.address(n) for n in netns_cluster.nodes]
    assert json.dumps([n.host for n in inv.nodes]).count("127.0.0.1") == 0


@pytest.mark.skipif((netns_skip_reason() or own_machine_skip_reason()) is not None,
                    reason=str(netns_skip_reason() or own_machine_skip_reason()))
def test_own_machine_nodes_have_their_own_tmp_and_process_table(tmp_path):
    """With own_machine each node is a machine of its own for what runs there (as Ray needs,
    keeping /tmp/ray and finding its processes by command line): a file one node writes in
    /tmp is neither on the other node nor here, a process one node starts is in no other
    node's process table, the test's own folder is seen by both, and close() ends it all."""
    name = f"/tmp/own-machine-{uuid.uuid4().hex[:12]}"
    # Every process of the node's own process table: pid and command line, as ps would.
    seen_here = ("import os, json\nout = {}\nfor p in os.listdir('/proc'):\n"
                 "    if p.isdigit():\n        try:\n"
                 "            out[p] = open(f'/proc/{p}/cmdline', 'rb').read().replace("
                 "b'\\0', b' ').decode().strip()\n"
                 "        except OSError:\n            pass\nprint(json.dumps(out))")
    with NetnsCluster(tmp_path / "c", ["one", "two"], server="asyncssh", own_machine=True,
                      keep=[tmp_path]) as net:
        (tmp_path / "shared").write_text("both")
        done = net.saf("exec", "--on", "one", f"echo mine > {name} && cat {tmp_path}/shared && "
                       "{ setsid sleep 9141 </dev/null >/dev/null 2>&1 & echo pid $!; }")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "both" in done.stdout, done.stdout
        inner = int(re.search(r"pid (\d+)", done.stdout).group(1))
        sleeper = net.host_pid("one", inner)
        assert sleeper is not None
        assert _cmdline(sleeper) == "sleep 9141"
        assert sleeper != inner  # its own process table numbers it otherwise
        assert net.exec("one", ["cat", name]).stdout == "mine\n"
        assert net.exec("two", ["cat", name], check=False).returncode != 0
        assert net.exec("two", ["cat", str(tmp_path / "shared")]).stdout == "both"
        assert not os.path.exists(name)
        one = json.loads(net.exec("one", [sys.executable, "-c", seen_here]).stdout)
        two = json.loads(net.exec("two", [sys.executable, "-c", seen_here]).stdout)
        assert one.get(str(inner)) == "sleep 9141", one
        assert "sleep 9141" not in two.values(), two
        assert str(sleeper) not in one  # the host's numbers are not the node's
        assert net.host_pid("two", inner) is None
    assert not _alive(sleeper)


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()
