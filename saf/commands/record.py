"""`saf record FILE`: keep every node's agent frames, with their times, for `saf replay`."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import click

from saf.commands import common
from saf.inventory.model import Inventory


@click.command("record")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seconds", type=click.FloatRange(min=0.1), default=None,
              help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between samples of each node.")
@click.option("--on", "selector", metavar="SEL", default=None,
              help="Only these nodes: all, head, workers, NAME, tag:WORD, os:linux|macos, "
                   "or a comma list.")
# The old name, as before every command said --on: still works, with a notice.
@click.option("--nodes", "old_selector", metavar="SEL", default=None, hidden=True)
@click.pass_context
def record(ctx: click.Context, file: Path, seconds: float | None, interval: float,
           selector: str | None, old_selector: str | None) -> None:
    """Run the agents on every node and write everything they send to FILE (JSON lines),
    without opening the cockpit. Replay it with `saf replay FILE`."""
    if old_selector is not None:
        if selector is not None:
            raise click.UsageError("give --on only (--nodes is its old name)")
        click.echo("saf record: --nodes is deprecated, use --on (the same selector)", err=True)
        selector = old_selector
    inventory = common.inventory(ctx)
    common.run(_record(inventory, file, seconds, interval, selector))


async def _record(inventory: Inventory, file: Path, seconds: float | None, interval: float,
                  selector: str | None) -> None:
    from saf.agentlink.node_links import NodeLinks
    from saf.fleet import Fleet
    from saf.recording import RecordingWriter

    async with Fleet(inventory) as fleet:
        nodes = await fleet.select(selector)
        with RecordingWriter(file, nodes, cluster=inventory.cluster.name) as writer:
            links = NodeLinks(fleet, nodes, writer.write, interval=interval)
            click.secho(f"recording {len(nodes)} node(s) to {file}; Ctrl-C stops",
                        dim=True, err=True)
            started = time.monotonic()
            await links.start()
            try:
                while seconds is None or time.monotonic() - started < seconds:
                    await asyncio.sleep(min(1.0, seconds or 1.0))
                    writer.flush()
            finally:
                await links.stop()
                writer.flush()
                click.secho(f"{writer.count} events in {time.monotonic() - started:.0f} s "
                            f"written to {file}", dim=True, err=True)
