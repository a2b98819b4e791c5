"""The inventory's `jump` key: read with file:line errors, and connections through real SSH
servers on loopback (one connection per jump host, shared; the jump host's own failures
named as its). tests/test_jump_netns.py reaches a node that only its jump host can reach."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from saf.connect import hostkeys
from saf.errors import ConnectError, HostKeyError, InventoryError
from saf.fleet import Fleet
from saf.inventory.load import load_inventory
from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

NODES = """\
[[nodes]]
name = "bastion"
host = "10.0.0.1"

[[nodes]]
name = "a"
host = "10.0.0.2"
jump = {a}

[[nodes]]
name = "b"
host = "localhost"
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "saf.toml"
    path.write_text(text)
    return load_inventory(path)


@pytest.mark.parametrize(("jump", "message"), [
    ('"bastoin"', "saf.toml:8: node 'a': jump 'bastoin' names no node of the inventory "
     "(a, b, bastion); a host outside it is written as an address: ssh://bastoin, "
     "user@bastoin or bastoin:22"),
    ('"a"', "saf.toml:8: node 'a': jump 'a' is the node itself"),
    ('"b"', "saf.toml:8: node 'a': jump 'b' is a local node (connection = \"local\"), "
     "not an SSH server to go through"),
    ('"ops@[::1:22"', "saf.toml:8: node 'a': jump 'ops@[::1:22' is neither a node's name "
     "nor [user@]host[:port] hops separated by commas: 'ops@[::1:22': '[' without a "
     "matching ']'"),
    ('"gw.lab:70000"', "saf.toml:8: node 'a': jump 'gw.lab:70000' is neither a node's name "
     "nor [user@]host[:port] hops separated by commas: 'gw.lab:70000': port 70000 is not a "
     "number from 1 to 65535"),
    ('""', "saf.toml:8: node 'a': jump must be a non-empty string, not ''"),
])
def test_a_bad_jump_is_refused_with_its_line(tmp_path, jump, message):
    with pytest.raises(InventoryError) as info:
        _load(tmp_path, NODES.format(a=jump))
    assert str(info.value) == f"{tmp_path}/{message}"


def test_jump_hosts_that_lead_round_in_a_ring_are_refused(tmp_path):
    text = NODES.format(a='"bastion"').replace('host = "10.0.0.1"\n',
                                               'host = "10.0.0.1"\njump = "a"\n', 1)
    with pytest.raises(InventoryError) as info:
        _load(tmp_path, text)
    assert str(info.value) == str(tmp_path) + (
        "/saf.toml:9: node 'a': jump 'bastion' leads round in a ring of jump hosts "
        "(bastion -> a -> bastion); one of them must be reached directly")


def test_a_jump_names_a_node_an_address_chain_or_none(tmp_path):
    """A node's name brings that node (with its own way there); hops in ProxyJump's form
    become one hop each, dialled through the one before; the defaults' jump applies to every
    node but the one it names; `none` says straight there."""
    inv = _load(tmp_path, '[defaults]\njump = "bastion"\nuser = "me"\n'
                + NODES.format(a='"ops@gw.lab:2222,ssh://inner.lab"')
                + '\n[[nodes]]\nname = "c"\nhost = "10.0.0.3"\n'
                + '\n[[nodes]]\nname = "d"\nhost = "10.0.0.4"\njump = "none"\n')
    bastion, a, _, c, d = inv.nodes
    assert bastion.jump is None  # the defaults' jump host is reached directly
    assert c.jump == (bastion,)
    assert d.jump == ()
    assert a.jump is not None
    gw, inner = a.jump
    assert (gw.name, gw.host, gw.port, gw.user, gw.jump) == ("ops@gw.lab:2222", "gw.lab", 2222,
                                                             "ops", None)
    assert (inner.host, inner.port, inner.user, inner.jump) == ("inner.lab", None, None, (gw,))


def test_a_jump_chain_through_a_node_with_its_own_jump(tmp_path):
    inv = _load(tmp_path, NODES.format(a='"bastion"').replace(
        'host = "10.0.0.1"\n', 'host = "10.0.0.1"\njump = "ops@edge.lab"\n', 1))
    bastion, a, _ = inv.nodes
    assert a.jump == (*bastion.jump, bastion)
    assert [hop.name for hop in a.jump] == ["ops@edge.lab", "bastion"]


# -- through real servers -------------------------------------------------------------------

@pytest.fixture
def servers(tmp_path):
    keys = ClientKeys(tmp_path / "operator")
    running = AsyncsshServers(tmp_path, keys, ["jump", "t1", "t2"])
    try:
        yield keys, running
    finally:
        running.stop()


def _inventory(tmp_path: Path, keys: ClientKeys, servers: AsyncsshServers, jump: str,
               **extra: str):
    nodes = [{"name": "bastion", "host": "127.0.0.1", "port": servers.port("jump")}]
    nodes += [{"name": n, "host": "127.0.0.1", "port": servers.port(n), "jump": jump, **extra}
              for n in ("t1", "t2")]
    return load_inventory(write_inventory(tmp_path / "saf.toml", keys, nodes))


