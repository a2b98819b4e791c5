"""`saf tui` (and plain `saf`): the cockpit on the inventory's nodes, with live agents."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:
    from saf.agentlink.node_links import NodeLinks
    from saf.events import Emit
    from saf.fleet import Fleet
    from saf.inventory.model import Inventory
    from saf.screens.app import SafApp


def live_source(fleet: Fleet, inventory: Inventory, interval: float) -> NodeLinks:
    """The cockpit's metrics: an agent link per node, which may start before the cockpit
    exists. What its links report before the cockpit's own start (on mount, the first moment
    the app can take an event) is in the store at once and held for the app, then handed on
    in order; `bind` is the app's source factory. Stopping it closes the fleet.

    Links started before the app run outside Textual's context (its active app and message
    pump are context variables): their events are handed to the app in the context of the
    app's own call to `start`, or a timer the app sets on an event never fires."""
    import asyncio
    import contextvars

    from saf.agentlink.node_links import NodeLinks
    from saf.events import Event

    class LiveSource(NodeLinks):
        def __init__(self) -> None:
            super().__init__(fleet, inventory.nodes, self._relay, interval=interval)
            self._held: list[Event] = []  # a few per node: only until the cockpit mounts
            self._app: Emit | None = None
            self._to_app: Emit | None = None

        def _relay(self, event: Event) -> None:
            if self._to_app is None:
                self._held.append(event)
            else:
                self._to_app(event)

        def bind(self, emit: Emit) -> LiveSource:
            self._app = emit
            return self

        async def start(self) -> None:
            app = self._app
            if app is not None and self._to_app is None:
                if self._tasks:  # started before the app: hand on in the app's context
                    context = contextvars.copy_context()
                    loop = asyncio.get_running_loop()

                    def in_app_context(event: Event) -> None:
                        loop.call_soon(app, event, context=context)

                    self._to_app = in_app_context
                else:  # started by the app: its links run in its context
                    self._to_app = app
                held, self._held = self._held, []
                for event in held:
                    app(event)
            await super().start()  # once: a second call finds the links running

        async def stop(self) -> None:
            await super().stop()
            await fleet.close()

    return LiveSource()


def cockpit(inventory: Inventory, *, readonly: bool = False, interval: float = 1.0,
            source: NodeLinks | None = None) -> SafApp:
    """Build (not run) the live cockpit on an inventory, on `source` (from live_source, maybe
    started already) or a new one. Imports textual: CLI use only."""
    from saf.cockpit.actions import FleetActions
    from saf.cockpit.context import READONLY_FLAG, CockpitContext
    from saf.cockpit.settings import load_settings
    from saf.fleet import Fleet
    from saf.screens.app import make_app

    settings = load_settings(inventory_extra=inventory.extra, inventory_path=inventory.path)
    if source is None:
        source = live_source(Fleet(inventory), inventory, interval)
    fleet = source.fleet
    setup = CockpitContext(cluster=inventory.cluster.name, nodes=tuple(inventory.nodes),
                           settings=settings, inventory=inventory, fleet=fleet,
                           actions=FleetActions(fleet),
                           readonly_because=READONLY_FLAG if readonly else None)
    return make_app(setup, source.bind)  # type: ignore[attr-defined]


def run_cockpit(inventory: Inventory, *, readonly: bool = False, interval: float = 1.0) -> None:
    """Run the live cockpit until it is quit. The agents start first, and the cockpit's
    modules (Textual, the screens: most of a second on a slow machine) load in a thread
    meanwhile, so the first paint waits for the slower of the two, not for both in turn."""
    import asyncio

    asyncio.run(_run_cockpit(inventory, readonly=readonly, interval=interval))


async def _run_cockpit(inventory: Inventory, *, readonly: bool, interval: float) -> None:
    import asyncio
    import importlib

    from saf.fleet import Fleet

    source = live_source(Fleet(inventory), inventory, interval)
    mounted = False
    try:
        await source.start()  # returns at once: the links connect in the background
        await asyncio.to_thread(importlib.import_module, "saf.screens.app")
        app = cockpit(inventory, readonly=readonly, interval=interval, source=source)
        mounted = True  # from here the app stops its source when it ends
        await app.run_async()
    finally:
        if not mounted:
            await source.stop()


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
        app.run()
    else:
        run_cockpit(common.inventory(ctx), readonly=readonly, interval=interval)
