"""The dashboard's header: cluster totals on one line, alerts under it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.cells import cell_len
from rich.text import Text
from saf.screens.widgets import palette
from textual.widget import Widget

from saf.format import fmt_used
from saf.metrics.thresholds import Level
from saf.metrics.view import NodeStatus, alerts

if TYPE_CHECKING:
    from saf.screens.app import SafApp


class ClusterHeader(Widget):
    """Cluster totals and alerts, two lines (more when alerts do not fit).

    Its screen calls `show_totals` when nodes changed; the header draws again only when what
    it says changed (with many nodes the totals, rounded as shown, seldom move: drawing a
    text costs more than making it)."""

    DEFAULT_CSS = """
    ClusterHeader { height: auto; }
    """
    _lines = 0

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._text: Text | None = None

    def show_totals(self) -> None:
        """Work the totals and alerts out again; draw them if they changed."""
        text = self._totals()
        if text != self._text:
            self._text = text
            self.refresh()

    def on_resize(self) -> None:
        self._text = None  # the totals break between lines by the width

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._text = None  # a new theme: new colours

    def render(self) -> Text:
        if self._text is None:
            self._text = self._totals()
        return self._text

    def _totals(self) -> Text:
        app = cast("SafApp", self.app)
        v = palette(app)
        views = [app.view(n) for n in app.node_names]
        # One pass (the header reads every node a second, 256 of them on a big cluster).
        up = cpus = gpus = 0
        mem_used = mem_total = gpu_used = gpu_total = 0.0
        for x in views:
            live = x.status is NodeStatus.UP
            if x.has_sample:
                cpus += int(x.cpu_count or 0)
                mem_total += x.mem_total or 0
            if live:
                up += 1
                mem_used += x.mem_used or 0
            if x.gpus:
                gpus += len(x.gpus)
                used, total = x.gpu_mem()
                gpu_total += total or 0
                gpu_used += (used or 0) if live else 0
        width = max(1, self.size.width or 80)
        text = Text(no_wrap=False, overflow="fold")
        text.append(f" {app.setup.cluster} ", style=f"bold reverse {v['primary']}")
        up_style = v["success"] if up == len(views) else v["warning"] if up else v["error"]
        totals = [("nodes", f"{up}/{len(views)} up", f"bold {up_style}"), ("CPUs", str(cpus), ""),
                  ("memory", fmt_used(mem_used, mem_total), ""), ("GPUs", str(gpus), "")]
        if gpu_total:
            totals.append(("GPU memory", fmt_used(gpu_used, gpu_total), ""))
        used = cell_len(text.plain)
        for label, value, style in totals:
            # A narrow screen breaks the line between totals, never inside one ("GPU / memory").
            if used + cell_len(f"  {label} {value}") > width:
                text.append("\n")
                used = 0
            text.append(f"  {label} ", style="dim")
            text.append(value, style=style)
            used += cell_len(f"  {label} {value}")
        text.append("\n")
        found = alerts(views, app.setup.settings.thresholds)
        if not found:
            text.append(" ✓ no alerts", style=v["success"])
        for alert in sorted(found, key=lambda a: a.level is not Level.ALERT):
            colour = v["error"] if alert.level is Level.ALERT else v["warning"]
            text.append(" ▲ " if alert.level is Level.ALERT else " ● ", style=f"bold {colour}")
            text.append(alert.text, style=colour)
        # Lay out again only when the number of lines changed (layout is costly).
        lines = sum(-(-max(1, cell_len(part)) // width) for part in text.plain.split("\n"))
        if lines != self._lines:
            self._lines = lines
            self.call_after_refresh(self.refresh, layout=True)
        return text
