"""`saf down`: take down what `saf up` started (docs/cluster.md), as a run like `saf up`'s:
logged, listed by `saf runs`, resumable."""

from __future__ import annotations

import click

from saf import defaults
from saf.commands import common
from saf.commands.up import LOST, apply_plan, say, say_lost


@click.command("down")
@click.option("--on", "selector", metavar="SEL",
              help="Only these nodes (see `saf exec --help`).")
@click.option("--wait", "wait", type=click.FloatRange(0, 3600), default=defaults.UP_WAIT,
              show_default=True, metavar="S",
              help="Seconds to wait for a node that does not answer SSH yet (after a reboot).")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of output.")
@click.pass_context
def down(ctx: click.Context, selector: str | None, wait: float, verbose: bool) -> None:
    """Take down what `saf up` started, in reverse order: models stopped, services stopped,
    disabled and removed, Ray stopped; each checked gone. [up]'s recipes are not undone.
    The services saf up installed that saf.toml no longer declares are removed first.

    A node that does not answer within --wait is named as lost, with what is left running
    there; the rest is taken down on the nodes that answer.

    Exits 0 when nothing of it is left running, 1 when a part failed, 3 when nodes were
    lost (everything else taken down)."""
    from saf.fleet import Fleet
    from saf.recipe.run import RunPlan
    from saf.up import bring, replicas
    from saf.up import compile as uc
    from saf.up import orphans as uo

    inventory = common.inventory(ctx)
    found = bring.read(inventory)

    async def go() -> int:
        async with Fleet(uc.for_ray(inventory, found)) as fleet:
            nodes = await fleet.select(selector or "all")
            lost = await bring.lost_nodes(fleet, nodes, wait)
            answering = [n for n in nodes if n.name not in lost]
            # What saf down would stop there ([up]'s recipes are never undone).
            left_on = {node: [p for p in parts if not p.startswith("[up] ")]
                       for node, parts in bring.skipped_parts(found, inventory, lost).items()}
            say_lost(left_on, lost, "not reachable, left there")
            if not answering:
                say("nothing was run: no node answers (wait longer: --wait S)")
                return LOST
            left = uo.by_service(await uo.find(fleet, found, answering))
            recipe = await bring.recipe(found, inventory, fleet, down=True, orphans=left)
            # Only the nodes that answer: each part keeps to its own `on` among them.
            on = ",".join(n.name for n in answering) if lost else selector
            done = await apply_plan(RunPlan(recipe, {}, on), fleet, verbose, "saf down")
            if done == 0 and not selector and not lost:
                # Nothing placed runs: the next `saf up` places from nothing.
                replicas.clear(inventory.cluster.name)
            return done or (LOST if lost else 0)

    ctx.exit(common.run(go()))
