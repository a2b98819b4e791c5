"""The gate between a node's command session (agents/command_session.py) and saf: each line
it writes is decoded into one of the typed frames below, or counted as bad by its reason and
dropped. What comes from a node is untrusted: a frame of the wrong shape never reaches a
command's output or status, and never raises past this gate.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

MAX_FRAME = 4 * 1024 * 1024  # bytes of one frame line; the node sends lines in 256 KiB parts

Ident = Annotated[int, Meta(ge=0)]


class Hello(Struct, tag="hello", tag_field="t"):
    """The session is ready (`v`: its protocol's version)."""

    v: Annotated[int, Meta(ge=1)]
    pid: Annotated[int, Meta(ge=1)]


class Out(Struct, tag="out", tag_field="t"):
    """A line of a command's output ("o": stdout, "e": stderr); `more` when it is a part of a
    longer line that goes on in the next frame."""

    id: Ident
    s: Literal["o", "e"]
    d: str
    more: bool = False


class Exit(Struct, tag="exit", tag_field="t"):
    """A command ended with status `rc` (128 + the signal's number when killed by one)."""

    id: Ident
    rc: Annotated[int, Meta(ge=0, le=255)]


Frame = Hello | Out | Exit

_decoder = msgspec.json.Decoder(Frame)


class Gate:
    """Decodes a session's frames and counts what it refuses, by reason."""

    def __init__(self) -> None:
        self.bad: dict[str, int] = {}

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())

    def read(self, line: str) -> Frame | None:
        """The frame `line` holds, or None (counted) when it is not one."""
        if len(line) > MAX_FRAME:
            reason = "too_long"
        else:
            try:
                return _decoder.decode(line)
            except msgspec.ValidationError:
                reason = "bad_type"
            except msgspec.DecodeError:
                reason = "not_json"
        self.count(reason)
        return None

    def count(self, reason: str) -> None:
        """One more bad frame, for `reason`."""
        self.bad[reason] = self.bad.get(reason, 0) + 1
