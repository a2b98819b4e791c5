"""`saf down`: take down what `saf up` started (docs/cluster.md), as a run like `saf up`'s:
logged, listed by `saf runs`, resumable."""

from __future__ import annotations

import click

from saf import defaults
from saf.commands import common
from saf.commands.up import all_answer, apply_plan


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
    Exits 0 when nothing of it is left running, 1 otherwise."""
    from saf.fleet import Fleet
    from saf.recipe.run import RunPlan
    from saf.up import bring, replicas
    from saf.up import compile as uc

    inventory = common.inventory(ctx)
    found = bring.read(inventory)

    async def go() -> int:
        async with Fleet(uc.for_ray(inventory, found)) as fleet:
            nodes = await fleet.select(selector or "all")
            if not await all_answer(fleet, nodes, wait):
                return 1
            recipe = await bring.recipe(found, inventory, fleet, down=True)
            done = await apply_plan(RunPlan(recipe, {}, selector), fleet, verbose, "saf down")
            if done == 0 and not selector:
                # Nothing placed runs: the next `saf up` places from nothing.
                replicas.clear(inventory.cluster.name)
            return done

    ctx.exit(common.run(go()))
