"""Nodes that share one known_hosts have it parsed once (saf.connect.hostkeys.parsed), not once
per connection inside the event loop as asyncssh does when given its path; and a known_hosts
that changed since is read again, so a key replaced or removed counts at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncssh
import pytest

from saf.connect import hostkeys
from saf.errors import ConnectError, Failure
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.inventory.model import Inventory


def own_known_hosts(cluster, tmp_path: Path) -> tuple[Inventory, Path]:
    """The cluster's inventory with a copy of its known_hosts this test may change."""
    known = tmp_path / "known_hosts"
    shutil.copy(cluster.keys.known_hosts, known)
    text = cluster.inventory.read_text().replace(str(cluster.keys.known_hosts), str(known))
    (tmp_path / "saf.toml").write_text(text)
    return load_inventory(tmp_path / "saf.toml"), known


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every known_hosts file read from now on: saf's and asyncssh's own (per connection)."""
    monkeypatch.setattr(hostkeys, "_PARSED", {}, raising=False)
    seen: list[str] = []
    real = asyncssh.read_known_hosts

    def counting(path: str | list[str]) -> asyncssh.SSHKnownHosts:
        seen.append(str(path))
        return real(path)

    monkeypatch.setattr(asyncssh, "read_known_hosts", counting)
    monkeypatch.setattr(asyncssh.known_hosts, "read_known_hosts", counting)
    return seen


async def test_nodes_sharing_a_known_hosts_read_it_once(asyncssh_cluster, tmp_path, reads):
    inventory, known = own_known_hosts(asyncssh_cluster, tmp_path)
    async with Fleet(inventory) as fleet:
        results = await fleet.each(inventory.nodes, lambda c: c.run("echo ok"))
    assert [r.stdout for r in results.values()] == ["ok\n"] * 3  # type: ignore[union-attr]
    assert reads == [str(known)]


async def test_a_changed_known_hosts_is_read_again(asyncssh_cluster, tmp_path, reads):
    inventory, known = own_known_hosts(asyncssh_cluster, tmp_path)
    async with Fleet(inventory) as fleet:
        await fleet.connector("alpha").run("true")
    # Every node's key replaced by another one: the next connection must refuse it.
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    known.write_text("".join(f"[127.0.0.1]:{port} {other.strip()}\n"
                             for port in asyncssh_cluster.ports.values()))
    async with Fleet(inventory) as fleet:
        with pytest.raises(ConnectError) as refused:
            await fleet.connector("beta").run("true")
    # Refused: the file was read again (the version parsed first would have let it in).
    assert refused.value.reason == Failure.HOSTKEY
