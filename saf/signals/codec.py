"""The `AISignal` frame: the trading-signal wire format, its fields and their ranges.

One frame is the C++ struct below, sent as one ZeroMQ message: 48 bytes, natural alignment,
little-endian (x86-64 and arm64 alike), so `struct` writes it as ``"<Q16sffffB3xI"`` — the same
bytes as the seed's native ``"Q16sffff B I"`` on those machines::

    struct AISignal {
        uint64_t timestamp_ns;         // publisher's wall clock, ns since the Unix epoch
        char     symbol[16];           // ASCII, NUL-padded (e.g. "AAPL\\0\\0...")
        float    price_direction;      // -1 (down) .. 1 (up)
        float    price_confidence;     //  0 .. 1
        float    sentiment_score;      // -1 (bearish) .. 1 (bullish)
        float    anomaly_probability;  //  0 .. 1
        uint8_t  anomaly_type;         //  0 none, 1 spread, 2 volume, 3 flash
        /* 3 bytes of padding */
        uint32_t model_version;        // the model that produced the signal
    };

`decode` checks every field and raises `BadFrame` with a short `reason` (one of `REASONS`) for
a frame that is not a valid signal; the subscriber counts those by reason and never crashes.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

FORMAT = "<Q16sffffB3xI"
SEED_FORMAT = "Q16sffff B I"  # the seed publisher's native format: the same 48 bytes
_STRUCT = struct.Struct(FORMAT)
SIZE = _STRUCT.size
assert SIZE == 48

SYMBOL_BYTES = 16
ANOMALY_TYPES: dict[int, str] = {0: "none", 1: "spread", 2: "volume", 3: "flash"}

# Field meanings and ranges, for docs, help and tests: name -> (meaning, low, high).
FIELDS: dict[str, tuple[str, float | None, float | None]] = {
    "timestamp_ns": ("publisher's wall clock when the signal was made, ns since the epoch",
                     0, 2**64 - 1),
    "symbol": ("instrument, ASCII, 1-16 bytes, NUL-padded", None, None),
    "price_direction": ("expected price move, -1 down .. 1 up", -1.0, 1.0),
    "price_confidence": ("confidence in the price direction", 0.0, 1.0),
    "sentiment_score": ("news/social sentiment, -1 bearish .. 1 bullish", -1.0, 1.0),
    "anomaly_probability": ("probability that the market is behaving anomalously", 0.0, 1.0),
    "anomaly_type": ("0 none, 1 spread, 2 volume, 3 flash", 0, 3),
    "model_version": ("version of the model that produced the signal", 0, 2**32 - 1),
}

# Why a frame is bad, as counted and shown.
REASONS: dict[str, str] = {
    "size": "not 48 bytes",
    "nan": "a NaN or infinite float",
    "range": "a value outside its range",
    "anomaly_type": "an unknown anomaly type",
    "symbol": "symbol empty, not ASCII, or not NUL-padded",
    "too_large": "a message past the size limit: ZeroMQ dropped it with the connection",
}


class BadFrame(ValueError):
    """A frame that is not a valid AISignal; `reason` is a key of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class AISignal(NamedTuple):
    """One decoded signal. A NamedTuple because the subscriber makes hundreds of thousands a
    second; it is immutable and cheap to build."""

    timestamp_ns: int
    symbol: str
    price_direction: float
    price_confidence: float
    sentiment_score: float
    anomaly_probability: float
    anomaly_type: int
    model_version: int

    @property
    def anomaly_name(self) -> str:
        return ANOMALY_TYPES.get(self.anomaly_type, f"unknown({self.anomaly_type})")

    def to_json(self) -> dict[str, object]:
        return self._asdict()


def encode(signal: AISignal) -> bytes:
    """The 48 bytes of a signal. Values are packed as given (float32 rounding applies); use
    `encode_raw` to build deliberately bad frames in tests."""
    return _STRUCT.pack(signal.timestamp_ns, signal.symbol.encode("ascii"),
                        signal.price_direction, signal.price_confidence, signal.sentiment_score,
                        signal.anomaly_probability, signal.anomaly_type, signal.model_version)


def encode_raw(timestamp_ns: int, symbol: bytes, direction: float, confidence: float,
               sentiment: float, probability: float, anomaly_type: int,
               model_version: int) -> bytes:
    """Pack fields without checking them (struct still enforces the integer widths)."""
    return _STRUCT.pack(timestamp_ns, symbol, direction, confidence, sentiment, probability,
                        anomaly_type, model_version)


_unpack = _STRUCT.unpack
_isfinite = math.isfinite


def decode(frame: bytes) -> AISignal:
    """Decode and check one frame; raises BadFrame with the reason it is not a signal."""
    if len(frame) != SIZE:
        raise BadFrame("size", f"{len(frame)} bytes, expected {SIZE}")
    ts, raw_symbol, direction, confidence, sentiment, probability, kind, version = \
        _unpack(frame)
    # One combined test on the hot path; the details are worked out only for a bad frame.
    if not (-1.0 <= direction <= 1.0 and 0.0 <= confidence <= 1.0
            and -1.0 <= sentiment <= 1.0 and 0.0 <= probability <= 1.0):
        _bad_float(direction, confidence, sentiment, probability)
    if kind > 3:
        raise BadFrame("anomaly_type", f"anomaly_type {kind} (known: 0-3)")
    try:
        symbol = raw_symbol.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        raise BadFrame("symbol", f"symbol {raw_symbol!r} is not ASCII") from None
    if not symbol or not symbol.isprintable():  # an inner NUL is not printable
        raise BadFrame("symbol", f"symbol {raw_symbol!r} is empty or not NUL-padded text")
    return AISignal(ts, symbol, direction, confidence, sentiment, probability, kind, version)


def _bad_float(direction: float, confidence: float, sentiment: float,
               probability: float) -> None:
    values = {"price_direction": direction, "price_confidence": confidence,
              "sentiment_score": sentiment, "anomaly_probability": probability}
    for name, value in values.items():
        if not _isfinite(value):
            raise BadFrame("nan", f"{name} is {value}")
    for name, value in values.items():
        _, low, high = FIELDS[name]
        if not low <= value <= high:  # type: ignore[operator]  # the floats' bounds are set
            raise BadFrame("range", f"{name} {value:g} outside {low:g}..{high:g}")
    raise AssertionError("unreachable: a float was out of range but none is")  # pragma: no cover


def describe(frame: bytes) -> str:
    """Why a frame is bad, or 'ok' (for logs and the bad-frame panel)."""
    try:
        decode(frame)
    except BadFrame as exc:
        return str(exc)
    return "ok"
