"""`saf status`: the declared cluster against what runs (saf.up.gather, saf.up.status)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:  # imported where used, so `saf status --help` loads none of it
    from saf.up.status import ClusterStatus


@click.command("status")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object (fields: docs/status.md).")
@click.option("--on", "selector", default=None, metavar="SEL",
              help="Only these nodes (a node selector: name, tag:X, role:X, os:X...).")
@click.pass_context
def status(ctx: click.Context, as_json: bool, selector: str | None) -> None:
    """The declared cluster against what runs: each node, Ray, service and model, with a
    verdict.

    What saf.toml declares ([ray], [[services]], [[models]]) against what runs: every node
    (answers SSH or not), Ray's nodes and resources, each service (state, restarts, since,
    kept across reboots or not, its check) and each model (where, port, engine, whether it
    answers, last check), each with a verdict: as declared, missing, differs: WHY, down, not
    kept across reboots, or unreachable.

    Exits 0 when every part is as declared (or running but not kept across reboots, where
    the node has no init system saf can use), 1 otherwise: cron can watch it.
    """
    from saf.fleet import Fleet
    from saf.up.declared import declared
    from saf.up.gather import gather

    inventory = common.inventory(ctx)
    wanted = declared(inventory)

    async def go() -> ClusterStatus:
        async with Fleet(inventory) as fleet:
            nodes = await fleet.select(selector)
            return await gather(fleet, wanted, nodes)

    result = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from rich.text import Text

    from saf.render.console import console, print_json_line
    from saf.render.status_view import status_view

    if as_json:
        print_json_line(result.to_json())
    else:
        out = console()
        out.print(status_view(result, out.width))
        if wanted.empty:
            out.print(Text("saf.toml declares no [ray], [[services]] or [[models]]: only the "
                           "nodes are shown (docs/inventory.md, \"The declared cluster\")",
                           style="dim"))
    if not result.as_declared:
        ctx.exit(1)
