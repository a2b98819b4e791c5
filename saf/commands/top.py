"""`saf top`: live metrics of every node, from the node agents."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import TYPE_CHECKING

import click

from saf.commands import common

if TYPE_CHECKING:
    import asyncio

    from rich.console import Group

    from saf.agentlink.node_links import NodeLinks

ONCE_GRACE = 20.0  # seconds beyond the connect timeout that --once waits for a first sample


@click.command("top")
@click.option("--on", "selector", default="all", show_default=True, metavar="SEL",
              help="Which nodes (see `saf exec --help`).")
@click.option("--interval", "-n", type=click.FloatRange(0.1, 3600), default=1.0,
              show_default=True, help="Seconds between samples.")
@click.option("--once", is_flag=True, help="Show one sample of every node and exit.")
@click.option("--json", "as_json", is_flag=True,
              help="With --once: one JSON object per node (state, hello, sample).")
@click.pass_context
def top(ctx: click.Context, selector: str, interval: float, once: bool, as_json: bool) -> None:
    """A live table of the cluster, one row per node: CPU, load, memory, GPUs, the cluster
    NIC's traffic, disks and NUMA, refreshed every interval. Starts saf's agent on each node
    (uploading it once). A node that stops answering is shown lost within two intervals and
    comes back on its own. `--once` exits 1 when a node gave no sample."""
    if as_json and not once:
        raise click.UsageError("--json needs --once (a live table is for people)")
    import asyncio

    from saf.agentlink.node_links import NodeLinks
    from saf.fleet import Fleet

    inventory = common.inventory(ctx)

    async def go() -> bool:
        async with Fleet(inventory) as fleet:
            nodes = await fleet.select(selector)
            names = [n.name for n in nodes]
            changed = asyncio.Event()  # set on every event the links apply to its store
            links = NodeLinks(fleet, nodes, lambda _: changed.set(), interval=interval)
            await links.start()
            try:
                if once:
                    return await _once(links, names, max(n.connect_timeout for n in nodes)
                                       + ONCE_GRACE, as_json, changed)
                await _live(links, names, interval)
                return True
            finally:
                await links.stop()

    try:
        ok = common.run(go())
    except KeyboardInterrupt:
        return
    if not ok:
        ctx.exit(1)


async def _once(links: NodeLinks, names: list[str], limit: float, as_json: bool,
                changed: asyncio.Event) -> bool:
    """Wait (at most `limit` s) until every node has a sample or is lost, then show them.
    `changed` is set each time the links apply an event to its store."""
    import asyncio

    from saf.metrics.events import NodeStatus

    store = links.store

    def settled(name: str) -> bool:
        state = store.node(name)
        return state.samples > 0 or state.status == NodeStatus.LOST

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(limit):
            while not all(settled(n) for n in names):
                changed.clear()
                await changed.wait()
    # Rich, once every node has answered or is lost: not part of the wait for the first answer.
    from saf.render.console import console
    from saf.render.top_view import problems, top_table

    now = time.time()
    if as_json:
        for name in names:
            sys.stdout.write(json.dumps(store.node(name).to_json(now)) + "\n")
        sys.stdout.flush()
    else:
        out = console()
        out.print(top_table(store, names, now, width=out.width))
        for line in problems(store, names):
            out.print(line)
    return all(store.node(n).samples > 0 for n in names)


async def _live(links: NodeLinks, names: list[str], interval: float) -> None:
    import asyncio

    from rich.console import Group
    from rich.live import Live

    from saf.render.console import console
    from saf.render.top_view import problems, top_table

    out = console()

    def view() -> Group:
        return Group(top_table(links.store, names, width=out.width), *problems(links.store, names))

    with Live(view(), console=out, auto_refresh=False, transient=False) as live:
        while True:
            await asyncio.sleep(min(1.0, interval))
            live.update(view(), refresh=True)
