"""The Signals screen: the cluster's ZeroMQ trading-signal stream, live.

A table per symbol (direction, confidence, sentiment, anomaly probability and type, ensemble
score, model version, age, rate), the total rate as a sparkline, latency percentiles with the
clock-skew caveat, the anomaly and gap log, and bad frames by reason. `/` filters by symbol,
`p` pauses the picture (the book keeps counting underneath).

The data comes from the app's `SignalFeed` (saf/signals/feed.py, `SafApp.signal_feed()`), so
the subscription and the book outlive the screen: the first time the screen opens, the app
makes a live feed from the context's inventory's [signals] table (reusing the fleet's SSH
connections for ssh:// endpoints) and starts it as an app worker. The screen redraws from the
book at most 10 times a second, whatever the frame rate.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from saf.screens.base import SafScreen
from saf.screens.footer import FittingFooter
from saf.screens.widgets import StatusLine, palette
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Static

from saf.format import sparkline
from saf.render.columns import Column, fitted_line, fitted_table, left_out_words
from saf.signals.book import BookSnapshot
from saf.signals.codec import ANOMALY_TYPES, REASONS
from saf.signals.feed import SignalFeed

REDRAW_S = 0.1  # at most 10 redraws a second, however fast frames come
LOG_LINES = 8
LOWER_ROWS = 8  # the lower panels' height side by side, borders included

# What a narrow screen keeps longest: the symbol, its direction and score, whether it is
# anomalous; the model version and the sentiment go first.
COLUMNS = (Column("SYMBOL", "left"), Column("DIR"), Column("CONF", priority=3),
           Column("SENT", priority=5), Column("ANOM", priority=2),
           Column("TYPE", "left", priority=4), Column("SCORE"), Column("MODEL", priority=6),
           Column("AGE", priority=1), Column("RATE", priority=3))


def _rate(value: float) -> str:
    return f"{value / 1000:.1f}k/s" if value >= 10_000 else f"{value:.1f}/s"


def _age(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


class SignalsScreen(SafScreen[None]):
    BINDING_GROUP_TITLE = "Signals"
    BINDINGS = [
        Binding("escape", "back", "Back", id="signals.back",
                tooltip="Close the filter, or go back to the previous screen"),
        Binding("slash", "filter", "Filter", id="signals.filter",
                tooltip="Show only symbols containing some text"),
        Binding("p", "pause", "Pause", id="signals.pause",
                tooltip="Freeze the picture; the stream is still counted underneath"),
    ]

    # Under 80 columns (a tablet held upright) the three lower panels stack: side by side,
    # each would be a third of too little.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (80, "-wide")]

    DEFAULT_CSS = """
    SignalsScreen #signals-table-box {
        height: 1fr;
    }
    SignalsScreen #signals-lower {
        height: auto;
    }
    SignalsScreen.-narrow #signals-lower {
        layout: vertical;
        max-height: 50%;
    }
    SignalsScreen .signals-panel {
        width: 1fr;
        height: auto;
        max-height: 8;
    }
    SignalsScreen #signals-filter {
        display: none;
    }
    SignalsScreen #signals-filter.shown {
        display: block;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.feed: SignalFeed | None = None
        self.paused = False
        self.filter = ""
        self.key_presses = 0  # for the benchmark's key-press probe
        self.redraws = 0

    def compose(self) -> ComposeResult:
        yield Static(id="signals-header", classes="screen-header one-line")
        table_box = VerticalScroll(Static(id="signals-table"), id="signals-table-box",
                                   classes="panel")
        table_box.border_title = "Symbols"
        yield table_box
        panels = []
        for ident, title in (("latency", "Latency"), ("bad", "Bad frames"),
                             ("log", "Anomalies and gaps")):
            panel = Vertical(Static(id=f"signals-{ident}"), classes="signals-panel panel",
                             id=f"signals-{ident}-box")
            panel.border_title = title
            panels.append(panel)
        yield Horizontal(*panels, id="signals-lower")
        yield Input(placeholder="symbol contains…", id="signals-filter", classes="filter")
        yield StatusLine()
        yield FittingFooter()

    def on_mount(self) -> None:
        self.feed = self.cockpit.signal_feed()
        self.redraw()
        self.set_interval(REDRAW_S, self.redraw, name="signals-redraw")

    def on_screen_resume(self) -> None:
        self.redraw()

    def on_resize(self) -> None:
        # The table's columns are chosen for its width: choose again once the new layout is in.
        self.call_after_refresh(self.redraw, True)

    # -- actions ------------------------------------------------------------------------------
    def action_back(self) -> None:
        box = self.query_one("#signals-filter", Input)
        if box.has_class("shown"):
            box.remove_class("shown")
            return
        self.cockpit.go_back()

    def action_filter(self) -> None:
        box = self.query_one("#signals-filter", Input)
        box.add_class("shown")
        box.focus()

    def action_pause(self) -> None:
        self.key_presses += 1
        self.paused = not self.paused
        self.redraw(force=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter = event.value.strip()
        self.redraw(force=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.input.remove_class("shown")
        self.set_focus(None)

    # -- drawing ------------------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        if self.feed is None or (self.paused and not force):
            return
        self.redraws += 1
        box = self.query_one("#signals-table-box")
        # Only the rows that fit are made: a stream of thousands of symbols costs what the
        # screen shows, and the filter (/) finds the rest.
        fits = box.content_size.height - 1 if box.content_size.height > 1 else self.app.size.height
        snap = self.feed.book.snapshot(self.feed.now_ns(), symbols=self.filter,
                                       limit=max(3, fits))
        v = palette(self.app)
        self.query_one("#signals-header", Static).update(self._header(snap, v))
        table, left_out = self._table(snap, v)
        self.query_one("#signals-table", Static).update(table)
        title = f"Symbols · filter: {self.filter}" if self.filter else "Symbols"
        if snap.matching > len(snap.rows):
            title += f" · {len(snap.rows)} of {snap.matching:,} · / to search"
        if left_out:
            title += f" · {left_out_words(left_out)}"
        box.border_title = title
        self.query_one("#signals-latency", Static).update(self._latency(snap, v))
        self.query_one("#signals-bad", Static).update(self._bad(snap, v))
        self.query_one("#signals-bad-box").set_class(bool(snap.bad), "alert")
        log, shown, held = self._log(snap, v)
        self.query_one("#signals-log", Static).update(log)
        # Under the panel, where a narrow one's title has no room for it.
        self.query_one("#signals-log-box").border_subtitle = (
            f"newest {shown} of {held}" if shown < held else "")

    def _header(self, snap: BookSnapshot, v: dict[str, str]) -> Text:
        """Two lines: what the feed is and how it goes, then the total rate's history. The
        first line leaves out the frame count, then the endpoint, then its state rather than
        wrap (a tablet held upright)."""
        assert self.feed is not None
        parts: list[tuple[Text, int]] = [(Text(" Signals ", style=f"bold {v['primary']}"), 0),
                                         (Text(f"{self.feed.label}  "), 2)]
        if self.feed.error:
            parts.append((Text(f"error: {self.feed.error}  ", style=f"bold {v['error']}"), 1))
        elif self.feed.sources:
            states = set(self.feed.sources.values())
            ok = any(s.startswith("connected") for s in states)
            parts.append((Text(("connected" if ok else ", ".join(sorted(states))) + "  ",
                               style=v["success"] if ok else v["warning"]), 1))
        if self.paused:
            parts.append((Text.assemble((" ⏸ paused ", f"bold {v['accent']}"), "  "), 0))
        parts.append((Text(_rate(snap.total_rate), style="bold"), 0))
        parts.append((Text(f"  {snap.total:,} frames", style="bold"), 3))
        width = self.size.width or self.app.size.width
        text = fitted_line(parts, width)
        text.append("\n rate ")
        text.append(sparkline(snap.rate_history, max(10, width - 8)), style=v["primary"])
        return text

    def _table(self, snap: BookSnapshot, v: dict[str, str]) -> tuple[Table | Text, int]:
        """The symbols' table at the box's width, and how many columns it left out."""
        if not snap.rows:
            why = "no symbol matches the filter" if self.filter else "waiting for signals…"
            return Text(why, style=v.get("text-muted", v["foreground"])), 0

        def signed(value: float) -> Text:
            style = v["success"] if value > 0.05 else v["error"] if value < -0.05 else ""
            return Text(f"{value:+.2f}", style=style)

        rows = []
        for row in snap.rows:
            s = row.signal
            hot = f"bold {v['error']}" if row.anomalous else ""
            symbol = Text(row.symbol, style=hot or "bold")
            if row.gap:
                symbol.append(" gap", style=f"bold {v['warning']}")
            age_style = v["warning"] if row.gap else ""
            rows.append([symbol, signed(s.price_direction), Text(f"{s.price_confidence:.2f}"),
                         signed(s.sentiment_score),
                         Text(f"{s.anomaly_probability:.2f}", style=hot),
                         Text(ANOMALY_TYPES[s.anomaly_type], style=hot),
                         signed(row.score), Text(str(s.model_version)),
                         Text(_age(row.age_s), style=age_style), Text(_rate(row.rate))])
        # Before the first layout the box has no size yet: the screen's less the box's frame.
        width = self.query_one("#signals-table-box").content_size.width or self.app.size.width - 4
        return fitted_table(COLUMNS, rows, width,
                            header_style=f"bold {v['primary']}", expand=True)

    def _latency(self, snap: BookSnapshot, v: dict[str, str]) -> Text:
        lat = snap.latency
        if lat is None:
            return Text("no signals yet", style=v.get("text-muted", v["foreground"]))
        text = Text()
        for name, value in (("p50", lat.p50_s), ("p90", lat.p90_s), ("p99", lat.p99_s),
                            ("max", lat.max_s)):
            text.append(f"{name} ", style="bold")
            text.append(f"{_age(value)}  ")
        text.append(f"\nreceived − stamped, over {lat.samples:,} signals; includes the "
                    "clock skew between machines", style=v.get("text-muted", v["foreground"]))
        if lat.skewed:
            text.append(f"\nClocks disagree: min {lat.min_s * 1000:.0f}ms (publisher ahead).",
                        style=v["warning"])
        return text

    def _bad(self, snap: BookSnapshot, v: dict[str, str]) -> Text:
        if not snap.bad:
            return Text("none", style=v["success"])
        text = Text()
        for reason, count in sorted(snap.bad.items(), key=lambda kv: -kv[1]):
            text.append(f"{count:,} ", style=f"bold {v['error']}")
            text.append(f"{reason}", style="bold")
            text.append(f" ({REASONS.get(reason, 'too many symbols')})\n",
                        style=v.get("text-muted", v["foreground"]))
        if snap.bad_examples:
            text.append(f"last: {snap.bad_examples[-1][2][:60]}",
                        style=v.get("text-muted", v["foreground"]))
        return text

    def _log_room(self) -> tuple[int, int]:
        """The lines and cells the log's panel has inside its border: a longer log would run
        past the bottom of the screen. Stacked (narrow), the three panels share half the
        screen and the log comes last."""
        box = self.query_one("#signals-log-box")
        width = box.content_size.width or max(10, self.app.size.width // 3 - 4)
        rows = LOWER_ROWS - 2
        if self.has_class("-narrow"):
            above = sum(self.query_one(f"#signals-{part}-box").outer_size.height
                        for part in ("latency", "bad"))
            rows = min(rows, (self.size.height or self.app.size.height) // 2 - above - 2)
        return max(1, rows), width

    def _log(self, snap: BookSnapshot, v: dict[str, str]) -> tuple[Text | Group, int, int]:
        """The anomaly and gap log, newest first, as many entries as fit whole in its panel;
        and how many it shows of how many the book holds."""
        from datetime import UTC, datetime

        held = len(snap.anomalies) + len(snap.gaps)
        items: list[tuple[float, Text]] = []
        for a in snap.anomalies[-LOG_LINES:]:
            items.append((a.time, Text.assemble(
                (f"{a.symbol} ", f"bold {v['error']}"),
                f"{a.anomaly_name} anomaly p={a.probability:.2f}")))
        for g in snap.gaps[-LOG_LINES:]:
            what = f"silent {g.silent_s:.1f}s" if not g.ended else f"was silent {g.silent_s:.1f}s"
            items.append((g.time, Text.assemble(
                (f"{g.symbol} ", f"bold {v['warning']}"),
                f"{what} (usually {_age(g.usual_s)})")))
        if not items:
            return Text("none", style=v["success"]), 0, 0
        items.sort(key=lambda item: item[0], reverse=True)  # newest first
        rows, width = self._log_room()
        lines: list[Text] = []
        used = 0
        for when, line in items[:LOG_LINES]:
            stamp = datetime.fromtimestamp(when, UTC).strftime("%H:%M:%S")
            entry = Text.assemble((stamp + " ", v.get("text-muted", v["foreground"])), line)
            # An entry wraps at the panel's width: count its lines, and keep it whole.
            height = len(entry.wrap(self.app.console, width))
            if used + height > rows and lines:
                break
            lines.append(entry)
            used += height
        return Group(*lines), len(lines), held
