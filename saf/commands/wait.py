"""`saf wait [--on SEL] [--timeout S]`: wait until the selected nodes answer SSH."""

from __future__ import annotations

import click

from saf.commands import common
from saf.errors import ConnectError
from saf.fleet import DEFAULT_CONCURRENCY, Fleet
from saf.wait import Answered, WaitOutcome, wait_for_nodes


@click.command("wait")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes (see `saf exec --help`).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=300.0,
              show_default=True, metavar="SECONDS",
              help="Give up on the nodes that have not answered after this long.")
@click.option("--concurrency", "-j", type=click.IntRange(1), default=DEFAULT_CONCURRENCY,
              show_default=True, help="At most this many nodes tried at once.")
@click.option("--verbose", "-v", is_flag=True, help="Also print each failed try.")
@click.pass_context
def wait(ctx: click.Context, selector: str, timeout: float, concurrency: int,
         verbose: bool) -> None:
    """Wait until the selected nodes answer SSH (after a reboot or a network boot).

    Prints one line per node as it answers. Exits 0 when all answer, 1 at the timeout (naming
    the nodes that did not, with the last reason). A node whose host key or login is refused
    is given up on at once: waiting does not cure that.
    """
    inventory = common.inventory(ctx)

    def answered(event: Answered) -> None:
        click.echo(f"{event.node} answers after {event.seconds:.1f} s")

    def missed(node: str, error: ConnectError) -> None:
        if verbose:
            click.echo(f"{node}: not yet ({error.reason}: {error.detail})", err=True)

    async def go() -> WaitOutcome:
        async with Fleet(inventory, concurrency=concurrency) as fleet:
            nodes = await fleet.select(selector)
            return await wait_for_nodes(fleet, nodes, timeout=timeout,
                                        on_answer=answered, on_miss=missed)

    outcome = common.run(go())
    for miss in outcome.missing:
        why = "refused" if miss.final else f"no answer after {timeout:g} s"
        click.secho(f"{miss.node} did not answer: {why} ({miss.reason}: {miss.message})",
                    fg="red", err=True)
    if not outcome.ok:
        ctx.exit(1)
