"""The faces `saf serve` can show its hub through, and the seam a new one plugs into.

A face is `async def run(hub: Hub, bind: Bind) -> None`: it serves `hub` on `bind` until it is
cancelled (Ctrl-C on `saf serve`), and cleans up in its own `finally` (every session ended, no
process left). It reads the hub's API (saf.serve.hub: `store`, `subscribe`, `signal_feed`,
`cockpit_argv`/`cockpit_env`, `grant`/`revoke`, `socket_path`) and never opens connections to
nodes of its own. A face that needs more settings than its bind takes them as keyword
arguments and is given them with `functools.partial` by `saf.commands.serve`.

Adding a face is one entry in `FACES` (option name -> "module:function", imported only when
used) and one option in `saf.commands.serve`. An option whose face is not in `FACES` is refused
with a clear message (`missing_face`).
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from saf.errors import SafError

if TYPE_CHECKING:
    from saf.serve.hub import Hub

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bind:
    """Where a face listens: `host:port` (`[::1]:8022` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


# Each face's usual port, for the example in a mistake's message.
EXAMPLES = {"--ssh": "127.0.0.1:8022", "--web": "127.0.0.1:8000", "--metrics": "127.0.0.1:9464"}


def parse_bind(text: str, option: str) -> Bind:
    """`HOST:PORT` as a Bind; a mistake is a SafError naming the option."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        example = EXAMPLES.get(option, "127.0.0.1:8022")
        raise SafError(f"{option} {text!r}: give HOST:PORT, e.g. {example}")
    return Bind(host, int(port_text))


def warn_if_beyond_loopback(bind: Bind, face: str) -> None:
    if not bind.loopback:
        log.warning("%s is bound to %s, beyond loopback: anyone who can reach this address "
                    "can try to connect", face, bind)


# A coroutine function, not any awaitable: `saf serve` runs each face as an asyncio task.
Face = Callable[["Hub", Bind], Coroutine[Any, Any, None]]

# option name -> "module:function" of its face. The metrics and web faces are added by their
# own change.
FACES: dict[str, str] = {
    "ssh": "saf.serve.ssh_face:run",
    "metrics": "saf.serve.metrics_face:run",
    "web": "saf.serve.web_face:run",
}


def face(name: str) -> Face:
    module, _, attr = FACES[name].partition(":")
    function: Face = getattr(importlib.import_module(module), attr)
    return function


def missing_face(name: str) -> str | None:
    """Why `saf serve --NAME` cannot run, or None when it can."""
    if name in FACES:
        return None
    return f"saf serve --{name} is not built yet in this saf (its face is not registered)"
