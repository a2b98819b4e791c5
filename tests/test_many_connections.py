"""Many connections to one OpenSSH server: MaxStartups (default 10:30:100) drops
unauthenticated connections past ten at once; saf must still reach every node."""

from __future__ import annotations

import pytest

from saf.connect.handshakes import HandshakeGate
from saf.connect.ssh import SSHConnector
from saf.errors import Failure
from saf.fleet import Fleet
from saf.inventory import load_inventory
from tests.helpers.servers import SSHD, ClientKeys, OpenSSHServer, write_inventory

pytestmark = pytest.mark.skipif(not SSHD, reason="OpenSSH sshd is not installed")


@pytest.fixture(scope="module")
def fifty(tmp_path_factory):
    root = tmp_path_factory.mktemp("fifty")
    keys = ClientKeys(root / "operator")
    server = OpenSSHServer(root / "sshd", keys)  # stock MaxStartups
    nodes = [{"name": f"n{i:02d}", "host": "127.0.0.1", "port": server.port} for i in range(50)]
    yield write_inventory(root / "saf.toml", keys, nodes)
    server.stop()


async def test_fifty_concurrent_connections_all_succeed(fifty):
    async with Fleet(load_inventory(fifty)) as fleet:
        nodes = await fleet.select("all")
        results = await fleet.each(nodes, lambda c: c.run("echo $((6 * 7))"))
    failures = {n: r for n, r in results.items() if isinstance(r, BaseException)}
    assert not failures, failures
    assert all(r.stdout == "42\n" for r in results.values())


async def test_without_the_gate_sshd_really_drops_connections(fifty):
    """The control: with no handshake gate and no redials, a stock sshd drops some of the 50.
    If this ever stops failing, MaxStartups no longer bites and the gate can go."""
    ungated = HandshakeGate(per_host=1000, redials=0)
    async with Fleet(load_inventory(fifty),
                     connector_factory=lambda n: SSHConnector(n, handshakes=ungated)) as fleet:
        nodes = await fleet.select("all")
        results = await fleet.each(nodes, lambda c: c.connect())
    dropped = [n for n, r in results.items() if isinstance(r, BaseException)]
    if not dropped:
        pytest.skip("this sshd accepted 50 simultaneous handshakes; the control proves nothing")
    assert all(results[n].reason == Failure.LOST for n in dropped)
