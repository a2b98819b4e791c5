"""`saf exec` on a terminal: output prefixed by node as it arrives, then a summary table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from saf.events import Event, OutputLine
from saf.exec import CommandFinished
from saf.metrics.format import MISSING
from saf.render.console import console, node_style, seconds

STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "yellow", "unreachable": "red",
                "cancelled": "yellow"}


def shown_status(result: CommandFinished) -> str:
    """A node not reached shows why (hostkey, auth, refused, ...), as --json says it."""
    return (result.reason or result.status) if result.status == "unreachable" else result.status


class ExecView:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.width = max((len(n) for n in names), default=4)
        self.out = console()
        self.err = console(stderr=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            prefix = Text(f"{event.node:<{self.width}} │ ",
                          style=node_style(self.names, event.node))
            line = Text(event.line, style="red" if event.stream == "stderr" else "")
            self.out.print(prefix + line)
        elif isinstance(event, CommandFinished) and event.status == "unreachable":
            self.err.print(Text(f"{event.node:<{self.width}} │ ", style=node_style(
                self.names, event.node)) + Text(f"{shown_status(event)}: {event.message}",
                                                style="red"))

    def summary(self, results: list[CommandFinished], interrupted: bool = False) -> None:
        table = Table(title="interrupted" if interrupted else None, title_style="yellow",
                      box=None, header_style="bold")
        table.add_column("NODE")
        table.add_column("STATUS")
        table.add_column("EXIT", justify="right")
        table.add_column("DURATION", justify="right")
        table.add_column("DETAIL")
        for r in results:
            exit_text = (str(r.exit_status) if r.exit_status is not None
                         else r.signal or MISSING)
            table.add_row(Text(r.node, style=node_style(self.names, r.node)),
                          Text(shown_status(r), style=STATUS_STYLE.get(r.status, "")),
                          exit_text,
                          seconds(r.duration) if r.status != "unreachable" else MISSING,
                          r.message or "")
        self.err.print()
        self.err.print(table)
