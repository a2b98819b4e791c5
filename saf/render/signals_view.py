"""`saf signals tail`: the signal book as a live Rich table, and frames as JSON lines."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from saf.format import sparkline
from saf.signals.book import BookSnapshot, Latency
from saf.signals.codec import ANOMALY_TYPES, REASONS, AISignal, BadFrame

SPARK_WIDTH = 40  # cells of the total rate's sparkline


def signed(value: float) -> Text:
    style = "green" if value > 0.05 else "red" if value < -0.05 else ""
    return Text(f"{value:+.2f}", style=style)


def rate(value: float) -> str:
    return f"{value / 1000:.1f}k/s" if value >= 10_000 else f"{value:.1f}/s"


def age(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def latency_line(latency: Latency | None) -> Text:
    if latency is None:
        return Text("latency: no signals yet", style="dim")
    text = Text(f"latency p50 {age(latency.p50_s)}  p90 {age(latency.p90_s)}  "
                f"p99 {age(latency.p99_s)}  max {age(latency.max_s)}  "
                f"({latency.samples} samples; receive time − publisher timestamp, "
                "includes clock skew)")
    if latency.skewed:
        text.append(f"  clocks disagree: min {latency.min_s * 1000:.0f} ms",
                    style="yellow")
    return text


def signals_table(snap: BookSnapshot) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("SYMBOL", "left"), ("DIR", "right"), ("CONF", "right"), ("SENT", "right"),
        ("ANOM P", "right"), ("TYPE", "left"), ("SCORE", "right"), ("MODEL", "right"),
        ("AGE", "right"), ("RATE", "right"), ("COUNT", "right"))
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)
    for row in snap.rows:
        s = row.signal
        kind = Text(ANOMALY_TYPES[s.anomaly_type],
                    style="bold red" if row.anomalous else "dim")
        symbol = Text(row.symbol, style="bold red" if row.anomalous else "bold")
        if row.gap:
            symbol.append(" gap", style="yellow")
        table.add_row(symbol, signed(s.price_direction), f"{s.price_confidence:.2f}",
                      signed(s.sentiment_score),
                      Text(f"{s.anomaly_probability:.2f}",
                           style="red" if row.anomalous else ""),
                      kind, signed(row.score), str(s.model_version), age(row.age_s),
                      rate(row.rate), str(row.count))
    return table


def bad_line(snap: BookSnapshot) -> Text:
    if not snap.bad:
        return Text("bad frames: none", style="dim")
    parts = ", ".join(f"{reason} {count}" for reason, count in sorted(snap.bad.items()))
    return Text(f"bad frames: {snap.bad_total} ({parts})", style="red")


# Lines `render` takes besides the table's rows: title, table header, "more", latency, bad
# frames, and the anomaly and gap logs.
CHROME_LINES = 5 + 2 * 5


def rows_that_fit(height: int) -> int:
    """How many symbol rows a terminal of `height` lines shows with the rest of `render`."""
    return max(3, height - CHROME_LINES)


def render(snap: BookSnapshot, *, title: str = "", log_lines: int = 5) -> RenderableType:
    head = Text(title + "  " if title else "", style="bold")
    head.append(f"{rate(snap.total_rate)}  {snap.total} frames  ")
    head.append(sparkline(snap.rate_history, SPARK_WIDTH), style="cyan")
    parts: list[RenderableType] = [head, signals_table(snap)]
    if snap.matching > len(snap.rows):
        parts.append(Text(f"… and {snap.matching - len(snap.rows):,} more symbols "
                          "(--symbol TEXT shows those that contain TEXT)", style="dim"))
    parts += [latency_line(snap.latency), bad_line(snap)]
    for event in snap.anomalies[-log_lines:]:
        parts.append(Text(f"anomaly {event.symbol}: {event.anomaly_name} "
                          f"p={event.probability:.2f}", style="red"))
    for gap in snap.gaps[-log_lines:]:
        state = "was silent" if gap.ended else "silent"
        parts.append(Text(f"gap {gap.symbol}: {state} {gap.silent_s:.1f} s "
                          f"(usually {age(gap.usual_s)})", style="yellow"))
    return Group(*parts)


def frame_json(recv_ns: int, item: AISignal | BadFrame, frame: bytes) -> dict[str, Any]:
    """One frame as `tail --json` prints it."""
    if isinstance(item, BadFrame):
        return {"recv_ns": recv_ns, "bad": item.reason, "why": REASONS.get(item.reason, ""),
                "detail": item.detail, "size": len(frame), "hex": frame[:64].hex()}
    return {"recv_ns": recv_ns, **item._asdict()}


def print_frame_json(recv_ns: int, item: AISignal | BadFrame, frame: bytes) -> None:
    sys.stdout.write(json.dumps(frame_json(recv_ns, item, frame)) + "\n")
