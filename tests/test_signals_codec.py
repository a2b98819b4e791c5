"""The AISignal codec: known bytes, round trips over every field value, every bad-frame reason."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saf.signals.codec import (
    FORMAT,
    REASONS,
    SEED_FORMAT,
    SIZE,
    AISignal,
    BadFrame,
    decode,
    encode,
    encode_raw,
)

KNOWN = AISignal(0x0102030405060708, "AAPL", 0.5, 1.0, -0.25, 0.75, 2, 7)
KNOWN_HEX = (
    "0807060504030201"                  # timestamp_ns, little-endian
    "4141504c000000000000000000000000"  # "AAPL" NUL-padded to 16
    "0000003f"                          # 0.5
    "0000803f"                          # 1.0
    "000080be"                          # -0.25
    "0000403f"                          # 0.75
    "02000000"                          # anomaly_type 2, then 3 bytes of padding
    "07000000"                          # model_version 7
)


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def test_known_bytes() -> None:
    """The codec writes exactly the C struct's bytes, and reads them back."""
    assert SIZE == 48
    assert encode(KNOWN).hex() == KNOWN_HEX
    assert decode(bytes.fromhex(KNOWN_HEX)) == KNOWN


def test_seed_format_is_the_same_bytes() -> None:
    """The seed's native "Q16sffff B I" gives the same 48 bytes on this (little-endian) box."""
    assert struct.calcsize(SEED_FORMAT) == struct.calcsize(FORMAT) == 48
    fields = (KNOWN.timestamp_ns, b"AAPL", 0.5, 1.0, -0.25, 0.75, 2, 7)
    assert struct.pack(SEED_FORMAT, *fields) == struct.pack(FORMAT, *fields)


def test_padding_bytes_are_ignored() -> None:
    """A C++ struct that is not zero-initialised may carry junk in its padding."""
    frame = bytearray.fromhex(KNOWN_HEX)
    frame[41:44] = b"\xde\xad\xbe"
    assert decode(bytes(frame)) == KNOWN


def test_full_sixteen_byte_symbol() -> None:
    """A symbol using all 16 bytes has no NUL and is still valid."""
    sig = KNOWN._replace(symbol="ABCDEFGHIJKLMNOP")
    assert decode(encode(sig)) == sig


symbols = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                  min_size=1, max_size=16)


def f32s(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, width=32, allow_nan=False)


signals = st.builds(AISignal, st.integers(0, 2**64 - 1), symbols, f32s(-1, 1), f32s(0, 1),
                    f32s(-1, 1), f32s(0, 1), st.integers(0, 3), st.integers(0, 2**32 - 1))


@settings(max_examples=500)
@given(signals)
def test_round_trip_every_valid_value(sig: AISignal) -> None:
    """Every valid signal survives encode then decode unchanged."""
    frame = encode(sig)
    assert len(frame) == SIZE
    assert decode(frame) == sig


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=100))
def test_any_bytes_decode_or_give_a_known_reason(frame: bytes) -> None:
    """Whatever arrives, decode either returns a signal or names one of the reasons."""
    try:
        sig = decode(frame)
    except BadFrame as exc:
        reason = exc.reason
    else:
        reason = None
        assert len(frame) == SIZE
        assert encode(sig)[:41] == frame[:41]
    if reason is not None:
        assert reason in REASONS


def bad(**fields: object) -> bytes:
    values = dict(timestamp_ns=1, symbol=b"AAPL", direction=0.0, confidence=0.5,
                  sentiment=0.0, probability=0.1, anomaly_type=0, model_version=1)
    values.update(fields)
    return encode_raw(*values.values())  # type: ignore[arg-type]


BAD_FRAMES = {
    "size: short": ("size", encode(KNOWN)[:40]),
    "size: long": ("size", encode(KNOWN) + b"\0"),
    "size: empty": ("size", b""),
    "nan direction": ("nan", bad(direction=math.nan)),
    "nan probability": ("nan", bad(probability=math.nan)),
    "inf sentiment": ("nan", bad(sentiment=math.inf)),
    "direction > 1": ("range", bad(direction=1.5)),
    "direction < -1": ("range", bad(direction=-1.01)),
    "confidence < 0": ("range", bad(confidence=-0.1)),
    "confidence > 1": ("range", bad(confidence=2.0)),
    "sentiment > 1": ("range", bad(sentiment=1.0001)),
    "probability > 1": ("range", bad(probability=1.5)),
    "anomaly type 4": ("anomaly_type", bad(anomaly_type=4)),
    "anomaly type 255": ("anomaly_type", bad(anomaly_type=255)),
    "empty symbol": ("symbol", bad(symbol=b"")),
    "non-ascii symbol": ("symbol", bad(symbol="ÄPL".encode("latin-1"))),
    "utf-8 symbol": ("symbol", bad(symbol="€UR".encode())),
    "NUL inside symbol": ("symbol", bad(symbol=b"AA\0PL")),
    "junk after NUL": ("symbol", bad(symbol=b"AAPL\0\0\0\0\0\0\0\0\0\0\0X")),
    "control character": ("symbol", bad(symbol=b"AA\nPL")),
}


@pytest.mark.parametrize("case", list(BAD_FRAMES))
def test_bad_frame_reasons(case: str) -> None:
    """Each kind of bad frame is refused with its reason and a detail that says what."""
    reason, frame = BAD_FRAMES[case]
    with pytest.raises(BadFrame) as info:
        decode(frame)
    assert info.value.reason == reason
    assert info.value.detail


# Reasons the decoder never gives: ZeroMQ refuses the message before saf sees a frame
# (tests/test_signals_bounds.py sends real oversize messages for it).
TRANSPORT_REASONS = {"too_large"}


def test_every_reason_is_tested() -> None:
    assert {reason for reason, _ in BAD_FRAMES.values()} | TRANSPORT_REASONS == set(REASONS)


def test_boundaries_are_valid() -> None:
    """Range ends are inclusive: -1, 0 and 1 are all good values."""
    sig = AISignal(0, "X", -1.0, 0.0, 1.0, 1.0, 3, 0)
    assert decode(encode(sig)) == sig
    assert decode(bad(direction=f32(1.0), confidence=1.0, probability=0.0)).price_direction == 1
