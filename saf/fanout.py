"""Fan-out: one coroutine per item, all at once but at most `limit` running, every outcome kept.

The one place saf spreads work over nodes (the fleet's `each`, a recipe step's nodes, `saf keys
push`), so the cap and the cancellation rules are written once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def fan_out(items: Iterable[T], fn: Callable[[T], Awaitable[R]], *,
                  limit: int) -> list[R | Exception]:
    """`fn(item)` for every item, at most `limit` at a time; each item's result or the
    Exception it raised, in the items' order. One item's failure never stops the others.

    Every item finishes before this returns or raises, even when it is cancelled: gather with
    return_exceptions waits for each coroutine's cleanup (stopping a remote command, logging
    `cancelled`). A cancellation (or anything else that is not an Exception) is raised then.
    """
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> R:
        async with gate:
            return await fn(item)

    kept: list[R | Exception] = []
    for outcome in await asyncio.gather(*(one(item) for item in items), return_exceptions=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
            raise outcome
        kept.append(outcome)
    return kept


def results(outcomes: list[R | Exception]) -> list[R]:
    """The results of a fan-out whose function handles its own failures: an Exception left
    among them is a bug, raised here (after every item has finished). A function whose
    result may itself be an Exception must wrap it (return a pair), or it reads as raised."""
    done: list[R] = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
        done.append(outcome)
    return done
