"""A publisher sending messages far past an AISignal's 48 bytes (issue 22, item 11: 250 x 4 MiB
grew `saf signals tail` to 953 MB): a real PUB socket in its own process; the subscriber's
ZMQ_MAXMSGSIZE keeps them out, its process does not grow, and the book counts the refusal."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from saf.render.signals_view import bad_line
from saf.signals.book import SignalBook
from saf.signals.codec import AISignal, encode
from saf.signals.subscriber import MAX_MESSAGE, Subscriber
from tests.helpers.servers import free_port

REPO = Path(__file__).resolve().parent.parent

PUBLISHER = """
import sys, time, zmq
good, big = bytes.fromhex(sys.argv[2]), b"x" * (4 * 1024 * 1024)
pub = zmq.Context().socket(zmq.PUB)
pub.bind(sys.argv[1])
while True:
    pub.send(good)
    pub.send(big)
    time.sleep(0.01)
"""


def rss() -> int:
    """This process's own resident set, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_oversize_messages_are_refused_counted_and_cost_no_memory() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    good = encode(AISignal(time.time_ns(), "AAPL", 0.5, 0.5, 0.0, 0.0, 0, 7))
    publisher = await asyncio.to_thread(subprocess.Popen,
                                        [sys.executable, "-c", PUBLISHER, endpoint, good.hex()])
    book = SignalBook()
    sizes: list[int] = []
    start = rss()
    peak = [start]

    def sink(frames: list[bytes], recv_ns: int) -> None:
        sizes.extend(len(f) for f in frames)
        peak[0] = max(peak[0], rss())
        book.add_many(frames, recv_ns)

    sub = Subscriber([endpoint], sink, tick=book.tick, refused=book.refused)
    good_after_drop = 0

    def done() -> bool:
        nonlocal good_after_drop
        if sum(size > MAX_MESSAGE for size in sizes) >= 250:
            return True  # every oversize message got in (as before the limit): fail below
        if book.bad.get("too_large", 0) >= 2:
            good_after_drop += 1  # polled after each batch: good frames keep coming
        return good_after_drop >= 5

    try:
        await asyncio.wait_for(sub.run(until=done), 60)
    finally:
        publisher.kill()
        publisher.wait(10)
    assert peak[0] - start < 64 * 1024 * 1024
    assert sizes
    assert max(sizes) <= MAX_MESSAGE
    assert book.bad.get("too_large", 0) >= 2
    assert sub.dropped == book.bad["too_large"]
    assert book.total_count() > 0  # reconnected after each refusal: the good frames came
    assert "too_large" in bad_line(book.snapshot(time.time_ns())).plain
