"""`saf exec "CMD" [--on SEL]`: one command on many nodes at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common

if TYPE_CHECKING:
    from saf.events import Event
    from saf.exec import CommandFinished
    from saf.render.exec_view import ExecView


@click.command("exec")
@click.argument("command")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes: all, head, workers, NAME, tag:WORD, os:linux|macos, or a "
                   "comma list.")
@click.option("--timeout", type=float, metavar="SECONDS",
              help="Stop the command on a node that runs longer than this.")
@click.option("--concurrency", "-j", type=click.IntRange(1), default=defaults.FLEET_CONCURRENCY,
              show_default=True, help="At most this many nodes at once.")
@click.option("--json", "as_json", is_flag=True,
              help="Write events as JSON lines (output, command_finished, summary).")
@click.pass_context
def exec_command(ctx: click.Context, command: str, selector: str, timeout: float | None,
                 concurrency: int, as_json: bool) -> None:
    """Run COMMAND on the selected nodes at once, streaming output prefixed by node.

    Exits non-zero when the command failed, timed out or could not run on any node. Ctrl-C
    stops the command on every node (nothing is left running) and exits 130.
    """
    from saf.exec import CommandFinished, exec_on
    from saf.fleet import Fleet
    from saf.render.console import print_json_line
    from saf.render.exec_view import ExecView

    inventory = common.inventory(ctx)
    results: dict[str, CommandFinished] = {}
    view: ExecView | None = None

    def emit(event: Event) -> None:
        if isinstance(event, CommandFinished):
            results[event.node] = event
        if as_json:
            print_json_line(event)
        elif view is not None:
            view(event)

    async def go() -> list[CommandFinished]:
        async with Fleet(inventory, concurrency=concurrency) as fleet:
            nodes = await fleet.select(selector)
            nonlocal view
            view = ExecView([n.name for n in nodes])
            return await exec_on(fleet, nodes, command, emit, timeout=timeout)

    try:
        finished = common.run(go())
    except KeyboardInterrupt:
        if view is not None and not as_json:
            view.summary(list(results.values()), interrupted=True)
        raise
    if as_json:
        print_json_line({"event": "summary", "results": [r.to_json() for r in finished],
                         "ok": all(r.status == "ok" for r in finished)})
    elif view is not None:
        view.summary(finished)
    if any(r.status != "ok" for r in finished):
        ctx.exit(1)


