"""Widgets and text helpers shared by several screens: number formatting, bars, and graphs
downsampled to the width they are drawn at (min and max kept per bucket), so redraw cost stays
flat however much history the store keeps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

BLOCKS = " ▁▂▃▄▅▆▇█"


# -- numbers ----------------------------------------------------------------------------------
def fmt_bytes(value: float | None, *, digits: int = 1) -> str:
    """1536 -> '1.5K'; binary units, short enough for a table cell."""
    if value is None:
        return "–"
    for unit in ("B", "K", "M", "G", "T", "P"):
        if abs(value) < 1024 or unit == "P":
            if unit == "B":
                return f"{value:.0f}B"
            return f"{value:.{digits}f}{unit}"
        value /= 1024
    return "–"


def fmt_rate(bytes_per_s: float | None) -> str:
    """Network rates in bits per second, as link speeds are quoted: '940M', '9.4G'."""
    if bytes_per_s is None:
        return "–"
    bits = bytes_per_s * 8
    for unit in ("", "K", "M", "G", "T"):
        if abs(bits) < 1000 or unit == "T":
            return f"{bits:.0f}{unit}" if unit == "" or bits >= 100 else f"{bits:.1f}{unit}"
        bits /= 1000
    return "–"


def fmt_speed(mbps: float | None) -> str:
    """Link speed in Mb/s as '1G', '10G', '100M'."""
    if mbps is None or mbps <= 0:
        return "–"
    return f"{mbps / 1000:g}G" if mbps >= 1000 else f"{mbps:g}M"


def fmt_pct(value: float | None, width: int = 0) -> str:
    text = "–" if value is None else f"{value:.0f}%"
    return text.rjust(width) if width else text


def fmt_num(value: float | None, unit: str = "", digits: int = 0) -> str:
    return "–" if value is None else f"{value:.{digits}f}{unit}"


# -- graphs -----------------------------------------------------------------------------------
def downsample(values: Sequence[float | None], buckets: int) -> list[tuple[float, float] | None]:
    """Split `values` into at most `buckets` consecutive buckets and keep (min, max) of each,
    so a spike survives however narrow the graph is. Gaps (None) stay gaps."""
    n = len(values)
    if buckets <= 0 or n == 0:
        return []
    if n <= buckets:
        return [None if v is None else (v, v) for v in values]
    out: list[tuple[float, float] | None] = []
    for b in range(buckets):
        lo_i = b * n // buckets
        hi_i = max(lo_i + 1, (b + 1) * n // buckets)
        chunk = [v for v in values[lo_i:hi_i] if v is not None]
        out.append((min(chunk), max(chunk)) if chunk else None)
    return out


def sparkline(values: Sequence[float | None], width: int, *, top: float | None = None) -> str:
    """A one-line graph of the newest values, right-aligned, `width` cells wide. Each cell is
    the max of its bucket (a spike must show); `top` fixes the scale (100 for percentages)."""
    if width <= 0:
        return ""
    points = downsample(values, width)
    highs = [p[1] for p in points if p is not None]
    scale = top if top else (max(highs) if highs else 0.0)
    cells = []
    for p in points:
        if p is None:
            cells.append(" ")
        elif scale <= 0:
            cells.append(BLOCKS[1])
        else:
            level = int(round(min(max(p[1] / scale, 0.0), 1.0) * 8))
            cells.append(BLOCKS[max(level, 1)])
    return "".join(cells).rjust(width)


def bar(fraction: float | None, width: int) -> str:
    """A horizontal bar in eighths of a cell."""
    if width <= 0:
        return ""
    if fraction is None or math.isnan(fraction):
        return "·" * width
    eighths = int(round(min(max(fraction, 0.0), 1.0) * width * 8))
    full, rest = divmod(eighths, 8)
    text = "█" * full + ("▏▎▍▌▋▊▉"[rest - 1] if rest else "")
    return text.ljust(width, "·" if full == 0 and not rest else " ")


class Graph(Widget):
    """A multi-row graph of one series, drawn with block characters at the widget's own size.
    Set `values` (oldest first); only this widget repaints."""

    DEFAULT_CSS = """
    Graph { height: 3; }
    """
    values: reactive[tuple[float | None, ...]] = reactive(tuple, layout=False)

    def __init__(self, *, top: float | None = None, colour_var: str = "primary", **kw) -> None:
        super().__init__(**kw)
        self.top = top
        self.colour_var = colour_var

    def render_line(self, y: int) -> Strip:
        width, height = self.size.width, self.size.height
        if width <= 0 or height <= 0:
            return Strip.blank(width)
        points = downsample(self.values, width)
        pad = width - len(points)
        highs = [p[1] for p in points if p is not None]
        scale = self.top if self.top else (max(highs) if highs else 0.0)
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


def styled(text: str, style: str) -> Text:
    return Text(text, style=style)


class StatusLine(Widget):
    """One line: live or replay position, recording, read-only. Every screen shows it."""

    DEFAULT_CSS = """
    StatusLine { height: 1; }
    """

    def render(self) -> Text:
        from datetime import datetime

        app: Any = self.app
        text = Text(no_wrap=True, overflow="ellipsis")
        v = palette(app)
        replay = app.replay_position
        if app.replayer is not None:
            pos = replay.position if replay else app.replayer.position
            dur = replay.duration if replay else app.replayer.recording.duration
            paused = replay.paused if replay else app.replayer.paused
            speed = replay.speed if replay else app.replayer.speed
            mark = "⏸ paused" if paused else "▶ replay"
            text.append(f" {mark} ", style=f"bold {v['accent']}")
            text.append(f"{_clock(pos)}/{_clock(dur)} ×{speed:g}  {app.replay_label}  ")
        else:
            text.append(" ● live ", style=f"bold {v['success']}")
            text.append(datetime.fromtimestamp(app.clock()).strftime("%H:%M:%S") + "  ")
        if app.recorder is not None:
            text.append(" ● REC ", style=f"bold {v['error']}")
            text.append(f"{app.recorder.count} events  ")
        if app.readonly:
            text.append(" read-only ", style=f"bold {v['warning']}")
            text.append(f" {app.readonly_reason}")
        return text


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


_PALETTES: dict[tuple[int, str], dict[str, str]] = {}


def palette(app: Any) -> dict[str, str]:
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
