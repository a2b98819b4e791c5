"""`?`: what every key on the screen underneath does, the screens there are, what that
screen's states and columns mean, and the units figures are written in. The keys come from
the live bindings and key map, so they cannot drift."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from saf.screens.base import cockpit_of
from saf.screens.registry import SCREENS, entry_for
from saf.screens.widgets import palette
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

PALETTE_NOTE = "The command palette: every screen, node, recipe and action by name"

STATES = [
    ("● up", "the agent is running and its samples arrive"),
    ("◌ connecting", "saf is reaching the node, shipping or starting the agent"),
    ("◌ stale", "connected, but no sample for a few intervals: figures are old"),
    ("✖ reason", "lost: the connection or agent is gone (reason: exited, silent, refused, "
                 "timeout, auth, ...); last values stay, greyed; saf retries by itself"),
    ("■ stopped", "the metrics were stopped"),
]

DASHBOARD_COLUMNS = [
    ("CPU", "busy % of all cores; CPU HISTORY is the last two minutes"),
    ("MEMORY", "used / total RAM, in the total's unit; used is total less available, as "
                "`free` says (page cache the kernel would give back is not used)"),
    ("GPU, TEMP, POWER", "mean GPU use, hottest GPU in °C, total GPU power draw in W"),
    ("GPU MEM", "used / total GPU memory ('shared': Apple unified memory)"),
    ("NET IN/OUT", "bits per second over all interfaces but loopback"),
    ("LINK", "the cluster interface, its MTU in bytes and its link speed in bits per second "
             "(– where there is none, as on loopback; amber: a 10G+ link without jumbo "
             "frames)"),
]

SIGNALS_COLUMNS = [
    ("DIR", "expected price move, -1 down .. +1 up"),
    ("CONF", "the model's confidence in that direction, 0 .. 1"),
    ("SENT", "news and social sentiment, -1 bearish .. +1 bullish"),
    ("ANOM, TYPE", "probability that the market behaves anomalously, 0 .. 1, and the kind "
                   "(spread, volume, flash); red when it is an anomaly"),
    ("SCORE", "the aggregator's ensemble score: price·direction·confidence + "
              "sentiment·SENT − anomaly·ANOM (weights in the inventory's [signals])"),
    ("MODEL", "the version of the model that sent the signal"),
    ("AGE, RATE", "since the symbol's last signal (amber with 'gap': late), and its signals "
                  "per second"),
]

# One way to write a figure across the cockpit and the headless faces (saf.format).
UNITS = [
    ("rates", "network rates and link speeds in bits per second, as links are quoted: "
              "k, M, G are powers of 1000 (940M is 940 Mb/s)"),
    ("sizes", "memory, GPU memory and disk rates in bytes: K, M, G are powers of 1024 "
              "(24G is 24 GiB; disks 1.5M/s); an MTU is in bytes"),
    ("–", "a value the node did not measure (never a made-up 0)"),
]

class HelpScreen(ModalScreen[None]):
    BINDING_GROUP_TITLE = "Help"
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close",
                tooltip="Close the help"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        box = VerticalScroll(Static(self._content(), id="help-text"), id="help-box")
        box.border_title = f"Help · {self.under.BINDING_GROUP_TITLE or 'saf'}"
        yield box

    def action_close(self) -> None:
        self.dismiss()

    def _content(self) -> Group:
        app = cockpit_of(self)
        v = palette(app)
        head = f"bold {v['primary']}"
        parts: list[Any] = []
        groups: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        # One row per action, with every key bound to it ("up,k" is two bindings: `↑/k`).
        actions: dict[str, tuple[str, list[str], str, str, bool]] = {}  # ..., saf's own
        for active in self.under.active_bindings.values():
            binding = active.binding
            if not binding.description:
                continue
            key = app.get_key_display(binding)
            title = active.node.BINDING_GROUP_TITLE or "General"
            note = binding.tooltip or ""
            description = binding.description
            if binding.action == "command_palette":  # Textual's binding, told saf's way
                description, note = "Commands", PALETTE_NOTE
            if not active.enabled:
                note += " (not available here)"
            known = actions.get(binding.action)
            if known is not None:
                keys = known[1]
                if key not in keys:
                    keys.append(key)
                if binding.id and binding.tooltip and not known[4]:
                    # saf's own binding (it has an id) says it better than Textual's default
                    actions[binding.action] = (known[0], keys, description, note, True)
                continue
            actions[binding.action] = (title, [key], description, note,
                                       bool(binding.id and binding.tooltip))
        for title, keys, description, note, _ in actions.values():
            groups[title].append(("/".join(keys), description, note))
        for title, rows in groups.items():
            parts += [Text(f"\n{title}", style=head),
                      _grid([(key, what, note) for key, what, note in rows], v["accent"])]
        screens = [(item.key or ("Enter on a node" if item.needs_node else "palette"),
                    item.title, item.help) for item in SCREENS]
        parts += [Text("\nScreens", style=head), _grid(screens, v["accent"])]
        shown = entry_for(self.under)
        if shown is not None and shown.name in ("dashboard", "node"):
            parts += [Text("\nNode states", style=head), _grid(STATES)]
        if shown is not None and shown.name == "dashboard":
            th = app.setup.settings.thresholds
            colours = (f"amber from {th.cpu_warn:g}% CPU, {th.mem_warn:g}% memory, "
                       f"{th.gpu_temp_warn:g}°C GPU; red from {th.cpu_alert:g}%, "
                       f"{th.mem_alert:g}%, {th.gpu_temp_alert:g}°C (cockpit.toml [thresholds])")
            parts += [Text("\nDashboard columns", style=head),
                      _grid([*DASHBOARD_COLUMNS, ("colours", colours)])]
        if shown is not None and shown.name == "signals":
            parts += [Text("\nSignals columns", style=head), _grid(SIGNALS_COLUMNS)]
        parts += [Text("\nUnits", style=head), _grid(UNITS)]
        readonly = app.setup.readonly_reason
        if readonly is not None:
            parts.append(Text(f"\nRead-only: actions that change a node are off "
                              f"({readonly}).", style=f"bold {v['warning']}"))
        parts.append(Text(f"\nTheme: {app.theme}. Keys can be remapped in cockpit.toml "
                          "[keymap] by the ids shown in docs/cockpit.md.", style="dim"))
        return Group(*parts)


def _grid(rows: Sequence[tuple[str, ...]], key_colour: str | None = None) -> Table:
    """Rows of plain text (never markup: "[thresholds]" must show as written); with
    `key_colour`, three columns whose first is a key."""
    table = Table.grid(padding=(0, 2))
    if key_colour is not None:
        table.add_column(style=f"bold {key_colour}", no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table
