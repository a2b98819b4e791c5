"""`saf demo`: saf on an embedded three-node cluster, no real cluster needed."""

from __future__ import annotations

import os

import click

from saf.demo.cluster import DemoCluster


@click.command("demo", context_settings={"ignore_unknown_options": True,
                                         "allow_interspersed_args": False})
@click.option("--headless", is_flag=True,
              help="Run the saf command given after it (e.g. `nodes`, `exec uptime`) "
                   "against the demo cluster instead of opening the cockpit.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def demo(ctx: click.Context, headless: bool, command: tuple[str, ...]) -> None:
    """Start a demo cluster on this machine: three nodes (alpha head, beta and gamma workers)
    served by SSH servers on loopback with throwaway keys, host keys verified as for any node.
    When it ends, its servers, agents and every command run on it stop, but for what saf
    starts to outlive a session on any node, which keeps running here too:

    \b
    - model servers (`saf run models`): listed by `saf demo --headless models`,
      stopped by `saf demo --headless models stop NODE:PORT`;
    - a Ray cluster (`saf run ray-up`): stopped by `saf demo --headless run ray-down`.

    \b
    saf demo --headless nodes
    saf demo --headless exec uptime
    """
    if not headless:
        if command:
            raise click.UsageError("a command after `saf demo` needs --headless")
        _cockpit(ctx)
        return
    if not command:
        raise click.UsageError("give the saf command to run, e.g. `saf demo --headless nodes`")
    # The root command (saf.cli's group) runs the inner command: found through click's context,
    # not imported, as saf.cli imports the commands and not the other way round.
    cli = ctx.find_root().command

    with DemoCluster() as cluster:
        os.environ["SAF_INVENTORY"] = str(cluster.inventory_path)
        click.secho(f"demo cluster up: {cluster.inventory_path}", dim=True, err=True)
        code = cli.main(args=list(command), prog_name="saf", standalone_mode=False)
    if isinstance(code, int) and code:
        ctx.exit(code)


def _cockpit(ctx: click.Context) -> None:
    """The cockpit on the demo cluster, with live agents and its demo signal stream (the
    cluster publishes it on loopback; the inventory's [signals] table points at it)."""
    from saf.commands.tui import cockpit
    from saf.inventory import load_inventory

    readonly = bool((ctx.find_root().obj or {}).get("readonly"))
    with DemoCluster() as cluster:
        app = cockpit(load_inventory(cluster.inventory_path), readonly=readonly)
        app.run()
