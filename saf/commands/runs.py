"""`saf runs`: past recipe runs; `saf runs show RUN` replays one."""

from __future__ import annotations

import click

from saf.commands import common
from saf.errors import SafError


@click.group("runs", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@click.option("--all", "every", is_flag=True,
              help="Runs of every cluster, not only the inventory's.")
@click.pass_context
def runs(ctx: click.Context, as_json: bool, every: bool) -> None:
    """List past recipe runs of this inventory's cluster, newest last (--all: of every
    cluster). A run whose saf was killed shows `interrupted`."""
    if ctx.invoked_subcommand is not None:
        return

    import datetime

    from rich.table import Table
    from rich.text import Text

    from saf.recipe.events import status_label
    from saf.recipe.log import list_runs
    from saf.render.console import console, print_json_line, seconds
    from saf.render.run_view import STATUS_STYLE

    cluster = None if every else _cluster(ctx)
    found = list_runs(cluster=cluster)
    if as_json:
        for s in found:
            print_json_line({"run": s.run, "recipe": s.started.recipe,
                             "cluster": s.started.cluster, "status": s.status,
                             "started": s.started.time, "check": s.started.check,
                             "nodes": s.started.nodes, "path": str(s.path),
                             "counts": s.finished.counts if s.finished else {},
                             "duration": s.finished.duration if s.finished else None})
        return
    out = console()
    if not found:
        where = f" on cluster {cluster} (`saf runs --all` shows every cluster's)" \
            if cluster is not None else ""
        out.print(f"no runs yet{where} (try `saf run hello`)")
        return
    table = Table(box=None, header_style="bold")
    columns = ["RUN", "RECIPE", "STARTED", "STATUS", "DURATION", "NODES", "STEPS"]
    if cluster is None:
        columns.insert(1, "CLUSTER")
    for column in columns:
        table.add_column(column)
    for s in found:
        when = datetime.datetime.fromtimestamp(s.started.time).strftime("%Y-%m-%d %H:%M:%S")
        counts = s.finished.counts if s.finished else {}
        status = s.status + (" (check)" if s.started.check else "")
        table.add_row(s.run, *([s.started.cluster or "?"] if cluster is None else []),
                      s.started.recipe, when,
                      Text(status, style=STATUS_STYLE.get(s.status, "")),
                      seconds(s.finished.duration) if s.finished else "—",
                      str(len(s.started.nodes)),
                      ", ".join(f"{n} {status_label(k, s.started.check)}"
                                for k, n in sorted(counts.items())))
    out.print(table)


def _cluster(ctx: click.Context) -> str | None:
    """The inventory's cluster name; None (every cluster) when there is no inventory."""
    try:
        return common.inventory(ctx).cluster.name
    except SafError:
        return None


@runs.command("show")
@click.argument("run", default="last")
@click.option("--json", "as_json", is_flag=True, help="The log's events as JSON lines.")
@click.option("--verbose", "-v", is_flag=True, help="Show every line of output.")
def show(run: str, as_json: bool, verbose: bool) -> None:
    """Replay RUN's log (an id, a unique prefix of one, or `last`)."""
    from saf.recipe.log import find_run, read_events
    from saf.render.console import print_json_line

    summary = find_run(run)
    events = read_events(summary.path)
    if as_json:
        for event in events:
            print_json_line(event)
        return
    from saf.render.run_view import RunView
    view = RunView(live=False, verbose=verbose)
    for event in events:
        view(event)
    if summary.finished is None:
        view.summary()