async def _names(fleet: Fleet, nodes: list[str]) -> dict[str, object]:
    async def name(conn):
        return (await conn.run("echo $SAF_NODE")).stdout.strip()
    return await fleet.each([fleet.inventory.node(n) for n in nodes], name)


async def _open_at(running: AsyncsshServers, name: str, expect: int) -> int:
    """How many connections server `name` holds, once that is `expect` or 10 s passed."""
    for _ in range(200):
        if len(running.servers[name]._conns) == expect:
            break
        await asyncio.sleep(0.05)
    return len(running.servers[name]._conns)


@pytest.mark.parametrize("form", ["node", "address"])
async def test_nodes_behind_a_jump_host_share_one_connection_to_it(tmp_path, servers, form):
    """t1 and t2 are reached through the jump server: one SSH connection to it carries both
    tunnels, and (named as a node) the jump host's own commands too."""
    keys, running = servers
    jump = "bastion" if form == "node" else \
        f"{getpass.getuser()}@127.0.0.1:{running.port('jump')}"
    inventory = _inventory(tmp_path, keys, running, jump)
    async with Fleet(inventory) as fleet:
        assert await _names(fleet, ["t1", "t2"]) == {"t1": "t1", "t2": "t2"}
        # The jump server saw one connection, carrying both tunnels.
        assert len(running.servers["jump"]._conns) == 1
        if form == "node":  # and bastion's own commands, on the same connection
            assert await _names(fleet, ["bastion"]) == {"bastion": "jump"}
            assert len(running.servers["jump"]._conns) == 1
            hop = fleet.inventory.node("bastion")
            assert fleet.jumps.connector(hop) is fleet.connector("bastion")
    # Closing the fleet closed it (the server hears so on its own thread).
    assert await _open_at(running, "jump", 0) == 0


@pytest.mark.parametrize("form", ["node", "address"])
async def test_a_jump_host_that_refuses_is_named_not_the_node(tmp_path, servers, form):
    keys, running = servers
    dead = free_port()
    jump = "bastion" if form == "node" else f"127.0.0.1:{dead}"
    nodes = [{"name": "bastion", "host": "127.0.0.1", "port": dead},
             {"name": "t1", "host": "127.0.0.1", "port": running.port("t1"), "jump": jump}]
    inventory = load_inventory(write_inventory(tmp_path / "saf.toml", keys, nodes))
    hop = "bastion" if form == "node" else f"127.0.0.1:{dead}"
    async with Fleet(inventory) as fleet:
        with pytest.raises(ConnectError) as info:
            await fleet.connector("t1").run("true")
    assert info.value.reason == "refused"
    where = f"{getpass.getuser()}@127.0.0.1:{dead}" if form == "node" else hop
    assert str(info.value) == f"t1: jump host {hop}: connection refused by {where}"


async def test_a_jump_host_whose_key_changed_is_refused_with_its_fingerprint(tmp_path,
                                                                            servers):
    keys, running = servers
    inventory = _inventory(tmp_path, keys, running, "bastion")
    real = running.servers["jump"].host_key
    other = asyncssh.generate_private_key("ssh-ed25519")
    pattern = f"[127.0.0.1]:{running.port('jump')} "
    keys.known_hosts.write_text("".join(
        pattern + other.export_public_key("openssh").decode().strip() + "\n"
        if line.startswith(pattern) else line + "\n"
        for line in keys.known_hosts.read_text().splitlines()))
    async with Fleet(inventory) as fleet:
        with pytest.raises(HostKeyError) as info:
            await fleet.connector("t1").run("true")
    fp = hostkeys.fingerprint(real)
    assert info.value.changed
    assert info.value.fingerprint == fp
    assert str(info.value) == (
        f"t1: jump host bastion: host key has CHANGED (now {fp}); this may be a reinstall or "
        "someone in the middle. If you expect it, run `saf trust t1` to replace the entry in "
        f"{keys.known_hosts}")
    assert running.servers["t1"]._conns == set()  # nothing went on to the node


async def test_jump_none_goes_straight_there_whatever_the_ssh_config_says(tmp_path, servers):
    keys, running = servers
    keys.ssh_config.write_text(f"Host 127.0.0.1\n  ProxyJump 127.0.0.1:{free_port()}\n")
    inventory = _inventory(tmp_path, keys, running, "none")
    async with Fleet(inventory) as fleet:
        assert await _names(fleet, ["t1"]) == {"t1": "t1"}


async def test_the_inventory_jump_wins_over_the_ssh_config(tmp_path, servers):
    keys, running = servers
    keys.ssh_config.write_text(f"Host 127.0.0.1\n  ProxyJump 127.0.0.1:{free_port()}\n")
    inventory = load_inventory(write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "bastion", "host": "127.0.0.1", "port": running.port("jump"), "jump": "none"},
        {"name": "t1", "host": "127.0.0.1", "port": running.port("t1"), "jump": "bastion"}]))
    async with Fleet(inventory) as fleet:
        assert await _names(fleet, ["t1"]) == {"t1": "t1"}
        assert len(running.servers["jump"]._conns) == 1


