"""`saf tui` (and plain `saf`): the cockpit on the inventory's nodes, with live agents."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf.commands import common
from saf.fleet import Fleet
from saf.inventory.model import Inventory, Node
from saf.shell import quote

if TYPE_CHECKING:
    from saf.screens.app import SafApp

SIGNALS = ("TERM", "KILL")


class FleetActions:
    """What the cockpit may change on a node, done through the fleet's connectors."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def signal(self, node: str, pid: int, signal: str) -> str:
        if signal not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}")
        command = f"kill -{signal} {quote(str(int(pid)))}"
        result = await self.fleet.connector(node).run(command, timeout=15)
        if result.exit_status == 0:
            return f"{node}: {command}"
        return f"{node}: {command} failed: {(result.stderr or result.stdout).strip()}"


def cockpit(inventory: Inventory, *, readonly: bool = False, interval: float = 1.0) -> SafApp:
    """Build (not run) the live cockpit on an inventory. Imports textual: CLI use only."""
    from saf.cockpit.context import READONLY_FLAG, CockpitContext
    from saf.cockpit.settings import load_settings
    from saf.metrics.hub import MetricsHub
    from saf.screens.app import make_app

    settings = load_settings(inventory_extra=inventory.extra, inventory_path=inventory.path)
    fleet = Fleet(inventory)
    nodes: list[Node] = list(inventory.nodes)

    class LiveSource(MetricsHub):
        async def stop(self) -> None:
            await super().stop()
            await fleet.close()

    ctx = CockpitContext(cluster=inventory.cluster.name, nodes=tuple(nodes), settings=settings,
                         inventory=inventory, fleet=fleet, actions=FleetActions(fleet),
                         readonly_because=READONLY_FLAG if readonly else None)
    return make_app(ctx, lambda emit: LiveSource(fleet, nodes, emit, interval=interval))


@click.command("tui")
@click.option("--readonly", is_flag=True,
              help="Open a cockpit in which every action that changes a node is disabled.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between samples of each node.")
@click.pass_context
def tui(ctx: click.Context, readonly: bool, interval: float) -> None:
    """Open the cockpit: every node live (CPU, memory, GPUs, network), drill down with Enter,
    `?` for help, Ctrl+P for every command. `saf` alone does the same."""
    root = ctx.find_root()
    readonly = readonly or bool((root.obj or {}).get("readonly"))
    app = cockpit(common.inventory(ctx), readonly=readonly, interval=interval)
    app.run()
