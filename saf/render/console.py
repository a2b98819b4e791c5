"""Shared pieces of the headless renderers: consoles, node colours, JSON lines, durations.
Figures (bytes, rates, percentages) are written by saf.format, as in the cockpit."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from saf import secrets
from saf.events import Event
from saf.format import MISSING

if TYPE_CHECKING:  # Rich is imported by console(): print_json_line and seconds need none of it,
    from rich.console import Console  # and a command imports them before its first connection

NODE_STYLES = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan",
               "bright_magenta", "bright_green", "bright_yellow", "bright_blue")


class _Redacted:
    """sys.stdout or sys.stderr (as they are when written to), with every secret saf knows
    shown as `***` (saf.secrets): whatever a headless view prints passes here."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr

    @property
    def _stream(self) -> Any:
        return sys.stderr if self._stderr else sys.stdout

    def write(self, text: str) -> int:
        return int(self._stream.write(secrets.redact(text)))

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, flush, encoding...
        return getattr(self._stream, name)


def console(stderr: bool = False) -> Console:
    """A console for headless output, secrets hidden. Piped output is not cut to 80 columns:
    a script or a log wants whole lines (COLUMNS still wins when set)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=_Redacted(stderr), highlight=False, soft_wrap=True,  # type: ignore[arg-type]
                   width=width)


def node_style(names: list[str], name: str) -> str:
    return NODE_STYLES[names.index(name) % len(NODE_STYLES)] if name in names else "white"


def print_json_line(data: Event | dict[str, Any]) -> None:
    payload = data.to_json() if isinstance(data, Event) else data
    sys.stdout.write(json.dumps(secrets.scrub(payload), default=str) + "\n")
    sys.stdout.flush()


def seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
