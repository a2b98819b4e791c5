"""What a client of `saf serve` may ask for, bounded in one place for both faces (--ssh, --web).

- Every client-supplied string (a user name, TERM, a key comment, an env value, an HTTP header
  or path) reaches saf serve's log through `saf.untrusted.shown`; the log handler
  (`EscapingFormatter`) escapes every message again, so a call site that forgets cannot forge
  a line either.
- `clamp_size(cols, rows)`: a terminal size a client asks for, within 1..MAX_COLS x
  1..MAX_ROWS. An SSH pty request or window change, and a browser tab's width/height or resize
  message, all come through here: a 10000x10000 terminal made a cockpit draw hundreds of MB.
- `RefusalLog`: refusals logged at most `burst` lines per source per `window` seconds; the
  rest are counted and said in one line when the window ends (a flood cannot fill the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import SupportsIndex, SupportsInt

from saf.untrusted import escaped_lines, shown

MAX_COLS = 500
MAX_ROWS = 200
PIXELS = 65535  # what a pty's winsize can hold


class EscapingFormatter(logging.Formatter):
    """A log line's message escaped as `shown` does (no limit: saf's own messages may be
    long); a traceback saf itself appends stays on its own lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped_lines(record.message)
        return super().formatMessage(record)


@dataclass(frozen=True)
class Size:
    cols: int
    rows: int
    asked: tuple[object, object]
    clamped: bool

    def note(self) -> str:
        """' (asked for 10000x10000, the most is 500x200)' when clamped, else ''."""
        if not self.clamped:
            return ""
        return (f" (asked for {shown(self.asked[0], 20)}x{shown(self.asked[1], 20)}, "
                f"the most is {MAX_COLS}x{MAX_ROWS})")


def _number(value: object, default: int) -> int:
    if not isinstance(value, (str, bytes, bytearray, SupportsInt, SupportsIndex)):
        return default  # what int() cannot read at all
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def clamp_size(cols: object, rows: object, default: tuple[int, int] = (80, 24)) -> Size:
    """The terminal size to use for what a client asked (0 or nonsense: the default)."""
    want_cols, want_rows = _number(cols, 0), _number(rows, 0)
    use_cols = min(want_cols, MAX_COLS) if want_cols > 0 else default[0]
    use_rows = min(want_rows, MAX_ROWS) if want_rows > 0 else default[1]
    clamped = want_cols > MAX_COLS or want_rows > MAX_ROWS
    return Size(use_cols, use_rows, (cols, rows), clamped)


def clamp_pixels(value: object) -> int:
    number = _number(value, 0)
    return number if 0 <= number <= PIXELS else 0


class RefusalLog:
    """At most `burst` lines per source per `window` seconds; the rest counted (the module)."""

    def __init__(self, logger: logging.Logger, *, window: float = 10.0, burst: int = 1) -> None:
        self.logger = logger
        self.window = window
        self.burst = burst
        self._seen: dict[str, tuple[float, int, int]] = {}  # source: (since, logged, held)

    def refused(self, source: str, message: str, *args: object) -> None:
        now = time.monotonic()
        since, logged, held = self._seen.get(source, (now, 0, 0))
        if now - since >= self.window:
            self._flush(source)
            since, logged, held = now, 0, 0
        if logged < self.burst:
            self.logger.warning(message, *args)
            self._seen[source] = (since, logged + 1, held)
            if logged == 0:
                self._flush_later(source, since)
            return
        self._seen[source] = (since, logged, held + 1)

    def _flush_later(self, source: str, since: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_later(self.window, self._flush_if, source, since)

    def _flush_if(self, source: str, since: float) -> None:
        if self._seen.get(source, (None,))[0] == since:
            self._flush(source)

    def _flush(self, source: str) -> None:
        since, _, held = self._seen.pop(source, (0.0, 0, 0))
        if held:
            self.logger.warning("refused %d more from %s in %.0f s (not logged one by one)",
                                held, source, self.window)
