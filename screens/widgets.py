"""Widgets shared by several screens: the status line, and graphs downsampled to the width
they are drawn at (min and max kept per bucket), so redraw cost stays flat however much history
the store keeps. Figures are written by saf.format, as every face writes them."""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from saf.screens.base import SafScreen, cockpit_of
from textual.app import App
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from saf.format import BLOCKS, downsample, scale_of


class Graph(Widget):
    """A multi-row graph of one metric of a node (`metric`, a store series name such as
    "cpu.percent"), drawn with block characters at the widget's own size. Its screen sets
    `values` (oldest first) from that series; only this widget repaints."""

    DEFAULT_CSS = """
    Graph { height: 3; }
    """
    values: reactive[tuple[float | None, ...]] = reactive(tuple, layout=False)

    def __init__(self, metric: str, *, top: float | None = None, colour_var: str = "primary",
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.metric = metric
        self.top = top
        self.colour_var = colour_var

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0:
            return Strip.blank(width)
        points = downsample(self.values, width)
        pad = width - len(points)
        scale = scale_of(points, self.top)
        row_from_bottom = height - 1 - y
        variables = palette(self.app)
        colour = variables.get(self.colour_var, variables.get("primary", "cyan"))
        style = Style(color=colour)
        chars = [" "] * pad
        for p in points:
            if p is None or scale <= 0:
                chars.append(" ")
                continue
            eighths = int(round(min(max(p[1] / scale, 0.0), 1.0) * height * 8))
            if p[1] > 0:
                eighths = max(eighths, 1)
            level = eighths - row_from_bottom * 8
            chars.append(BLOCKS[8] if level >= 8 else BLOCKS[level] if level > 0 else " ")
        return Strip([Segment("".join(chars), style)], width)


class StatusLine(Widget):
    """One line: live (or paused) and the clock, or the replay's position; recording;
    read-only. Every screen shows it, and its screen redraws it as the clock moves
    (SafScreen.status_moved)."""

    DEFAULT_CSS = """
    StatusLine { height: 1; }
    """

    def render(self) -> Text:
        from datetime import datetime

        app = cockpit_of(self)
        text = Text(no_wrap=True, overflow="ellipsis")
        v = palette(app)
        replayer = app.replayer
        if replayer is not None:
            mark = "⏸ paused" if replayer.paused else "▶ replay"
            path = replayer.recording.path
            text.append(f" {mark} ", style=f"bold {v['accent']}")
            text.append(f"{_clock(replayer.position)}/{_clock(replayer.recording.duration)} "
                        f"×{replayer.speed:g}  {path.name if path else ''}  ")
        else:
            # A screen whose picture is frozen says so here too, or the line would say live
            # under a header that says paused; the clock goes on.
            if isinstance(self.screen, SafScreen) and self.screen.paused:
                text.append(" ⏸ paused ", style=f"bold {v['accent']}")
            else:
                text.append(" ● live ", style=f"bold {v['success']}")
            text.append(datetime.fromtimestamp(app.clock()).strftime("%H:%M:%S") + "  ")
        if app.recorder is not None:
            text.append(" ● REC ", style=f"bold {v['error']}")
            text.append(f"{app.recorder.count} events  ")
        readonly = app.setup.readonly_reason
        if readonly is not None:
            text.append(" read-only ", style=f"bold {v['warning']}")
            text.append(f" {readonly}")
        return text


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


_PALETTES: dict[tuple[int, str], dict[str, str]] = {}


def palette(app: App[Any]) -> dict[str, str]:
    """The theme's variables as opaque '#rrggbb' colours Rich can use (theme variables may
    carry an alpha; those are blended onto the background)."""
    key = (id(app), app.theme)
    cached = _PALETTES.get(key)
    if cached is None:
        from textual.color import Color

        variables = app.theme_variables
        background = Color.parse(variables.get("background", "#000000"))
        cached = {}
        for name, value in variables.items():
            try:
                colour = Color.parse(value)
            except Exception:  # noqa: BLE001 - non-colour variables are skipped
                continue
            if colour.a < 1:
                colour = background + colour
            cached[name] = colour.hex6
        _PALETTES.clear()  # one app and theme at a time is all that is ever drawn
        _PALETTES[key] = cached
    return cached
