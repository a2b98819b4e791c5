"""One error base for every mistake a user can make, with a subclass per domain.

The CLI prints a SafError as a message and exits non-zero; the cockpit shows it as a
notification. Nobody sees a traceback for their own mistake.
"""

from __future__ import annotations

import reprlib
from enum import StrEnum
from pathlib import Path
from typing import Any

# Values from untrusted input are quoted in messages through `brief`: a few items of a few
# levels, so a message never walks (or prints) a value of unbounded size.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxlist, _BRIEF.maxtuple, _BRIEF.maxdict = 3, 4, 4, 4
_BRIEF.maxset = _BRIEF.maxfrozenset = 4
_BRIEF.maxstring, _BRIEF.maxother, _BRIEF.maxlong = 80, 80, 40
BRIEF_CHARS = 120


def brief(value: Any) -> str:
    """`repr(value)` for a message, shortened: at most BRIEF_CHARS characters whatever the
    value's size (lists, dicts and strings are cut with "...")."""
    text = _BRIEF.repr(value)
    return text if len(text) <= BRIEF_CHARS else text[:BRIEF_CHARS - 3] + "..."


class SafError(Exception):
    """A problem to show the user, not a bug. `exit_code` is what the CLI exits with."""

    exit_code = 1
    title = "Error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(SafError):
    """A file the user wrote is wrong: names the file, the line when known, and what."""

    exit_code = 2
    title = "Invalid configuration"

    def __init__(self, path: Path | str | None, message: str, *, line: int | None = None,
                 key: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.line = line
        self.key = key
        where = str(self.path) if self.path else "<input>"
        if line:
            where += f":{line}"
        super().__init__(f"{where}: {message}")
        self.detail = message


class InventoryError(ConfigError):
    title = "Invalid inventory"


class SelectorError(SafError):
    """A node selector that is malformed or matches nothing."""

    exit_code = 2
    title = "Bad node selector"


class UsageError(SafError):
    """A bad command-line value (--var, --on, a command too long to send); exits 2."""

    exit_code = 2
    title = "Invalid arguments"


class Failure(StrEnum):
    """Why a node could not be reached: short words a table can show. Decided from the
    exception's type, asyncssh's disconnect code or the OS's errno, never from its text."""

    REFUSED = "refused"          # nothing listens on the port
    TIMEOUT = "timeout"          # no answer within the connect timeout
    AUTH = "auth"                # the server accepted none of our credentials
    HOSTKEY = "hostkey"          # the server's host key is unknown or has changed
    DNS = "dns"                  # the host name does not resolve
    UNREACHABLE = "unreachable"  # no route, network down, or another socket error
    LOST = "lost"                # the connection dropped (a server at capacity drops it too)
    CONFIG = "config"            # a file the inventory names (identity, known_hosts) is unusable
    ERROR = "error"              # anything else (a protocol error, a channel refused)


class ConnectError(SafError):
    """A node could not be reached, and why (`reason`, a `Failure`)."""

    title = "Connection failed"

    def __init__(self, node: str, reason: Failure | str, message: str) -> None:
        super().__init__(f"{node}: {message}")
        self.node = node
        self.reason = Failure(reason)
        self.detail = message


class HostKeyError(ConnectError):
    """The node's host key is unknown or differs from the one recorded."""

    def __init__(self, node: str, message: str, *, fingerprint: str | None, changed: bool) -> None:
        super().__init__(node, "hostkey", message)
        self.fingerprint = fingerprint
        self.changed = changed


class RayError(SafError):
    """Ray is not running where saf looks, or its dashboard answered with an error."""

    title = "Ray"
