"""`saf nodes`: is each node reachable, and what is it."""

from __future__ import annotations

import click

from saf.commands import common
from saf.fleet import Fleet, error_reason
from saf.node_facts import NodeFacts, gather_facts
from saf.render.console import print_json_line
from saf.render.nodes_view import nodes_table


@click.command("nodes")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes (see `saf exec --help`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per node.")
@click.pass_context
def nodes(ctx: click.Context, selector: str, as_json: bool) -> None:
    """For each node: reachable or not (and why: refused, timeout, auth, hostkey, dns),
    OS, arch, kernel, CPU count, memory, Python version, and round-trip latency.

    Exits 1 when any node cannot be reached.
    """
    inventory = common.inventory(ctx)

    async def go() -> list[NodeFacts]:
        async with Fleet(inventory) as fleet:
            chosen = await fleet.select(selector)
            found = await fleet.each(chosen, gather_facts)
        rows = []
        for node in chosen:
            value = found[node.name]
            if isinstance(value, BaseException):
                reason, message = error_reason(value)
                value = NodeFacts(node=node.name, reachable=False, reason=reason,
                                  message=message)
            rows.append(value)
        return rows

    rows = common.run(go())
    if as_json:
        for row in rows:
            print_json_line(row)
    else:
        nodes_table(rows, {n.name: ",".join(n.roles) for n in inventory.nodes})
    if not all(r.reachable for r in rows):
        ctx.exit(1)
