"""The one fan-out: the cap holds, every outcome is kept in order, and a cancellation waits
for every item's cleanup before it goes on."""

from __future__ import annotations

import asyncio

import pytest

from saf.fanout import fan_out, results


async def test_cap_order_and_failures_kept() -> None:
    running = 0
    most = 0

    async def work(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        if n == 3:
            raise ValueError("three")
        return n * 10

    outcomes = await fan_out(range(8), work, limit=2)
    assert most == 2
    assert [o if isinstance(o, int) else str(o) for o in outcomes] == [
        0, 10, 20, "three", 40, 50, 60, 70]
    with pytest.raises(ValueError, match="three"):
        results(outcomes)
    assert results(await fan_out([1, 2], work, limit=4)) == [10, 20]


async def test_cancellation_waits_for_every_cleanup() -> None:
    started = asyncio.Event()
    cleaned: list[int] = []

    async def work(n: int) -> None:
        try:
            started.set()
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.05)  # a cleanup that takes a while (stopping a command)
            cleaned.append(n)

    task = asyncio.create_task(fan_out(range(3), work, limit=8))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(cleaned) == [0, 1, 2]
