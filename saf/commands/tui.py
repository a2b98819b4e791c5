"""`saf tui` (and plain `saf`): the cockpit on the inventory's nodes, with live agents."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from saf.cockpit.actions import FleetActions
from saf.commands import common
from saf.fleet import Fleet
from saf.inventory.model import Inventory, Node

if TYPE_CHECKING:
    from saf.screens.app import SafApp

def cockpit(inventory: Inventory, *, readonly: bool = False, interval: float = 1.0) -> SafApp:
    """Build (not run) the live cockpit on an inventory. Imports textual: CLI use only."""
    from saf.agentlink.node_links import NodeLinks
    from saf.cockpit.context import READONLY_FLAG, CockpitContext
    from saf.cockpit.settings import load_settings
    from saf.screens.app import make_app

    settings = load_settings(inventory_extra=inventory.extra, inventory_path=inventory.path)
    fleet = Fleet(inventory)
    nodes: list[Node] = list(inventory.nodes)

    class LiveSource(NodeLinks):
        async def stop(self) -> None:
            await super().stop()
            await fleet.close()

    setup = CockpitContext(cluster=inventory.cluster.name, nodes=tuple(nodes), settings=settings,
                           inventory=inventory, fleet=fleet, actions=FleetActions(fleet),
                           readonly_because=READONLY_FLAG if readonly else None)
    return make_app(setup, lambda emit: LiveSource(fleet, nodes, emit, interval=interval))


def hub_cockpit(socket_path: str, *, token: str | None = None,
                readonly: bool = False) -> SafApp:
    """Build (not run) a cockpit fed from `saf serve`'s hub: its metrics, signals, node
    actions and recipe runs go over the hub's socket (saf.serve.client), not through
    connections of its own.
    The inventory the hub names is read for the recipe list and the cockpit settings."""
    from saf.cockpit.context import READONLY_FLAG, CockpitContext
    from saf.cockpit.settings import load_settings
    from saf.errors import SafError
    from saf.inventory import load_inventory
    from saf.screens.app import make_app
    from saf.serve.client import HubLink

    link = HubLink.connect(socket_path, token=token)
    hello = link.hello
    inventory: Inventory | None = None
    if hello.inventory:
        try:
            inventory = load_inventory(hello.inventory)
        except SafError:
            inventory = None  # recipes are then refused; the metrics still come
    settings = load_settings(inventory_extra=inventory.extra if inventory else None,
                             inventory_path=inventory.path if inventory else None)
    readonly_because = hello.readonly or (READONLY_FLAG if readonly else None)
    setup = CockpitContext(cluster=hello.cluster, nodes=hello.nodes, settings=settings,
                           inventory=inventory, actions=link.actions(),
                           recipe_runner=link.run_recipe,
                           signal_feed=link.signal_feed(), readonly_because=readonly_because)
    return make_app(setup, link.source)


@click.command("tui")
@click.option("--readonly", is_flag=True,
              help="Open a cockpit in which every action that changes a node is disabled.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between samples of each node.")
@click.option("--hub", "hub_socket", metavar="SOCKET",
              help="Be fed from a running `saf serve` (its hub's socket, which it prints) "
                   "instead of connecting to the nodes.")
@click.pass_context
def tui(ctx: click.Context, readonly: bool, interval: float, hub_socket: str | None) -> None:
    """Open the cockpit: every node live (CPU, memory, GPUs, network), drill down with Enter,
    `?` for help, Ctrl+P for every command. `saf` alone does the same."""
    root = ctx.find_root()
    readonly = readonly or bool((root.obj or {}).get("readonly"))
    if hub_socket:
        app = hub_cockpit(hub_socket, token=os.environ.get("SAF_HUB_TOKEN") or None,
                          readonly=readonly)
    else:
        app = cockpit(common.inventory(ctx), readonly=readonly, interval=interval)
    app.run()
