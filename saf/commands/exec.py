"""`saf exec "CMD" [--on SEL]`: one command on many nodes at once."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
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
@click.option("--become", is_flag=True,
              help="Run COMMAND as root through sudo: `sudo -n` where the node allows it, "
                   "else with the sudo password, asked once for all nodes.")
@click.option("--password-stdin", is_flag=True,
              help="With --become: read the sudo password from the first line of stdin "
                   "instead of asking on the terminal.")
@click.pass_context
def exec_command(ctx: click.Context, command: str, selector: str, timeout: float | None,
                 concurrency: int, as_json: bool, become: bool, password_stdin: bool) -> None:
    """Run COMMAND on the selected nodes at once, streaming output prefixed by node.

    Exits non-zero when the command failed, timed out or could not run on any node. Ctrl-C
    stops the command on every node (nothing is left running) and exits 130. The sudo
    password of --become goes to sudo on stdin only: never on a command line or in output.
    """
    from saf.exec import Become, CommandFinished, exec_on
    from saf.fleet import Fleet
    from saf.render.console import print_json_line

    inventory = common.inventory(ctx)
    if password_stdin and not become:
        raise click.UsageError("--password-stdin is for --become")
    # Read now, before anything runs: the password then sits in this process only.
    piped = common.read_stdin_password() if password_stdin else None
    results: dict[str, CommandFinished] = {}
    names: list[str] | None = None  # the selected nodes, once known
    view: ExecView | None = None

    def shown() -> ExecView:
        """The view, made at its first use: every event comes once a node has answered (or
        failed to), so Rich is not imported before the first connection."""
        nonlocal view
        if view is None:
            from saf.render.exec_view import ExecView

            view = ExecView(names or [])
        return view

    def emit(event: Event) -> None:
        if isinstance(event, CommandFinished):
            results[event.node] = event
        if as_json:
            print_json_line(event)
        elif names is not None:
            shown()(event)

    async def go() -> list[CommandFinished]:
        async with Fleet(inventory, concurrency=concurrency) as fleet:
            nodes = await fleet.select(selector)
            nonlocal names
            names = [n.name for n in nodes]
            return await exec_on(fleet, nodes, command, emit, timeout=timeout,
                                 become=Become(_asker(piped)) if become else None)

    try:
        finished = common.run(go())
    except KeyboardInterrupt:
        if names is not None and not as_json:
            shown().summary(list(results.values()), interrupted=True)
        raise
    if as_json:
        print_json_line({"event": "summary", "results": [r.to_json() for r in finished],
                         "ok": all(r.status == "ok" for r in finished)})
    elif names is not None:
        shown().summary(finished)
    if any(r.status != "ok" for r in finished):
        ctx.exit(1)


def _asker(piped: str | None) -> Callable[[], Awaitable[str | None]]:
    """How --become gets the sudo password: the line read from stdin, else asked once on the
    terminal; None (each node that needs it then says how to give it) with neither."""
    import asyncio
    import getpass

    async def ask() -> str | None:
        if piped is not None:
            return piped
        if not sys.stdin.isatty():
            return None
        try:
            return await asyncio.to_thread(getpass.getpass, "sudo password for the nodes: ")
        except (EOFError, OSError):
            return None
    return ask
