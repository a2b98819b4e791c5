"""How saf writes a figure, for every face: the cockpit's screens and the headless renderers.

One glyph for a value the node did not measure, one byte format, one rate format, one
sparkline: two formatters with one job drift apart, so there is one of each, here. Plain text
only (no Rich, no Textual): each face adds its own colours. It sits at the bottom of the
core's layers (it imports nothing of saf), so the low helpers that write a figure in a message
(`saf.shell`'s size limit, `saf.select`'s lists of names) need not reach up into `saf.metrics`.

The units (help and docs/cockpit.md say the same): network rates and link speeds in bits per
second with powers of 1000, as links are quoted; sizes, memory and disk rates in bytes with
powers of 1024; an MTU in bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import cast

MISSING = "–"  # a value the node did not measure: never a made-up 0
BLOCKS = " ▁▂▃▄▅▆▇█"


def fmt_some(words: list[str], shown: int) -> str:
    """The first `shown` of a list and how many more: 'a, b, c and 47 more' (a message about
    fifty nodes, or five thousand, stays one short line)."""
    first = ", ".join(words[:shown])
    return first if len(words) <= shown else f"{first} and {len(words) - shown} more"


def fmt_bytes(value: float | None, *, digits: int = 1) -> str:
    """1536 -> '1.5K'; binary units, short enough for a table cell."""
    if value is None:
        return MISSING
    for unit in ("B", "K", "M", "G", "T"):
        if abs(value) < 1024:
            return f"{value:.0f}B" if unit == "B" else f"{value:.{digits}f}{unit}"
        value /= 1024
    return f"{value:.{digits}f}P"


def fmt_used(used: float | None, total: float | None) -> str:
    """A part of a whole in bytes, both in the whole's unit, three figures: '1.8/23.5G',
    '412/503G', '0.5/1.0T'. Memory, swap, GPU memory and a NUMA node's memory are written
    this way on every screen, so one figure never reads two ways (and it fits ten cells)."""
    if not total or total <= 0:
        return MISSING
    scale, unit = 1.0, "B"
    for unit in ("B", "K", "M", "G", "T", "P"):
        if total / scale < 1000 or unit == "P":
            break
        scale *= 1024
    shown = total / scale
    digits = 1 if shown < 100 and unit != "B" else 0
    part = MISSING if used is None else f"{used / scale:.{digits}f}"
    return f"{part}/{shown:.{digits}f}{unit}"


def fmt_rate(bytes_per_s: float | None) -> str:
    """Network rates in bits per second, as link speeds are quoted: '940M', '9.4G'."""
    if bytes_per_s is None:
        return MISSING
    bits = bytes_per_s * 8
    for unit in ("", "K", "M", "G"):
        if abs(bits) < 1000:
            return f"{bits:.0f}{unit}" if unit == "" or bits >= 100 else f"{bits:.1f}{unit}"
        bits /= 1000
    return f"{bits:.0f}T" if bits >= 100 else f"{bits:.1f}T"


def fmt_byte_rate(bytes_per_s: float | None) -> str:
    """Disk rates in bytes per second, binary units as sizes are: '1.5M/s'."""
    return MISSING if bytes_per_s is None else f"{fmt_bytes(bytes_per_s)}/s"


def fmt_speed(mbps: float | None) -> str:
    """Link speed in Mb/s as '1G', '10G', '100M'."""
    if mbps is None or mbps <= 0:
        return MISSING
    return f"{mbps / 1000:g}G" if mbps >= 1000 else f"{mbps:g}M"


def fmt_num(value: float | None, unit: str = "", digits: int = 0) -> str:
    return MISSING if value is None else f"{value:.{digits}f}{unit}"


def fmt_count(value: float | None) -> str:
    """Event counts and rates in decimal units: 41234 -> '41.2k'."""
    if value is None:
        return MISSING
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def downsample(values: Sequence[float | None], buckets: int) -> list[tuple[float, float] | None]:
    """Split `values` into at most `buckets` consecutive buckets and keep (min, max) of each,
    so a spike survives however narrow the graph is. Gaps (None) stay gaps."""
    if buckets <= 0 or not values:
        return []
    if len(values) <= buckets:
        return [None if v is None else (v, v) for v in values]
    return [(min(chunk), max(chunk)) if chunk else None
            for chunk in _buckets(values, buckets)]


def _bounds(n: int, buckets: int) -> Iterator[slice]:
    """`n` values (more of them than `buckets`) split into `buckets` consecutive runs."""
    for b in range(buckets):
        lo = b * n // buckets
        yield slice(lo, max(lo + 1, (b + 1) * n // buckets))


def _buckets(values: Sequence[float | None], buckets: int) -> Iterator[list[float]]:
    """`values` split into `buckets` consecutive runs (`_bounds`), the gaps (None) left out
    of each."""
    for run in _bounds(len(values), buckets):
        yield [v for v in values[run] if v is not None]


def scale_of(points: Sequence[tuple[float, float] | None], top: float | None) -> float:
    """The value a full cell stands for: `top` when fixed (100 for percentages), else the
    highest point drawn."""
    if top:
        return top
    return max((p[1] for p in points if p is not None), default=0.0)


def sparkline(values: Sequence[float | None], width: int, *, top: float | None = None) -> str:
    """A one-line graph of the newest values, right-aligned, `width` cells wide. Each cell is
    the max of its bucket (a spike must show); `top` fixes the scale (100 for percentages)."""
    if width <= 0:
        return ""
    # The max of each bucket (as `downsample` splits them), without its (min, max) pairs:
    # the dashboard draws one of these for every row, every second, so a history without
    # gaps (the usual one) is cut by plain slices.
    n = len(values)
    highs: list[float | None]
    if n <= width:
        highs = list(values)
    elif None not in values:
        full = cast("Sequence[float]", values)
        highs = [max(full[run]) for run in _bounds(n, width)]
    else:
        highs = [max(chunk) if chunk else None for chunk in _buckets(values, width)]
    scale = top or max((h for h in highs if h is not None), default=0.0)
    cells = []
    for h in highs:
        if h is None:
            cells.append(" ")
        elif scale <= 0:
            cells.append(BLOCKS[1])
        else:
            eighths = h / scale * 8  # a full cell at `scale`, nothing below 0 or above 8
            level = 0 if eighths <= 0 else 8 if eighths >= 8 else round(eighths)
            cells.append(BLOCKS[level] if level > 1 else BLOCKS[1])
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


def fmt_gbps(bits_per_s: float | None, digits: int = 2) -> str:
    """A measured throughput in Gbit/s, the number alone: '9.41', '0.94'."""
    return MISSING if bits_per_s is None else f"{bits_per_s / 1e9:.{digits}f}"


def fmt_ms(ms: float | None) -> str:
    """A round-trip time: '0.08 ms', '12.3 ms', '140 ms'."""
    if ms is None:
        return MISSING
    if ms < 10:
        return f"{ms:.2f} ms"
    return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_percent(fraction: float | None, digits: int = 1) -> str:
    """0.945 -> '94.5 %'."""
    return MISSING if fraction is None else f"{fraction * 100:.{digits}f} %"


def fmt_link(mbps: float | None) -> str:
    """A link's line rate as it is sold: '1 GbE', '2.5 GbE', '10 GbE', '100 Mbit/s'."""
    if mbps is None or mbps <= 0:
        return MISSING
    return f"{mbps / 1000:g} GbE" if mbps >= 1000 else f"{mbps:g} Mbit/s"


def fmt_uptime(seconds: float | None) -> str:
    """How long something has run: '42s', '7m12s', '3h05m', '2d04h'."""
    if seconds is None:
        return MISSING
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
