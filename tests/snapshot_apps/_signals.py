"""The cockpit with the Signals screen on a scripted signal stream at a fixed moment.

The book is filled by `scripted_book()` with fixed times, and the feed's clock stands still,
so every figure (ages, rates, latency, the logs) is the same on every run."""

from __future__ import annotations

from saf.screens.app import SafApp

from saf.signals.book import BookSettings, SignalBook
from saf.signals.codec import AISignal, encode
from saf.signals.feed import SignalFeed
from tests.snapshot_apps._common import cockpit

NS = 1_000_000_000
T0 = 1_790_000_000 * NS  # a fixed moment
END = T0 + 20 * NS

# symbol: (interval s, direction, confidence, sentiment, model)
SYMBOLS = {
    "AAPL": (0.1, 0.62, 0.81, 0.20, 7), "MSFT": (0.2, -0.35, 0.55, -0.10, 7),
    "NVDA": (0.1, 0.91, 0.93, 0.45, 8), "TSLA": (0.25, -0.80, 0.77, -0.52, 7),
    "SPY": (0.5, 0.05, 0.40, 0.02, 7), "BTC-USD": (0.1, -0.12, 0.35, 0.30, 9),
    "ETH-USD": (0.3, 0.33, 0.60, 0.15, 9), "EURUSD": (1.0, -0.02, 0.31, 0.00, 7),
}


# More anomalies, for a busy stream as the demo's publisher makes: (symbol, from s, kind).
BUSY = [("AAPL", 2.0, 2), ("NVDA", 4.0, 3), ("BTC-USD", 6.0, 2), ("MSFT", 8.0, 3),
        ("SPY", 10.0, 1), ("EURUSD", 15.0, 3), ("BTC-USD", 17.0, 3)]


def scripted_book(busy: bool = False) -> SignalBook:
    """20 s of stream: TSLA has a flash anomaly at 12 s, ETH-USD goes silent at 14 s, a few
    bad frames arrive, and receive times are 2-9 ms after the publisher's stamps. `busy`:
    the anomalies of BUSY as well (a log longer than its panel)."""
    windows: dict[str, list[tuple[float, int]]] = {}
    for symbol, start, kind in BUSY if busy else ():
        windows.setdefault(symbol, []).append((start, kind))
    book = SignalBook(BookSettings())
    events = []
    for symbol, (interval, d, c, s, model) in SYMBOLS.items():
        t = 0.0
        step = 0
        while t < 20.0:
            if not (symbol == "ETH-USD" and t > 14.0):
                wobble = ((step * 37) % 11 - 5) / 100
                prob, kind = 0.03 + abs(wobble) / 4, 0
                if symbol == "TSLA" and 12.0 <= t < 13.0:
                    prob, kind = 0.94, 3
                for start, busy_kind in windows.get(symbol, ()):
                    if start <= t < start + 1.0:
                        prob, kind = 0.91, busy_kind
                sig = AISignal(T0 + int(t * NS), symbol, max(-1.0, min(1.0, d + wobble)), c,
                               s, prob, kind, model)
                events.append((T0 + int(t * NS) + (2 + step % 8) * 1_000_000, encode(sig)))
            t += interval
            step += 1
    for i, bad in enumerate([b"\x00" * 40, b"\x00" * 40, b"\xff" * 48, b"hello"]):
        events.append((T0 + (5 + i) * NS, bad))
    events.sort(key=lambda e: e[0])
    next_tick = T0
    for recv_ns, frame in events:
        while recv_ns >= next_tick:
            book.tick(next_tick)
            next_tick += NS // 2
        book.add(frame, recv_ns)
    book.tick(END)
    return book


def make_signals_app(book: SignalBook | None = None, *, live: bool = False,
                     theme: str = "saf-dark", endpoint: str = "tcp://10.0.0.5:5555") -> SafApp:
    """The cockpit (dashboard replayed from a recording) with a signal feed from `endpoint`;
    press 5 to open the Signals screen. With `live`, the feed's clock is the wall clock (for
    the benchmark)."""
    book = book if book is not None else scripted_book()
    feed = SignalFeed(book, endpoint, clock=None if live else (lambda: END))
    if not live:
        feed.sources = {endpoint: "connected"}
    return cockpit("healthy-3-nodes.jsonl", theme=theme, signal_feed=feed)
