"""The agent's stream cut into lines, with long lines measured, not trusted.

A connector hands a line longer than its buffer over in parts (asyncssh pauses reading at its
window, asyncio at its limit). The framer joins the parts of a line up to the protocol's
limit; past it, the line's parts are dropped as they come and the line is reported as
`too_long` once its newline arrives, so one oversize frame costs a bad-frame count, never the
link. A stream that ends inside a line gives that line as `truncated`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from saf.agents.protocol import MAX_LINE


@dataclass(frozen=True)
class Line:
    """One line of the stream: `text` with its newline, or a `bad` reason (too_long,
    truncated) with the line's `size` in characters. `text` is '' at the end of the stream."""

    text: str = ""
    bad: str = ""
    size: int = 0


class LineFramer:
    def __init__(self, readline: Callable[[], Awaitable[str]], limit: int = MAX_LINE) -> None:
        self.readline = readline
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._over = False

    async def next(self) -> Line:
        """The next whole line, a bad one, or Line() at the end of the stream."""
        while True:
            piece = await self.readline()
            if not piece:
                if self._size:
                    size, self._parts, self._size, self._over = self._size, [], 0, False
                    return Line(bad="truncated", size=size)
                return Line()
            self._size += len(piece)
            if piece.endswith("\n"):
                size, parts, over = self._size, self._parts, self._over
                self._parts, self._size, self._over = [], 0, False
                if over or size > self.limit:
                    return Line(bad="too_long", size=size)
                return Line("".join(parts) + piece if parts else piece, size=size)
            if self._over or self._size > self.limit:
                self._over, self._parts = True, []  # drop what has come: it will not be used
            else:
                self._parts.append(piece)