async def test_a_proxyjump_ring_in_the_ssh_config_is_refused_not_waited_on(tmp_path):
    keys = ClientKeys(tmp_path / "operator")
    keys.ssh_config.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    inventory = load_inventory(write_inventory(tmp_path / "saf.toml", keys,
                                               [{"name": "a", "host": "a"}]))
    async with Fleet(inventory) as fleet:
        with pytest.raises(ConnectError) as info:
            await asyncio.wait_for(fleet.connector("a").run("true"), 30)
    assert info.value.reason == "config"
    assert "goes round in a ring (b -> a -> b)" in str(info.value)


def test_saf_trust_records_the_jump_hosts_keys_too(tmp_path, servers):
    """A node behind a jump host whose key is not known yet: `saf trust NODE` records the
    jump host's key and then the node's, fetched through it."""
    keys, running = servers
    path = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "t1", "host": "127.0.0.1", "port": running.port("t1"),
         "jump": f"127.0.0.1:{running.port('jump')}"}])
    keys.known_hosts.write_text("")
    saf = [sys.executable, "-m", "saf", "-i", str(path)]
    refused = subprocess.run([*saf, "exec", "--on", "t1", "--json", "true"],
                             capture_output=True, text=True, timeout=60)
    finished = json.loads(refused.stdout.splitlines()[0])
    fp = hostkeys.fingerprint(running.servers["jump"].host_key)
    assert (finished["reason"], finished["message"]) == ("hostkey", (
        f"jump host 127.0.0.1:{running.port('jump')}: host key is not known (fingerprint "
        f"{fp}); check it, then run `saf trust t1` to record it in {keys.known_hosts}"))
    trusted = subprocess.run([*saf, "trust", "t1", "--yes"], capture_output=True, text=True,
                             timeout=60)
    assert trusted.returncode == 0, trusted.stderr
    assert f"t1 via jump host 127.0.0.1:{running.port('jump')}" in trusted.stdout
    done = subprocess.run([*saf, "exec", "--on", "t1", "echo $SAF_NODE"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "t1" in done.stdout


async def test_a_lost_jump_connection_is_dialled_again_for_the_nodes_behind_it(tmp_path,
                                                                            servers):
    """The jump host's connection drops (and the tunnels in it): the next command on a node
    behind it dials the jump host again, once, and goes on."""
    keys, running = servers
    inventory = _inventory(tmp_path, keys, running, "bastion")
    async with Fleet(inventory) as fleet:
        assert await _names(fleet, ["t1", "t2"]) == {"t1": "t1", "t2": "t2"}
        bastion = fleet.connector("bastion")
        held = bastion._conn  # type: ignore[attr-defined]
        held.close()
        await held.wait_closed()
        for _ in range(200):
            if not any(fleet.connector(n).connected for n in ("bastion", "t1", "t2")):
                break
            await asyncio.sleep(0.05)
        assert await _names(fleet, ["t1", "t2"]) == {"t1": "t1", "t2": "t2"}
        assert bastion._conn is not held  # type: ignore[attr-defined]
        # One connection again (the old one's end reaches the server on its own thread).
        assert await _open_at(running, "jump", 1) == 1


def test_saf_nodes_shows_each_nodes_jump_hosts(tmp_path, servers):
    """`saf nodes` (table and --json) names the jump hosts each node is reached through, the
    one dialled first first: a node's name, or a hop's address. It showed none."""
    keys, running = servers
    hop = f"{getpass.getuser()}@127.0.0.1:{running.port('jump')}"
    path = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "bastion", "host": "127.0.0.1", "port": running.port("jump")},
        {"name": "t1", "host": "127.0.0.1", "port": running.port("t1"), "jump": "bastion"},
        {"name": "t2", "host": "127.0.0.1", "port": running.port("t2"), "jump": hop}])
    saf = [sys.executable, "-m", "saf", "-i", str(path), "nodes"]
    found = subprocess.run([*saf, "--json"], capture_output=True, text=True, timeout=60)
    assert found.returncode == 0, found.stderr
    rows = {r["node"]: r for r in map(json.loads, found.stdout.splitlines())}
    assert {n: (r["reachable"], r["jump"]) for n, r in rows.items()} == {
        "bastion": (True, None), "t1": (True, "bastion"), "t2": (True, hop)}
    table = subprocess.run(saf, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    assert table.returncode == 0, table.stderr
    lines = [line.split() for line in table.stdout.splitlines()]
    assert lines[0][:3] == ["NODE", "ROLE", "JUMP"], table.stdout
    # No roles here: a row's second word is its jump (bastion's row has neither).
    assert {words[0]: words[1] for words in lines[1:] if words} == {
        "bastion": "ok", "t1": "bastion", "t2": hop}, table.stdout
