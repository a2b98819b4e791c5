"""A wait with a deadline that never eats a cancellation.

`asyncio.wait_for` on Python 3.11 returns the awaited result, instead of raising
CancelledError, when its task is cancelled at the moment the awaited thing completes (the
cancel and the result are both pending when the task wakes: CPython gh-86296, fixed in 3.12
by rebuilding wait_for on `asyncio.timeout`). A loop around such a wait (an agent link
reading frames, a poller) then never sees its cancel: the task goes on forever, marked
"cancelling", and whoever awaits it (a stop, asyncio.run's clean-up) waits for ever. That is
how `saf serve`'s hub once hung in a test's teardown.

`within` is the 3.12 behaviour on 3.11: the awaitable runs in the caller's own task under
`asyncio.timeout`, which turns only its own expiry into TimeoutError and lets every other
cancel through. saf uses it everywhere instead of `asyncio.wait_for` (ruff's banned-api rule,
TID251, keeps it so).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`await awaitable`, raising TimeoutError after `seconds` (None: no limit)."""
    async with asyncio.timeout(seconds):
        return await awaitable
