"""`saf status` as tables, one per section (nodes, Ray, services, models), each a row per
part with its verdict last-but-one and why beside it; they fit 80 columns by leaving out the
less telling columns (saf.render.columns). The cockpit's Cluster screen shows the same rows."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from saf.format import MISSING
from saf.render.columns import Column, fitted_table
from saf.up.status import ClusterStatus, Judged, ModelRow, RayRow, ServiceRow

VERDICT_STYLES = {"as declared": "green", "not kept across reboots": "yellow",
                  "missing": "red", "differs": "yellow", "down": "red", "unreachable": "red",
                  "not declared": "yellow"}
SECTIONS = ("nodes", "ray", "services", "models")


def verdict(judged: Judged) -> Text:
    return Text(judged.verdict, style=VERDICT_STYLES.get(judged.verdict, ""))


def _why(judged: Judged) -> Text:
    return Text(judged.why or "", style="dim")


def _opt(value: object) -> Text:
    return Text(MISSING if value is None or value == "" else str(value))


def _amounts(values: dict[str, float] | None, keys: list[str]) -> Text:
    if values is None:
        return Text(MISSING)
    shown = [f"{k} {values.get(k, 0):g}" for k in keys] or \
        [f"{k} {v:g}" for k, v in sorted(values.items()) if k in ("CPU", "GPU")]
    return Text(", ".join(shown) or MISSING)


NODE_COLUMNS: tuple[Column, ...] = (
    Column("NODE", "left"), Column("HOST", "left", priority=2),
    Column("VERDICT", "left"), Column("WHY", "left", priority=1))
RAY_COLUMNS: tuple[Column, ...] = (
    Column("NODE", "left"), Column("ROLE", "left", priority=3),
    Column("DECLARED", "left", priority=2), Column("FOUND", "left", priority=2),
    Column("VERDICT", "left"), Column("WHY", "left", priority=1))
SERVICE_COLUMNS: tuple[Column, ...] = (
    Column("SERVICE", "left"), Column("NODE", "left"),
    Column("STATE", "left", priority=2), Column("BY", "left", priority=4),
    Column("RESTARTS", priority=3), Column("SINCE", "left", priority=5),
    Column("CHECK", "left", priority=3), Column("VERDICT", "left"),
    Column("WHY", "left", priority=1))
MODEL_COLUMNS: tuple[Column, ...] = (
    Column("MODEL", "left"), Column("NODE", "left"), Column("PORT", priority=2),
    Column("ENGINE", "left", priority=3), Column("STATE", "left", priority=2),
    Column("RESTARTS", priority=4), Column("CHECKED", "left", priority=5),
    Column("VERDICT", "left"), Column("WHY", "left", priority=1))


def node_rows(status: ClusterStatus) -> list[list[Text]]:
    return [[Text(n.node), Text(n.host), verdict(n.judged), _why(n.judged)]
            for n in status.nodes]


def ray_rows(rows: list[RayRow]) -> list[list[Text]]:
    return [[Text(r.node), Text("head" if r.head else "worker"),
             _amounts(r.declared, sorted(r.declared)),
             _amounts(r.found, sorted(r.declared)), verdict(r.judged), _why(r.judged)]
            for r in rows]


def service_rows(rows: list[ServiceRow]) -> list[list[Text]]:
    return [[Text(r.service), Text(r.node), _opt(r.state), _opt(r.manager),
             _opt(r.restarts), _opt(r.since), _opt(r.check), verdict(r.judged), _why(r.judged)]
            for r in rows]


def _checked(row: ModelRow) -> Text:
    check = row.last_check or {}
    at = check.get("at")
    ttft = check.get("ttft")
    mean = ttft.get("mean") if isinstance(ttft, dict) else ttft
    if not isinstance(at, int | float):
        return Text(MISSING)
    return Text(f"ttft {mean * 1000:.0f} ms" if isinstance(mean, int | float) else "checked")


def model_rows(rows: list[ModelRow]) -> list[list[Text]]:
    return [[Text(r.model), Text(r.node), Text(str(r.port)), Text(r.engine), _opt(r.state),
             _opt(r.restarts), _checked(r), verdict(r.judged), _why(r.judged)] for r in rows]


def section(name: str, status: ClusterStatus, width: int | None) -> RenderableType | None:
    """One section's table (None when nothing of it is declared)."""
    if name == "nodes":
        columns, rows, title = NODE_COLUMNS, node_rows(status), "Nodes"
    elif name == "ray":
        if not status.ray_declared:
            return None
        columns, rows = RAY_COLUMNS, ray_rows(status.ray)
        title = "Ray" + (f" ({status.ray_problem})" if status.ray_problem else "")
    elif name == "services":
        if not status.services:
            return None
        columns, rows, title = SERVICE_COLUMNS, service_rows(status.services), "Services"
    else:
        if not status.models:
            return None
        columns, rows, title = MODEL_COLUMNS, model_rows(status.models), "Models"
    table, _ = fitted_table(columns, rows, width, header_style="bold")
    return Group(Text(title, style="bold", no_wrap=True, overflow="ellipsis"), table)


def summary(status: ClusterStatus) -> Text:
    counts = status.counts()
    if status.as_declared:
        text = Text(f"{status.cluster}: as declared", style="bold green")
    else:
        text = Text(f"{status.cluster}: not as declared", style="bold red")
    return text.append(" (" + ", ".join(f"{n} {v}" for v, n in counts.items()) + ")",
                       style="dim") if counts else text


def status_view(status: ClusterStatus, width: int | None) -> RenderableType:
    parts: list[RenderableType] = [summary(status)]
    for name in SECTIONS:
        table = section(name, status, width)
        if table is not None:
            parts += [Text(""), table]
    return Group(*parts)
