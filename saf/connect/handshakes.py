"""How many SSH handshakes saf keeps in flight to one server, and what it does when the server
drops one anyway.

OpenSSH's MaxStartups (default 10:30:100) starts dropping connections that have not yet
authenticated once ten are in flight to one server, and fifty nodes behind one sshd (or fifty
aliases of one host) would all dial at once. This is a limit on the server's capacity, not a
retry policy: the gate keeps fewer than ten handshakes in flight per host:port, and a handshake
the server drops before authenticating is dialled again at once, a little later, as part of the
same connection attempt. It says nothing about the node's health, so it is no failure to show,
and it happens inside the attempt, before any `retry in` is announced: the wait between failed
attempts (the one retry policy) stays with the caller that shows it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

from saf.connect.backoff import Backoff
from saf.connect.failures import dropped

T = TypeVar("T")

HANDSHAKES_PER_HOST = 8
REDIALS = 6


class HandshakeGate:
    """At most `per_host` handshakes in flight to one host:port, across every connector that
    shares this gate; a handshake dropped before authentication is dialled again up to
    `redials` times."""

    def __init__(self, per_host: int = HANDSHAKES_PER_HOST, redials: int = REDIALS) -> None:
        self.per_host = per_host
        self.redials = redials
        # Semaphores belong to one event loop, and tests and the CLI run several loops in
        # turn: one set per loop, forgotten with the loop.
        self._gates: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, int], asyncio.Semaphore]] = \
            weakref.WeakKeyDictionary()

    def _gate(self, host: str, port: int) -> asyncio.Semaphore:
        gates = self._gates.setdefault(asyncio.get_running_loop(), {})
        if (host, port) not in gates:
            gates[host, port] = asyncio.Semaphore(self.per_host)
        return gates[host, port]

    async def dial(self, host: str, port: int, handshake: Callable[[], Awaitable[T]]) -> T:
        """Run `handshake` (connect and authenticate) when a slot to host:port is free."""
        pause = Backoff(initial=0.2, maximum=3.0)
        redials = self.redials
        while True:
            try:
                async with self._gate(host, port):
                    return await handshake()
            except Exception as exc:
                if not dropped(exc) or redials == 0:
                    raise
            redials -= 1
            await asyncio.sleep(pause.next())


SHARED = HandshakeGate()
"""The gate every SSH connector uses unless given another: one per process, because the
server's limit counts every connection saf makes to it."""
