"""`saf nodes`: is each node reachable, and what is it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:
    from saf.node_facts import NodeFacts


@click.command("nodes")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes (see `saf exec --help`).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per node.")
@click.pass_context
def nodes(ctx: click.Context, selector: str, as_json: bool) -> None:
    """For each node: reachable or not (and why: refused, timeout, auth, hostkey, dns),
    OS, arch, kernel, CPU count, memory, Python version, and round-trip latency; and the
    jump hosts saf reaches it through, where any node has one (`jump` in saf.toml).

    Exits 1 when any node cannot be reached.
    """
    import dataclasses

    from saf.fleet import Fleet, error_reason
    from saf.inventory.jumps import route
    from saf.node_facts import NodeFacts, gather_facts

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
            rows.append(dataclasses.replace(value, jump=route(node) or None))
        return rows

    rows = common.run(go())
    # Rich, only once there is something to print: not part of the wait for the first answer.
    from saf.render.console import print_json_line
    from saf.render.nodes_view import nodes_table

    if as_json:
        for row in rows:
            print_json_line(row)
    else:
        nodes_table(rows, {n.name: ",".join(n.roles) for n in inventory.nodes})
    if not all(r.reachable for r in rows):
        ctx.exit(1)
