"""Signals from a publisher on a node of the loopback fleet, reached through an SSH port
forward (ssh://NODE:PORT), against both asyncssh's server and OpenSSH's sshd."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.shell import quote
from saf.signals.book import SignalBook
from saf.signals.demo import DEMO_SYMBOLS
from saf.signals.events import SignalSourceState
from saf.signals.subscriber import Subscriber
from tests.helpers.servers import free_port

REPO = Path(__file__).resolve().parent.parent


def publisher_command(port: int) -> str:
    # Node commands start in the node's home, so saf is found through PYTHONPATH.
    return (f"PYTHONPATH={quote(str(REPO))} exec {quote(sys.executable)} -m saf signals publish "
            f"--demo tcp://127.0.0.1:{port} --seed 5")


async def test_subscribe_through_ssh_forward(cluster) -> None:  # type: ignore[no-untyped-def]
    """A demo publisher started on node alpha, bound to the node's loopback only, is decoded
    through a forward over alpha's SSH connection."""
    port = free_port()
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        proc = await fleet.connector("alpha").start(publisher_command(port), stdin=False)
        try:
            book = SignalBook()
            events: list[object] = []
            sub = Subscriber([f"ssh://alpha:{port}"], book.add_many, tick=book.tick,
                             fleet=fleet, emit=events.append)
            await asyncio.wait_for(sub.run(until=lambda: book.total_count() >= 30), 60)
        finally:
            await proc.stop()
    assert book.bad == {}
    assert {r.symbol for r in book.snapshot(0).rows} <= set(DEMO_SYMBOLS)
    states = [(e.state, e.message) for e in events if isinstance(e, SignalSourceState)]
    assert states[0] == ("forwarding", "")
    assert states[1][0] == "connecting"
    assert f"alpha:{port}" in states[1][1]
    assert ("connected", "") in states
    assert states[-1] == ("closed", "")


async def test_cli_tail_through_ssh(cluster) -> None:  # type: ignore[no-untyped-def]
    """`saf signals tail ssh://NODE:PORT --json` as a user would run it."""
    port = free_port()
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        proc = await fleet.connector("beta").start(publisher_command(port), stdin=False)
        try:
            result = await asyncio.to_thread(cluster.saf, "signals", "tail",
                                             f"ssh://beta:{port}", "--json", "--count", "5")
        finally:
            await proc.stop()
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5
    assert all(line["symbol"] in DEMO_SYMBOLS for line in lines)


def test_unknown_node_is_a_clear_error(cluster) -> None:  # type: ignore[no-untyped-def]
    result = cluster.saf("signals", "tail", "ssh://nosuch:5555")
    assert result.returncode == 2
    assert "no node named 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr
