"""A flood of new symbols: 5,000 distinct symbols every 0.5 s from a real PUB socket.

The book keeps its cap (the rest are counted as bad `too_many_symbols`), a face makes only the
rows it shows, and `saf signals tail --duration` ends on time. Figures are printed (-s shows
them); the targets live in tests/perf/bench_signals.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import zmq

from saf.signals.book import BookSettings, SignalBook
from saf.signals.codec import encode_raw
from tests.helpers.servers import free_port

REPO = Path(__file__).resolve().parent.parent
SYMBOLS = [f"S{i:04d}".encode() for i in range(5000)]


class Flood(threading.Thread):
    """Publishes every symbol once each `every` seconds until stopped."""

    def __init__(self, endpoint: str, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.every = endpoint, every
        self.stop = threading.Event()
        self.sent = 0

    def run(self) -> None:
        sock = zmq.Context.instance().socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 1_000_000)
        sock.bind(self.endpoint)
        try:
            while not self.stop.is_set():
                now = time.time_ns()
                for symbol in SYMBOLS:
                    sock.send(encode_raw(now, symbol, 0.1, 0.5, 0.0, 0.1, 0, 7))
                self.sent += len(SYMBOLS)
                self.stop.wait(self.every)
        finally:
            sock.close(0)


def test_a_face_pays_only_for_the_rows_it_shows() -> None:
    book = SignalBook(BookSettings())
    now = time.time_ns()
    book.add_many([encode_raw(now, s, 0.1, 0.5, 0.0, 0.1, 0, 7) for s in SYMBOLS], now)
    assert len(book.symbols) == 4096
    assert book.bad == {"too_many_symbols": 5000 - 4096}
    book.snapshot(now, limit=30)  # warm
    started = time.perf_counter()
    snap = book.snapshot(now, limit=30)
    took = time.perf_counter() - started
    started = time.perf_counter()
    every = book.snapshot(now)
    took_all = time.perf_counter() - started
    assert len(every.rows) == every.matching == 4096
    assert [r.symbol for r in snap.rows] == [f"S{i:04d}" for i in range(30)]
    assert snap.matching == 4096
    found = book.snapshot(now, symbols="s4095", limit=30)
    assert [r.symbol for r in found.rows] == ["S4095"]
    assert found.matching == 1
    print(f"\nsnapshot of the 30 rows a screen shows: {took * 1000:.2f} ms; of all 4,096 "
          f"rows: {took_all * 1000:.1f} ms")


def test_tail_keeps_its_duration_under_a_flood_of_symbols() -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = Flood(endpoint)
    pub.start()
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO), SAF_INVENTORY="", COLUMNS="120",
                   LINES="40", TERM="xterm-256color")
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "saf", "signals", "tail", endpoint,
                               "--duration", "3"], capture_output=True, text=True,
                              timeout=60, env=env)
        took = time.monotonic() - started
    finally:
        pub.stop.set()
        pub.join(10)
    assert done.returncode == 0, done.stderr
    assert "more symbols" in done.stdout
    assert "too_many_symbols" in done.stdout
    print(f"\ntail --duration 3 under a 5,000-symbol flood ({pub.sent:,} frames sent): "
          f"{took:.1f} s")
