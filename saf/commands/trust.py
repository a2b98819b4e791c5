"""`saf trust NODE`: show a node's host key fingerprint and record it when told to."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:
    import asyncssh

    from saf.inventory.model import Node


@click.command("trust")
@click.argument("selector", metavar="NODE|SEL")
@click.option("--yes", "-y", is_flag=True,
              help="Record the key without asking (check the fingerprint first!).")
@click.pass_context
def trust(ctx: click.Context, selector: str, yes: bool) -> None:
    """Show the SSH host key fingerprint of each selected node and, when you confirm (or pass
    --yes), record it in the node's known_hosts, replacing an older key for that host.

    saf never records a key silently: compare the fingerprint with the one the node prints
    (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node) before you confirm.
    A node reached through jump hosts has their keys checked first, each fetched through
    the hosts before it, and the node's through them.
    """
    import asyncssh

    from saf.connect import hostkeys, jumps
    from saf.connect.failures import classify
    from saf.errors import ConnectError
    from saf.fleet import Fleet
    from saf.inventory.address import host_port

    inventory = common.inventory(ctx)

    async def chosen() -> list[Node]:
        async with Fleet(inventory) as fleet:
            return await fleet.select(selector)

    failed = False
    done: set[Node] = set()
    for node, name in _targets(common.run(chosen()), jumps.hops_of):
        if node.connection == "local":
            click.echo(f"{name}: local node, no host key to trust")
            continue
        if node in done:  # a jump host met again (several nodes behind it, or selected too)
            continue
        done.add(node)
        try:
            key = common.run(_fetch(node))
        except ConnectError as exc:
            click.secho(f"{name}: cannot fetch the host key: {exc.detail}", fg="red", err=True)
            failed = True
            continue
        except (OSError, asyncssh.Error) as exc:
            err = classify(node, exc)
            click.secho(f"{name}: cannot fetch the host key: {err.detail}", fg="red",
                        err=True)
            failed = True
            continue
        if key is None:
            click.secho(f"{name}: the server presented no host key", fg="red", err=True)
            failed = True
            continue
        fp = hostkeys.fingerprint(key)
        recorded = hostkeys.recorded_keys(node)
        end = hostkeys.resolve(node)
        where = host_port(end.host, end.port)
        if any(k.public_data == key.public_data for k in recorded):
            click.echo(f"{name} ({where}): {key.get_algorithm()} {fp} is already trusted")
            continue
        state = "CHANGED from the recorded key" if recorded else "not yet trusted"
        click.echo(f"{name} ({where}): {key.get_algorithm()} {fp} ({state})")
        if not yes:
            if not sys.stdin.isatty():
                click.secho(f"{name}: not recorded; re-run with --yes to trust this key",
                            fg="yellow", err=True)
                failed = True
                continue
            if not click.confirm(f"Trust this key for {name}?", default=False):
                failed = True
                continue
        path = hostkeys.record(node, key)
        click.echo(f"{name}: recorded in {path}")
    if failed:
        ctx.exit(1)




def _targets(nodes: list[Node], hops_of: Callable[[Node], tuple[Node, ...]],
             ) -> Iterator[tuple[Node, str]]:
    """Each node's jump hosts, in the order they are dialled, then the node; with the name
    each is shown by ("gpu1 via jump host bastion")."""
    from saf.errors import ConnectError

    for node in nodes:
        if node.connection != "local":
            try:
                hops = hops_of(node)
            except ConnectError:
                hops = ()  # an unreadable ProxyJump: fetching the node's key says so
            for hop in hops:
                yield hop, f"{node.name} via jump host {hop.name}"
        yield node, node.name


async def _fetch(node: Node) -> asyncssh.SSHKey | None:
    """The key `node` presents, fetched through its jump hosts (their keys checked)."""
    import asyncssh

    from saf.connect import hostkeys, jumps
    from saf.connect.ssh import SSHConnector
    from saf.errors import ConnectError

    hops = jumps.hops_of(node)
    if not hops:
        return await hostkeys.fetch_host_key(node)

    def make(hop: Node) -> SSHConnector:
        return SSHConnector(hop, pool=pool)
    pool = jumps.Jumps(make)
    try:
        try:
            tunnel = await pool.tunnel(hops)
        except jumps.JumpFailed as failed:
            raise jumps.failure(node, failed) from None
        try:
            return await hostkeys.fetch_host_key(node, tunnel)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectError(node.name, "unreachable", f"jump host {hops[-1].name} cannot "
                               f"reach {node.address}: {exc.reason}") from None
    finally:
        await pool.close()
