"""The Ray cluster as Rich renderables: `saf ray status` and `saf ray jobs` print them, and the
cockpit's Ray screen shows the same picture."""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.text import Text

from saf.format import MISSING, fmt_bytes
from saf.ray.status import RayJob, RayNode, RayStatus
from saf.render.columns import Column, fitted_line, fitted_table

JOB_STYLES = {"SUCCEEDED": "green", "FAILED": "red", "STOPPED": "yellow", "RUNNING": "cyan",
              "PENDING": "cyan"}


def _figure(value: float) -> str:
    return f"{value:g}"


def _use(used: float | None, total: float | None) -> str:
    if not total:
        return MISSING
    return f"{_figure(used or 0.0)}/{_figure(total)}"


def _resources(node: RayNode) -> str:
    custom = {k: v for k, v in node.resources.items() if k not in ("CPU", "GPU")}
    return " ".join(f"{k}={_figure(v)}" for k, v in sorted(custom.items())) or MISSING


def duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"


def summary(status: RayStatus, width: int | None = None) -> Text:
    """One line of totals; in `width`, it leaves out the dashboard's URL, then the object
    store, the memory and the GPUs, rather than wrap."""
    alive = len(status.alive)
    parts = [(Text(f"{alive}/{len(status.nodes)} nodes alive",
                   style="green" if alive == len(status.nodes) else "yellow"), 0),
             (Text(f"  CPU {_use(status.used('CPU'), status.total('CPU'))}"), 0)]
    if status.total("GPU"):
        parts.append((Text(f"  GPU {_use(status.used('GPU'), status.total('GPU'))}"), 1))
    parts += [(Text(f"  memory {fmt_bytes(status.memory)}"), 2),
              (Text(f"  object store {fmt_bytes(status.object_store_used)}/"
                    f"{fmt_bytes(status.object_store)}"), 3),
              (Text(f"  dashboard {status.dashboard_url}", style="dim"), 4)]
    return fitted_line(parts, width)


NODE_COLUMNS = (Column("NODE", "left"), Column("STATE", "left"), Column("ADDRESS", "left", 2),
                Column("CPU"), Column("GPU", priority=1), Column("MEMORY", priority=3),
                Column("OBJECT STORE", priority=2), Column("RESOURCES", "left", 1))


def nodes_table(status: RayStatus, width: int | None) -> RenderableType:
    rows = []
    for node in status.nodes:
        state = Text(node.state + (" (head)" if node.head else ""),
                     style="green" if node.alive else "red")
        rows.append([Text(node.name), state, Text(node.address),
                     Text(_use(node.used.get("CPU"), node.resources.get("CPU"))),
                     Text(_use(node.used.get("GPU"), node.resources.get("GPU"))),
                     Text(fmt_bytes(node.memory)),
                     Text(f"{fmt_bytes(node.object_store_used)}/"
                          f"{fmt_bytes(node.object_store)}"),
                     Text(_resources(node))])
    table, _ = fitted_table(NODE_COLUMNS, rows, width, header_style="bold")
    return table


JOB_COLUMNS = (Column("JOB", "left"), Column("STATE", "left"), Column("DURATION"),
               Column("ENTRYPOINT", "left", 1))


def jobs_table(jobs: list[RayJob], width: int | None, now: float | None = None) -> RenderableType:
    if not jobs:
        return Text("no jobs yet", style="dim")
    now = now or time.time()
    rows = [[Text(j.job_id), Text(j.status, style=JOB_STYLES.get(j.status, "")),
             Text(duration(j.duration(now))), Text(j.entrypoint[:80])] for j in jobs]
    table, _ = fitted_table(JOB_COLUMNS, rows, width, header_style="bold")
    return table


def status_view(status: RayStatus, width: int | None, *, jobs: bool = True,
                now: float | None = None) -> Group:
    parts: list[RenderableType] = [summary(status, width), Text(), nodes_table(status, width)]
    if jobs:
        parts += [Text(), Text("Jobs", style="bold"), jobs_table(status.jobs[:20], width, now)]
    return Group(*parts)
