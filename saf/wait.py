"""Waiting for nodes to answer SSH (after a reboot or a network boot): `saf wait`, and `saf up`
before it goes on.

Each node is tried on a new connection (the pool may hold one that died with the reboot; where
it holds none, the pool's connector makes it and keeps it), once per Backoff delay, until it
runs a command or the deadline passes. A node that answers but refuses us (its host key, our
key, a file the inventory names) is not waited for: a reboot does not change that, so waiting
would only hide the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from saf.connect.backoff import Backoff
from saf.connect.failures import classify
from saf.deadline import within
from saf.errors import ConnectError, Failure
from saf.fanout import fan_out, results
from saf.fleet import Fleet
from saf.inventory.model import Node

# Failures a wait cannot cure: the node answered and said no, or our own side is wrong.
FINAL = frozenset({Failure.AUTH, Failure.HOSTKEY, Failure.CONFIG})


@dataclass(frozen=True)
class Answered:
    node: str
    seconds: float  # from the start of the wait


@dataclass(frozen=True)
class NotAnswered:
    node: str
    reason: Failure  # the last try's
    message: str
    final: bool  # refused for a reason waiting cannot cure (not merely out of time)


@dataclass
class WaitOutcome:
    answered: list[Answered] = field(default_factory=list)  # in the order they answered
    missing: list[NotAnswered] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing


OnAnswer = Callable[[Answered], None]
OnMiss = Callable[[str, ConnectError], None]


async def wait_for_nodes(fleet: Fleet, nodes: list[Node], *, timeout: float,  # noqa: ASYNC109 - ends with who answered and who did not, not an exception
                         on_answer: OnAnswer | None = None, on_miss: OnMiss | None = None,
                         backoff: Callable[[], Backoff] = lambda: Backoff(0.5, 5.0),
                         ) -> WaitOutcome:
    """Wait until every node in `nodes` answers SSH, or `timeout` seconds pass.

    `on_answer` is called as each node answers; `on_miss` after each failed try (with what
    failed), so a face can show progress. The outcome lists who answered and who did not."""
    start = time.monotonic()
    deadline = start + timeout
    outcome = WaitOutcome()

    async def one(node: Node) -> None:
        delays = backoff()
        while True:
            left = max(deadline - time.monotonic(), 0.01)
            try:
                await within(_answers(fleet, node), left)
            except Exception as exc:  # noqa: BLE001 - every failure is classified below
                # A try cut short by the wait's own deadline says that deadline, not the
                # node's connect timeout it never reached.
                error = ConnectError(node.name, Failure.TIMEOUT,
                                     f"no answer from {node.address} within {left:.3g} s") \
                    if isinstance(exc, TimeoutError) and left < node.connect_timeout \
                    else classify(node, exc)
                if on_miss is not None:
                    on_miss(node.name, error)
                final = error.reason in FINAL
                pause = delays.next()
                if final or time.monotonic() + pause >= deadline:
                    outcome.missing.append(NotAnswered(node.name, error.reason, error.detail,
                                                       final))
                    return
                await asyncio.sleep(pause)
                continue
            answered = Answered(node.name, time.monotonic() - start)
            outcome.answered.append(answered)
            if on_answer is not None:
                on_answer(answered)
            return

    results(await fan_out(nodes, one, limit=fleet.concurrency))
    order = {node.name: i for i, node in enumerate(nodes)}
    outcome.missing.sort(key=lambda miss: order[miss.node])
    return outcome


async def _answers(fleet: Fleet, node: Node) -> None:
    """One try: a new connection runs `true`. Where the pool holds no connection to the node
    (`saf up` waits on a fleet that has not connected yet), the pool's own connector makes
    it, and an answer leaves it there for the work that follows, which then does not connect
    a second time; a connection the pool holds may have died with the reboot, so then a
    fresh connector tries, and is closed."""
    pooled = fleet.connector(node)
    connector = fleet.fresh_connector(node) if pooled.connected else pooled
    try:
        result = await connector.run("true")
        if not result.ok:
            raise ConnectError(node.name, Failure.ERROR,
                               f"`true` exited {result.exit_status} on {node.address}")
    finally:
        if connector is not pooled:
            await connector.close()
