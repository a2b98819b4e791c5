"""Signals: frames per second the subscriber decodes into the signal book, from a local
publisher sending as fast as it can for 5 s, and how many frames were lost on the way
(sent minus received).

Measures, in one run:
  naive    `await sock.recv()` once per frame on a zmq.asyncio socket, each into the book
  drain    saf's Subscriber: wait once, then recv(NOBLOCK) until zmq.Again, batch into the book
  screen   (when the cockpit's Signals screen exists) drain with the screen open in a headless
           app, plus a key-press probe: how long the app takes to answer a key during the burst
The publisher is the C++ AISignal publisher from tests/fixtures/signals (compiled with g++
against libzmq) or, without a compiler, a Python one. Target: >= 200,000 frames/s.
It prints figures and asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402
import zmq.asyncio  # noqa: E402

from saf.signals.book import SignalBook  # noqa: E402
from saf.signals.subscriber import RCVHWM, Subscriber  # noqa: E402
from tests.helpers.servers import free_port  # noqa: E402

CPP = ROOT / "tests" / "fixtures" / "signals" / "aisignal_publisher.cpp"
PY_PUBLISHER = r"""
import sys, time, struct, zmq
endpoint, seconds, rate = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pub = zmq.Context.instance().socket(zmq.PUB)
pub.setsockopt(zmq.SNDHWM, 1000000)
pub.bind(endpoint)
time.sleep(0.5)
pack = struct.Struct("Q16sffff B I").pack
symbols = [b"AAPL", b"MSFT", b"NVDA", b"TSLA", b"BTC-USD", b"ETH-USD"]
sent, start = 0, time.monotonic()
end = start + seconds
send = pub.send
while time.monotonic() < end:
    stamp = time.time_ns()
    for i in range(1000):
        send(pack(stamp, symbols[i % 6], 0.5, 0.9, -0.1, 0.05, 0, 7))
    sent += 1000
    if rate > 0:
        time.sleep(max(0.0, start + sent / rate - time.monotonic()))
print("sent", sent, flush=True)
pub.close(linger=2000)
"""


def publisher_argv(workdir: Path, endpoint: str, seconds: float,
                   rate: float) -> tuple[list[str], str]:
    if shutil.which("g++") and Path("/usr/include/zmq.h").exists():
        binary = workdir / "aisignal_publisher"
        if not binary.exists():
            subprocess.run(["g++", "-std=c++17", "-O2", str(CPP), "-lzmq", "-o", str(binary)],
                           check=True)
        return [str(binary), endpoint, str(seconds), "flood", str(rate)], "C++ libzmq"
    return [sys.executable, "-c", PY_PUBLISHER, endpoint, str(seconds), str(rate)], "Python"


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.first = 0.0
        self.last = 0.0

    def add(self, k: int) -> None:
        now = time.perf_counter()
        if not self.n:
            self.first = now
        self.n += k
        self.last = now


async def naive(endpoint: str, book: SignalBook, counter: Counter) -> None:
    zmq_context = zmq.asyncio.Context.instance()
    sock = zmq_context.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, RCVHWM)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    try:
        while True:
            frame = await sock.recv()
            book.add(frame, time.time_ns())
            counter.add(1)
    finally:
        sock.close(0)


async def drain(endpoint: str, book: SignalBook, counter: Counter) -> None:
    def sink(frames: list[bytes], recv_ns: int) -> None:
        book.add_many(frames, recv_ns)
        counter.add(len(frames))

    await Subscriber([endpoint], sink, tick=book.tick).run()


async def one_run(mode: str, workdir: Path, seconds: float, rate: float) -> dict[str, object]:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    book = SignalBook()
    counter = Counter()
    probe: list[float] = []
    if mode == "naive":
        task = asyncio.create_task(naive(endpoint, book, counter))
    elif mode == "drain":
        task = asyncio.create_task(drain(endpoint, book, counter))
    else:
        task = asyncio.create_task(screen_run(endpoint, book, counter, probe, seconds))
    await asyncio.sleep(0.3)  # connected before the publisher floods
    argv, kind = publisher_argv(workdir, endpoint, seconds, rate)
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    sent = int(out.split()[-1])
    # let the subscriber finish what is queued: stop when nothing arrived for 0.5 s
    quiet_since, seen = time.monotonic(), counter.n
    while time.monotonic() - quiet_since < 0.5:
        await asyncio.sleep(0.05)
        if counter.n != seen:
            quiet_since, seen = time.monotonic(), counter.n
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    span = max(counter.last - counter.first, 1e-9)
    received = counter.n
    return {"mode": mode, "publisher": kind, "sent": sent, "received": received,
            "lost": sent - received, "fps": received / span, "decoded": book.total_count(),
            "bad": sum(book.bad.values()), "probe": probe}


async def screen_run(endpoint: str, book: SignalBook, counter: Counter, probe: list[float],
                     seconds: float) -> None:
    """The drain subscriber with the Signals screen open, pressing a key every 200 ms."""
    from textual import events

    from tests.snapshot_apps._signals import make_signals_app  # the cockpit, signals feed

    app = make_signals_app(book, live=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("5")  # open the Signals screen
        await pilot.pause()
        sub = asyncio.create_task(drain(endpoint, book, counter))
        try:
            while True:
                await asyncio.sleep(0.2)
                before = app.screen.key_presses  # type: ignore[attr-defined]
                start = time.perf_counter()
                # What the terminal driver does for a key (pilot.press would also wait for
                # the whole process to go idle, which it never does during a flood).
                key = events.Key("p", "p")  # pause / resume: a key the screen answers
                key.set_sender(app)
                app._driver.send_message(key)  # type: ignore[union-attr]
                # Polling is the probe: an Event the screen set would change what is timed.
                while app.screen.key_presses == before:  # type: ignore[attr-defined]  # noqa: ASYNC110
                    await asyncio.sleep(0.001)
                probe.append(time.perf_counter() - start)
        finally:
            sub.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="frames/s the publisher aims at (0: as fast as it can)")
    parser.add_argument("--modes", default="naive,drain,screen")
    args, _ = parser.parse_known_args()
    modes = args.modes.split(",")
    if "screen" in modes and not (ROOT / "screens" / "signals.py").exists():
        print("screen: skipped (screens/signals.py does not exist yet)")
        modes.remove("screen")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (publisher, ZeroMQ's I/O threads and "
          "the subscriber share them)")
    print(f"publisher sends for {args.seconds:g} s at "
          f"{'full speed' if not args.rate else f'{args.rate:,.0f} frames/s'}; target: "
          ">= 200,000 frames/s decoded\n")
    print(f"{'mode':<8} {'publisher':<11} {'sent':>12} {'received':>12} {'lost':>12} "
          f"{'frames/s':>12}  key press (median / max)")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in modes:
            r = asyncio.run(one_run(mode, Path(tmp), args.seconds, args.rate))
            probe = r["probe"]
            keys = (f"{statistics.median(probe) * 1000:.0f} ms / {max(probe) * 1000:.0f} ms "
                    f"({len(probe)} presses)" if probe else "")
            print(f"{r['mode']:<8} {r['publisher']:<11} {r['sent']:>12,} {r['received']:>12,} "
                  f"{r['lost']:>12,} {r['fps']:>12,.0f}  {keys}", flush=True)
            assert r["decoded"] + r["bad"] == r["received"]  # nothing vanished silently


if __name__ == "__main__":
    main()
