"""`?`: what every key on the screen underneath does, the screens there are, and what the
states and colours mean. Built from the live bindings and key map, so it cannot drift."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from saf.screens.base import cockpit_of
from saf.screens.registry import SCREENS
from saf.screens.widgets import palette

STATES = [
    ("● up", "the agent is running and its samples arrive"),
    ("◌ connecting", "saf is reaching the node, shipping or starting the agent"),
    ("◌ stale", "connected, but no sample for a few intervals: figures are old"),
    ("✖ reason", "lost: the connection or agent is gone (reason: exited, silent, refused, "
                 "timeout, auth, ...); last values stay, greyed; saf retries by itself"),
    ("■ stopped", "the metrics were stopped"),
]

COLUMNS = [
    ("CPU", "busy % of all cores; CPU HISTORY is the last two minutes"),
    ("MEMORY", "used / total RAM"),
    ("GPU, TEMP, POWER", "mean GPU use, hottest GPU in °C, total GPU power draw"),
    ("GPU MEM", "used / total GPU memory ('shared': Apple unified memory)"),
    ("NET IN/OUT", "bits per second over all interfaces but loopback"),
    ("LINK", "the cluster interface, its MTU and link speed (amber: a 10G+ link without "
             "jumbo frames)"),
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
            if not active.enabled:
                note += " (not available here)"
            known = actions.get(binding.action)
            if known is not None:
                keys = known[1]
                if key not in keys:
                    keys.append(key)
                if binding.id and binding.tooltip and not known[4]:
                    # saf's own binding (it has an id) says it better than Textual's default
                    actions[binding.action] = (known[0], keys, binding.description, note, True)
                continue
            actions[binding.action] = (title, [key], binding.description, note,
                                       bool(binding.id and binding.tooltip))
        for title, keys, description, note, _ in actions.values():
            groups[title].append(("/".join(keys), description, note))
        groups["General"].append((app.get_key_display(
            Binding(app.COMMAND_PALETTE_BINDING, "")), "Commands",
            "The command palette: every screen, node and action by name"))
        for title, rows in groups.items():
            table = Table.grid(padding=(0, 2))
            table.add_column(style=f"bold {v['accent']}", no_wrap=True)
            table.add_column(style="bold", no_wrap=True)
            table.add_column()
            for key, what, note in rows:
                table.add_row(key, what, note)
            parts += [Text(f"\n{title}", style=head), table]
        table = Table.grid(padding=(0, 2))
        table.add_column(style=f"bold {v['accent']}", no_wrap=True)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for item in SCREENS:
            how = item.key or ("Enter on a node" if item.needs_node else "palette")
            table.add_row(how, item.title, item.help)
        parts += [Text("\nScreens", style=head), table]
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for name, what in STATES:
            table.add_row(name, what)
        parts += [Text("\nNode states", style=head), table]
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for name, what in COLUMNS:
            table.add_row(name, what)
        th = app.ctx.settings.thresholds
        table.add_row("colours", f"amber from {th.cpu_warn:g}% CPU, {th.mem_warn:g}% memory, "
                      f"{th.gpu_temp_warn:g}°C GPU; red from {th.cpu_alert:g}%, "
                      f"{th.mem_alert:g}%, {th.gpu_temp_alert:g}°C (cockpit.toml [thresholds])")
        parts += [Text("\nDashboard columns", style=head), table]
        readonly = app.ctx.readonly_reason
        if readonly is not None:
            parts.append(Text(f"\nRead-only: actions that change a node are off "
                              f"({readonly}).", style=f"bold {v['warning']}"))
        parts.append(Text(f"\nTheme: {app.theme}. Keys can be remapped in cockpit.toml "
                          "[keymap] by the ids shown in docs/cockpit.md.", style="dim"))
        return Group(*parts)
