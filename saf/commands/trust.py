"""`saf trust NODE`: show a node's host key fingerprint and record it when told to."""

from __future__ import annotations

import sys

import asyncssh
import click

from saf.commands import common
from saf.connect import hostkeys
from saf.connect.failures import classify
from saf.fleet import Fleet
from saf.inventory.address import host_port
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
    """
    inventory = common.inventory(ctx)

    async def chosen() -> list[Node]:
        async with Fleet(inventory) as fleet:
            return await fleet.select(selector)

    failed = False
    for node in common.run(chosen()):
        if node.connection == "local":
            click.echo(f"{node.name}: local node, no host key to trust")
            continue
        try:
            key = common.run(hostkeys.fetch_host_key(node))
        except (OSError, asyncssh.Error) as exc:
            err = classify(node, exc)
            click.secho(f"{node.name}: cannot fetch the host key: {err.detail}", fg="red",
                        err=True)
            failed = True
            continue
        if key is None:
            click.secho(f"{node.name}: the server presented no host key", fg="red", err=True)
            failed = True
            continue
        fp = hostkeys.fingerprint(key)
        recorded = hostkeys.recorded_keys(node)
        end = hostkeys.resolve(node)
        where = host_port(end.host, end.port)
        if any(k.public_data == key.public_data for k in recorded):
            click.echo(f"{node.name} ({where}): {key.get_algorithm()} {fp} is already trusted")
            continue
        state = "CHANGED from the recorded key" if recorded else "not yet trusted"
        click.echo(f"{node.name} ({where}): {key.get_algorithm()} {fp} ({state})")
        if not yes:
            if not sys.stdin.isatty():
                click.secho(f"{node.name}: not recorded; re-run with --yes to trust this key",
                            fg="yellow", err=True)
                failed = True
                continue
            if not click.confirm(f"Trust this key for {node.name}?", default=False):
                failed = True
                continue
        path = hostkeys.record(node, key)
        click.echo(f"{node.name}: recorded in {path}")
    if failed:
        ctx.exit(1)


