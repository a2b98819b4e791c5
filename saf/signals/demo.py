"""A demo publisher of realistic synthetic signals, for `saf signals publish --demo` and
`saf demo`.

A handful of symbols, each on its own cadence (100 ms to 1 s), with a mean-reverting random
walk for direction and sentiment, confidence that rises with the size of the move, and now and
then an anomaly (spread, volume or flash) that lasts a few signals.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import random
import time
from dataclasses import dataclass

import zmq

from saf.inventory.address import AddressError, parse_address
from saf.signals.codec import AISignal, encode

# symbol -> seconds between its signals
DEMO_SYMBOLS: dict[str, float] = {
    "AAPL": 0.1, "MSFT": 0.2, "NVDA": 0.1, "TSLA": 0.25, "SPY": 0.5, "QQQ": 0.5,
    "BTC-USD": 0.1, "ETH-USD": 0.3, "EURUSD": 1.0,
}
MODEL_VERSION = 7


def _clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


@dataclass
class _Walk:
    direction: float = 0.0
    sentiment: float = 0.0
    anomaly_left: int = 0
    anomaly_type: int = 0


class DemoSignals:
    """Makes the demo's signals; `due(now_ns)` gives those whose time has come."""

    def __init__(self, symbols: dict[str, float] | None = None, seed: int | None = None,
                 anomaly_chance: float = 0.004) -> None:
        self.symbols = dict(symbols or DEMO_SYMBOLS)
        self.random = random.Random(seed)
        self.anomaly_chance = anomaly_chance
        self.walks = {s: _Walk() for s in self.symbols}
        now = time.time_ns()
        # (next due time, symbol); start staggered so the symbols do not tick in step
        self.queue = [(now + int(self.random.random() * i * 1e9), s)
                      for s, i in self.symbols.items()]
        heapq.heapify(self.queue)

    def make(self, symbol: str, timestamp_ns: int) -> AISignal:
        r = self.random
        w = self.walks[symbol]
        w.direction = _clamp(0.9 * w.direction + r.gauss(0, 0.25), -1.0, 1.0)
        w.sentiment = _clamp(0.97 * w.sentiment + r.gauss(0, 0.08), -1.0, 1.0)
        confidence = _clamp(0.35 + 0.6 * abs(w.direction) + r.gauss(0, 0.05), 0.0, 1.0)
        if w.anomaly_left:
            w.anomaly_left -= 1
            probability = _clamp(0.85 + r.gauss(0, 0.05), 0.0, 1.0)
            kind = w.anomaly_type
        elif r.random() < self.anomaly_chance:
            w.anomaly_left, w.anomaly_type = r.randint(2, 6), r.randint(1, 3)
            probability, kind = _clamp(0.9 + r.gauss(0, 0.03), 0.0, 1.0), w.anomaly_type
        else:
            probability, kind = _clamp(abs(r.gauss(0.05, 0.05)), 0.0, 1.0), 0
        return AISignal(timestamp_ns, symbol, w.direction, confidence, w.sentiment, probability,
                        kind, MODEL_VERSION)

    def next_due_ns(self) -> int:
        return self.queue[0][0]

    def due(self, now_ns: int) -> list[AISignal]:
        out = []
        while self.queue and self.queue[0][0] <= now_ns:
            due, symbol = heapq.heappop(self.queue)
            out.append(self.make(symbol, now_ns))
            heapq.heappush(self.queue, (due + int(self.symbols[symbol] * 1e9), symbol))
        return out


def reaches_beyond_loopback(endpoint: str) -> bool:
    """Whether binding `endpoint` lets other machines connect (tcp://*, 0.0.0.0, a LAN
    address): saf binds to loopback unless told otherwise, and says so when told."""
    scheme, _, rest = endpoint.strip().partition("://")
    if scheme != "tcp":
        return False  # ipc:// and inproc:// never leave this machine
    try:
        host = parse_address(rest).host
    except AddressError:
        return True  # not a host:port saf can read: do not call it loopback
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True  # '*', an interface name or a host name: not only loopback


def bind_pub(endpoint: str, context: zmq.Context[zmq.Socket[bytes]] | None = None,
             sndhwm: int = 100_000) -> zmq.Socket[bytes]:
    """A PUB socket bound to `endpoint` (a send never blocks: PUB drops at its HWM)."""
    from saf.signals.endpoints import EndpointError, bind_url

    zmq_context = context or zmq.Context.instance()
    sock = zmq_context.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.IPV6, 1)  # tcp://[::1]:P binds too (zmq is IPv4-only by default)
    try:
        sock.bind(bind_url(endpoint))
    except zmq.ZMQError as exc:
        sock.close(0)
        raise EndpointError(f"cannot bind {endpoint}: {exc}") from None
    return sock


async def publish_demo(endpoint: str, *, seed: int | None = None,
                       duration: float | None = None, bad_every: int = 0,
                       symbols: dict[str, float] | None = None,
                       on_send: object = None) -> int:
    """Publish demo signals on `endpoint` until cancelled (or `duration` seconds); returns the
    number of frames sent. With `bad_every` N, every Nth frame is a deliberately bad one (a
    short frame), to show bad-frame counting."""
    sock = bind_pub(endpoint)
    maker = DemoSignals(symbols, seed=seed)
    sent = 0
    end = time.monotonic() + duration if duration else None
    try:
        while end is None or time.monotonic() < end:
            for sig in maker.due(time.time_ns()):
                sent += 1
                frame = encode(sig)
                if bad_every and sent % bad_every == 0:
                    frame = frame[:40]
                sock.send(frame, zmq.NOBLOCK)
                if callable(on_send):
                    on_send(sig)
            wait = (maker.next_due_ns() - time.time_ns()) / 1e9
            await asyncio.sleep(max(0.0, min(wait, 0.1)))
    finally:
        sock.close()
    return sent
