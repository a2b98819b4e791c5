"""`saf net test|show|compare|runs`: the links' speed matrix, measured by the netperf recipe."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from saf import defaults
from saf.commands import common
from saf.errors import SafError

if TYPE_CHECKING:
    from saf.events import Event
    from saf.recipe.events import RunStatus


@click.group("net")
def net() -> None:
    """Speed tests between the nodes: a matrix of Gbit/s and round-trip times."""


@net.command("test")
@click.option("--pairs", type=click.Choice(defaults.NET_PAIRS), default="all", show_default=True,
              help="Every pair of nodes, or the head with each other node.")
@click.option("--streams", type=click.IntRange(1, 128), default=4, show_default=True,
              help="Parallel streams of the second test (the first has one).")
@click.option("--duration", type=click.FloatRange(0.1, 3600), default=5.0, show_default=True,
              help="Counted seconds per test and direction.")
@click.option("--warmup", type=click.FloatRange(0, 600), default=1.0, show_default=True,
              help="Uncounted seconds before each test.")
@click.option("--tool", type=click.Choice(defaults.NET_TOOLS), default="saf", show_default=True,
              help="saf's own tester (in the agent), or iperf3 where both ends have it.")
@click.option("--on", "selector", metavar="SEL",
              help="Only these nodes: all, head, workers, NAME, tag:WORD, os:linux|macos, "
                   "or a comma list.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.pass_context
def test(ctx: click.Context, pairs: str, streams: int, duration: float, warmup: float,
         tool: str, selector: str | None, as_json: bool) -> None:
    """Measure TCP throughput (1 and N streams, each way), round-trip time, retransmits and
    path MTU between the nodes over their cluster addresses, a pair at a time per node.

    The same engine as `saf run netperf`; the run shows in `saf runs` and its matrix in
    `saf net show` and the cockpit's Network screen. Exits 1 when a test failed."""
    from saf.fleet import Fleet
    from saf.net import store
    from saf.net.engine import NetOptions
    from saf.recipe import library
    from saf.recipe.events import RunStatus
    from saf.recipe.log import new_run_id
    from saf.recipe.run import RunPlan, run_recipe
    from saf.render.console import console, print_json_line

    inventory = common.inventory(ctx)
    options = NetOptions(pairs, streams, duration, warmup, tool)
    plan = RunPlan(library.load("netperf"),
                   {"pairs": pairs, "streams": str(streams), "duration": f"{duration:g}",
                    "warmup": f"{warmup:g}", "tool": tool}, selector)
    problem = options.problem()
    if problem:
        raise click.UsageError(problem)
    run_id = new_run_id()
    view = None
    if not as_json:
        from saf.render.run_view import RunView
        view = RunView(verbose=True)

    def show(event: Event) -> None:
        if view is not None:
            view(event)

    async def go() -> RunStatus:
        async with Fleet(inventory) as fleet:
            return await run_recipe(plan, fleet, show, run_id=run_id)

    try:
        status = common.run(go())
    finally:
        if view is not None:
            view.close()
    try:
        result = store.load(store.path_of(run_id))
    except SafError:
        result = None
    if as_json:
        if result is not None:
            print_json_line({**result.to_json(), "warnings": result.warnings()})
        else:
            print_json_line({"run": run_id, "status": status, "error": "nothing was measured"})
    elif result is not None:
        from saf.render.net_view import result_view
        console().print(result_view(result))
    if status != RunStatus.OK or result is None or result.status != "ok":
        ctx.exit(1)


@net.command("show")
@click.argument("run", default="last")
@click.option("--json", "as_json", is_flag=True, help="The result as one JSON object.")
@click.pass_context
def show_cmd(ctx: click.Context, run: str, as_json: bool) -> None:
    """Show a past speed test's matrix (RUN: an id, a unique prefix, `last` or `previous`)."""
    from saf.net import store
    from saf.render.console import console, print_json_line

    result = store.find(run, cluster=_cluster(ctx))
    if as_json:
        print_json_line({**result.to_json(), "warnings": result.warnings()})
        return
    from saf.render.net_view import result_view
    console().print(result_view(result))


@net.command("compare")
@click.argument("before", default="previous")
@click.argument("after", default="last")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per link.")
@click.pass_context
def compare_cmd(ctx: click.Context, before: str, after: str, as_json: bool) -> None:
    """Compare two speed tests link by link (default: the one before the last, and the last),
    e.g. before and after a 10GbE switch."""
    from saf.net import store
    from saf.render.console import console

    cluster = _cluster(ctx)
    a, b = store.find(before, cluster=cluster), store.find(after, cluster=cluster)
    from saf.net.results import compare
    changes = compare(a, b)
    if as_json:
        for c in changes:
            print(json.dumps({"sender": c.sender, "receiver": c.receiver, "streams": c.streams,
                              "before_gbps": c.before, "after_gbps": c.after,
                              "ratio": c.ratio}))
        return
    from saf.render.net_view import compare_view
    console().print(compare_view(a, b, changes))


@net.command("runs")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per speed test.")
@click.pass_context
def runs_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the saved speed tests of this cluster, oldest first."""
    from saf.net import store
    from saf.render.console import console, print_json_line

    found = store.list_results(cluster=_cluster(ctx))
    if as_json:
        for r in found:
            print_json_line({"run": r.run, "cluster": r.cluster, "status": r.status,
                             "started": r.started, "nodes": r.nodes, "tool": r.tool,
                             "pairs": r.pairs, "streams": r.streams})
        return
    from saf.render.net_view import runs_view
    console().print(runs_view(found))


def _cluster(ctx: click.Context) -> str | None:
    try:
        return common.inventory(ctx).cluster.name
    except SafError:
        return None
