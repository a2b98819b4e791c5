"""`saf exec` on a terminal: output prefixed by node as it arrives, then a summary table.

Output lines are written straight to stdout, each as its node's prefix (styled once, by Rich,
when the view is made) and the line with the control characters Rich would strip: a Rich
`print` per line cost about 160 us, so 20 MB of base64 took a minute where asyncssh alone
takes a third of a second. stdout is flushed once per turn of the event loop, not per line,
so a pipe still sees output as it comes.
"""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from saf.events import Event, OutputLine
from saf.exec import CommandFinished
from saf.format import MISSING
from saf.render.console import console, node_style, seconds

STATUS_STYLE = {"ok": "green", "failed": "red", "timeout": "yellow", "unreachable": "red",
                "cancelled": "yellow"}


def shown_status(result: CommandFinished) -> str:
    """A node not reached shows why (hostkey, auth, refused, ...), as --json says it."""
    return (result.reason or result.status) if result.status == "unreachable" else result.status


# What Rich's Text drops from a line (bell, backspace, vertical tab, form feed, carriage
# return): kept so that the fast path writes what Rich did.
_STRIP = str.maketrans("", "", "\x07\x08\x0b\x0c\x0d")


def styled(out: Console, text: str, style: str) -> str:
    """`text` as `out` writes it in `style` (ANSI codes on a terminal, plain otherwise)."""
    with out.capture() as capture:
        out.print(Text(text, style=style), end="")
    return capture.get()


class ExecView:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.width = max((len(n) for n in names), default=4)
        self.out = console()
        self.err = console(stderr=True)
        self._prefix = {n: styled(self.out, f"{n:<{self.width}} │ ", node_style(names, n))
                        for n in names}
        self._red = styled(self.out, "\0", "red").split("\0")
        self._flushing = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            prefix = self._prefix.get(event.node)
            if prefix is None:
                prefix = self._prefix[event.node] = styled(
                    self.out, f"{event.node:<{self.width}} │ ", "white")
            line = event.line.translate(_STRIP)
            if event.stream == "stderr" and line:
                line = self._red[0] + line + self._red[1]
            sys.stdout.write(f"{prefix}{line}\n")
            self._flush_soon()
        elif isinstance(event, CommandFinished) and (event.status == "unreachable"
                                                     or event.reason == "become"):
            sys.stdout.flush()  # the node's output so far comes before its error
            self.err.print(Text(f"{event.node:<{self.width}} │ ", style=node_style(
                self.names, event.node)) + Text(f"{shown_status(event)}: {event.message}",
                                                style="red"))

    def _flush_soon(self) -> None:
        if self._flushing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            sys.stdout.flush()
            return
        self._flushing = True
        loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flushing = False
        sys.stdout.flush()

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
        sys.stdout.flush()
        self.err.print()
        self.err.print(table)
