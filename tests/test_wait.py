"""`saf wait`: nodes that answer only later (a real SSH server started late, on loopback), nodes
that never answer (a closed port), and the command's lines and exit status."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from saf.connect.base import Connector
from saf.demo.node_server import NodeServer
from saf.errors import ConnectError, Failure
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Node
from saf.wait import wait_for_nodes
from tests.helpers.servers import ClientKeys, free_port, write_inventory


def _node(name: str, port: int) -> dict:
    return {"name": name, "host": "127.0.0.1", "port": port}


async def test_a_node_whose_sshd_starts_late_is_waited_for(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    early = await NodeServer("early", tmp_path / "early", authorized_keys=[keys.key]).start()
    keys.trust(early.port, early.host_key.export_public_key("openssh").decode().strip())
    late_port = free_port()
    # Its host key is known beforehand, as a rebooting node's is; its server starts only
    # after the wait has found it not answering.
    late = NodeServer("late", tmp_path / "late", port=late_port, authorized_keys=[keys.key])
    keys.trust(late_port, late.host_key.export_public_key("openssh").decode().strip())
    inv = write_inventory(tmp_path / "saf.toml", keys,
                          [_node("early", early.port), _node("late", late_port)])
    misses: list[tuple[str, Failure]] = []
    started: list[asyncio.Task] = []

    def missed(node: str, error: ConnectError) -> None:
        misses.append((node, error.reason))
        if node == "late" and not started:
            started.append(asyncio.ensure_future(late.start()))

    answered: list[str] = []
    try:
        async with Fleet(load_inventory(str(inv))) as fleet:
            outcome = await wait_for_nodes(
                fleet, list(fleet.inventory.nodes), timeout=60, on_miss=missed,
                on_answer=lambda event: answered.append(event.node))
    finally:
        if started:
            await started[0]
        await late.stop()
        await early.stop()
    assert outcome.ok
    assert answered == ["early", "late"]  # each reported as it came
    assert [a.node for a in outcome.answered] == ["early", "late"]
    assert misses[0] == ("late", Failure.REFUSED)
    assert all(node == "late" for node, _ in misses)


async def test_a_node_that_never_answers_is_named_at_the_timeout(tmp_path: Path) -> None:
    keys = ClientKeys(tmp_path / "operator")
    inv = write_inventory(tmp_path / "saf.toml", keys, [_node("closed", free_port())])
    async with Fleet(load_inventory(str(inv))) as fleet:
        outcome = await wait_for_nodes(fleet, list(fleet.inventory.nodes), timeout=1.5)
    assert not outcome.ok
    assert outcome.answered == []
    [miss] = outcome.missing
    assert miss.node == "closed"
    assert miss.reason is Failure.REFUSED
    assert not miss.final


async def test_a_node_that_refuses_our_key_is_not_waited_for(tmp_path: Path) -> None:
    """Waiting does not cure a refused login: it is given up on at once, with the reason,
    well before a long timeout."""
    keys = ClientKeys(tmp_path / "operator")
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    server = await NodeServer("strict", tmp_path / "strict", authorized_keys=[stranger]).start()
    try:
        keys.trust(server.port, server.host_key.export_public_key("openssh").decode().strip())
        inv = write_inventory(tmp_path / "saf.toml", keys, [_node("strict", server.port)])
        async with Fleet(load_inventory(str(inv))) as fleet:
            outcome = await asyncio.wait_for(
                wait_for_nodes(fleet, list(fleet.inventory.nodes), timeout=600), 60)
    finally:
        await server.stop()
    [miss] = outcome.missing
    assert miss.reason is Failure.AUTH
    assert miss.final


def test_saf_wait_prints_a_line_per_node_and_exits_1_naming_the_missing(
        asyncssh_cluster, tmp_path: Path) -> None:
    keys = asyncssh_cluster.keys
    closed = free_port()
    nodes = [_node(name, port) for name, port in asyncssh_cluster.ports.items()]
    inv = write_inventory(tmp_path / "saf.toml", keys, [*nodes, _node("down", closed)])
    done = subprocess.run([sys.executable, "-m", "saf", "-i", str(inv), "wait", "--timeout",
                           "1.5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split()[0] for line in lines) == ["alpha", "beta", "gamma"]
    assert all(" answers after " in line and line.endswith(" s") for line in lines)
    assert "down did not answer: no answer after 1.5 s (refused: connection refused" \
        in done.stderr
    # All answer: exit 0, nothing on stderr.
    done = subprocess.run([sys.executable, "-m", "saf", "-i", str(inv), "wait", "--on",
                           "alpha,beta"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in sorted(done.stdout.splitlines())] == ["alpha", "beta"]
    assert done.stderr == ""


async def test_a_node_that_answers_keeps_its_connection_for_the_work_that_follows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`saf up` waits, then runs its recipe on the same fleet: the connection the wait made is
    the one the recipe uses, not a second one. A connection the pool already holds (it may
    have died with a reboot) is not trusted: a fresh one is tried beside it."""
    keys = ClientKeys(tmp_path / "operator")
    server = await NodeServer("n", tmp_path / "n", authorized_keys=[keys.key]).start()
    try:
        keys.trust(server.port, server.host_key.export_public_key("openssh").decode().strip())
        inv = write_inventory(tmp_path / "saf.toml", keys, [_node("n", server.port)])
        async with Fleet(load_inventory(str(inv))) as fleet:
            pooled = fleet.connector("n")
            assert not pooled.connected
            assert (await wait_for_nodes(fleet, list(fleet.inventory.nodes), timeout=30)).ok
            assert pooled.connected  # kept: the recipe's first command connects no more
            opened: list[str] = []
            real = fleet.fresh_connector

            def fresh(node: Node) -> Connector:
                opened.append(node.name)
                return real(node)

            monkeypatch.setattr(fleet, "fresh_connector", fresh)
            assert (await wait_for_nodes(fleet, list(fleet.inventory.nodes), timeout=30)).ok
            assert opened == ["n"]
    finally:
        await server.stop()


def test_a_try_cut_by_the_wait_says_the_waits_deadline(tmp_path: Path) -> None:
    """A node whose port takes the connection and never speaks SSH: the wait's own deadline
    (1.5 s) ends its one try, and the message says that deadline, not the node's connect
    timeout (10 s) that it never reached ("no answer after 1.5 s (... within 10 s)")."""
    keys = ClientKeys(tmp_path / "operator")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nobody answers
        inv = write_inventory(tmp_path / "saf.toml", keys,
                              [_node("mute", silent.getsockname()[1])])
        done = subprocess.run([sys.executable, "-m", "saf", "-i", str(inv), "wait",
                               "--timeout", "1.5"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "mute did not answer: no answer after 1.5 s (timeout: no answer from" in done.stderr
    assert "within 1.5 s)" in done.stderr
    assert "within 10 s" not in done.stderr
