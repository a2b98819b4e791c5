"""The signal book on scripted streams: latest per symbol, rates, latency, gaps, anomalies,
ensemble score, bad frames and bounded memory. The book is given every time, so none of this
depends on the clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saf.signals.book import BookSettings, SignalBook, Weights, ensemble_score
from saf.signals.codec import AISignal, encode
from saf.signals.events import SignalAnomaly, SignalGap

NS = 1_000_000_000
T0 = 1_700_000_000 * NS


def sig(symbol: str, t_ns: int, *, direction: float = 0.5, confidence: float = 0.5,
        sentiment: float = 0.0, probability: float = 0.0, kind: int = 0,
        version: int = 1) -> AISignal:
    return AISignal(t_ns, symbol, direction, confidence, sentiment, probability, kind, version)


def feed(book: SignalBook, symbol: str, times_s: list[float], latency_s: float = 0.002,
         **fields: object) -> None:
    """Send `symbol` at each time (seconds after T0), received `latency_s` later."""
    for t in times_s:
        ts = T0 + int(t * NS)
        book.add(encode(sig(symbol, ts, **fields)), ts + int(latency_s * NS))  # type: ignore[arg-type]


def test_latest_per_symbol_and_counts() -> None:
    """The book keeps the newest signal of each symbol and counts them."""
    book = SignalBook()
    feed(book, "AAPL", [0.0, 0.1, 0.2], direction=0.25)
    feed(book, "MSFT", [0.05], direction=-0.5)
    snap = book.snapshot(T0 + NS)
    rows = {r.symbol: r for r in snap.rows}
    assert rows["AAPL"].count == 3
    assert rows["AAPL"].signal.timestamp_ns == T0 + int(0.2 * NS)
    assert rows["MSFT"].signal.price_direction == -0.5
    assert snap.total == 4
    assert [r.symbol for r in book.snapshot(T0, symbols="aa").rows] == ["AAPL"]


def test_rates_per_symbol_and_total() -> None:
    """Rates are frames per second between ticks, per symbol and in total, with history."""
    book = SignalBook()
    book.tick(T0)
    feed(book, "AAPL", [i * 0.1 for i in range(10)])  # 10 in the first second
    feed(book, "SPY", [0.0, 0.5])  # 2
    book.tick(T0 + NS)
    snap = book.snapshot(T0 + NS)
    rows = {r.symbol: r for r in snap.rows}
    assert rows["AAPL"].rate == pytest.approx(10)
    assert rows["SPY"].rate == pytest.approx(2)
    assert snap.total_rate == pytest.approx(12)
    assert snap.rate_history == [pytest.approx(12)]
    book.tick(T0 + NS + NS // 10)  # too soon: rates are not recomputed
    assert book.snapshot(T0).rate_history == [pytest.approx(12)]


def test_latency_percentiles_and_skew() -> None:
    """Latency is receive time minus the frame's timestamp; a negative one shows skew."""
    book = SignalBook()
    for i in range(100):
        ts = T0 + i * NS // 100
        book.add(encode(sig("AAPL", ts)), ts + (i + 1) * 1_000_000)  # 1..100 ms
    lat = book.latency()
    assert lat is not None
    assert lat.samples == 100
    assert lat.p50_s == pytest.approx(0.051)
    assert lat.p99_s == pytest.approx(0.100)
    assert lat.max_s == pytest.approx(0.100)
    assert not lat.skewed
    book.add(encode(sig("AAPL", T0 + 5 * NS)), T0 + 4 * NS)  # made "after" it arrived
    assert book.latency().skewed  # type: ignore[union-attr]


def test_gap_noticed_while_silent_and_when_it_ends() -> None:
    """A symbol silent for more than gap_factor usual intervals is a gap: noticed by tick
    while it lasts, and closed with its full length when the symbol is heard again."""
    events: list[object] = []
    book = SignalBook(BookSettings(gap_factor=5), emit=events.append)
    feed(book, "AAPL", [i * 0.1 for i in range(10)])  # every 100 ms until 0.9 s
    feed(book, "SPY", [i * 0.1 for i in range(30)])  # keeps going until 2.9 s
    book.tick(T0 + int(1.2 * NS))
    assert not [e for e in events if isinstance(e, SignalGap)]  # 0.3 s < 5 x 0.1 s
    book.tick(T0 + int(1.6 * NS))
    gaps = [e for e in events if isinstance(e, SignalGap)]
    assert len(gaps) == 1
    assert gaps[0].symbol == "AAPL"
    assert not gaps[0].ended
    assert gaps[0].usual_s == pytest.approx(0.1)
    assert {r.symbol: r.gap for r in book.snapshot(T0 + int(1.6 * NS)).rows} == \
        {"AAPL": True, "SPY": False}
    book.tick(T0 + int(2.5 * NS))  # reported once per gap
    assert len([e for e in events if isinstance(e, SignalGap)]) == 1
    feed(book, "AAPL", [3.0, 3.1])
    gaps = [e for e in events if isinstance(e, SignalGap)]
    assert len(gaps) == 2
    assert gaps[1].ended
    assert gaps[1].silent_s == pytest.approx(2.1)
    assert not book.snapshot(T0 + 3 * NS).rows[0].gap
    # the gap did not teach AAPL a slower usual interval
    assert book.symbols["AAPL"].interval_ns == pytest.approx(0.1 * NS)


def test_gap_seen_only_in_the_timestamps() -> None:
    """A silence nobody ticked through is still reported when the symbol comes back."""
    events: list[object] = []
    book = SignalBook(emit=events.append)
    feed(book, "AAPL", [0.0, 0.2, 0.4, 0.6, 5.0])
    gaps = [e for e in events if isinstance(e, SignalGap)]
    assert len(gaps) == 1
    assert gaps[0].ended
    assert gaps[0].silent_s == pytest.approx(4.4)


def test_no_gap_before_the_interval_is_known() -> None:
    """A symbol heard only twice has no usual interval yet, so silence is not a gap."""
    events: list[object] = []
    book = SignalBook(emit=events.append)
    feed(book, "AAPL", [0.0, 0.1])
    book.tick(T0 + 60 * NS)
    assert events == []


def test_anomalies_are_edge_triggered() -> None:
    """An anomaly is logged when a symbol becomes anomalous (probability over the threshold
    or a non-zero type) or its type changes, not on every anomalous frame."""
    events: list[object] = []
    book = SignalBook(BookSettings(anomaly_threshold=0.8), emit=events.append)
    feed(book, "AAPL", [0.0], probability=0.1)
    feed(book, "AAPL", [0.1, 0.2], probability=0.9)  # over threshold, type 0
    feed(book, "AAPL", [0.3], probability=0.5)  # back to normal
    feed(book, "AAPL", [0.4, 0.5], probability=0.2, kind=2)  # volume anomaly by type
    feed(book, "AAPL", [0.6], probability=0.2, kind=3)  # changes to flash
    feed(book, "MSFT", [0.0], probability=0.8)  # exactly the threshold is not over it
    anomalies = [e for e in events if isinstance(e, SignalAnomaly)]
    assert [(a.symbol, a.anomaly_name) for a in anomalies] == \
        [("AAPL", "none"), ("AAPL", "volume"), ("AAPL", "flash")]
    assert anomalies[0].probability == pytest.approx(0.9)
    row = book.snapshot(T0 + NS).rows[0]
    assert row.anomalies == 5
    assert row.anomalous
    assert len(book.snapshot(T0).anomalies) == 3


def test_ensemble_score_default_and_configured_weights() -> None:
    s = sig("AAPL", T0, direction=1.0, confidence=0.5, sentiment=-0.5, probability=0.25)
    assert ensemble_score(s) == pytest.approx(0.4 * 0.5 + 0.3 * -0.5 - 0.3 * 0.25)
    w = Weights(price=1.0, sentiment=0.0, anomaly=0.0)
    assert ensemble_score(s, w) == pytest.approx(0.5)
    book = SignalBook(BookSettings(weights=w))
    book.add(encode(s), T0)
    assert book.snapshot(T0).rows[0].score == pytest.approx(0.5)


def test_bad_frames_counted_by_reason_and_never_stop_the_stream() -> None:
    book = SignalBook()
    good = encode(sig("AAPL", T0))
    nan = bytearray(good)
    nan[24:28] = b"\x00\x00\xc0\x7f"  # NaN direction
    frames = [good, b"short", bytes(nan), good[:47] + b"\x09", good]
    book.add_many(frames, T0)
    snap = book.snapshot(T0)
    assert snap.bad == {"size": 1, "nan": 1}
    assert snap.total == 3  # the last byte is model_version's: still a good frame
    assert len(snap.bad_examples) == 2
    assert snap.bad_examples[0][1] == "size"


def test_memory_is_bounded() -> None:
    """Symbols past max_symbols are counted, not stored; rings keep their size."""
    settings_ = BookSettings(max_symbols=3, latency_samples=10, log_size=4, bad_examples=2)
    book = SignalBook(settings_)
    for i in range(6):
        feed(book, f"S{i}", [0.0, 0.1], probability=0.95 * (i % 2), kind=0)
    for _ in range(5):
        book.add(b"x", T0)
    assert len(book.symbols) == 3
    assert book.bad["too_many_symbols"] == 6
    assert len(book.latencies) == 6
    assert len(book.bad_examples) == 2
    feed(book, "S1", [i * 0.01 + 1 for i in range(50)], probability=0.9)
    assert len(book.latencies) == 10


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=60), max_size=50))
def test_any_bytes_never_crash_the_book(frames: list[bytes]) -> None:
    """Whatever bytes arrive, the book counts every frame as good or bad by reason."""
    book = SignalBook()
    book.add_many(frames, T0)
    book.tick(T0 + NS)
    snap = book.snapshot(T0 + NS)
    assert snap.total + snap.bad_total == len(frames)


def test_rates_are_steady_for_slow_symbols() -> None:
    """A symbol sending once a second shows about 1/s over the rate window, not 0 and 2 in
    turn from one half-second to the next."""
    book = SignalBook()
    for i in range(21):
        book.tick(T0 + i * NS // 2)
        if i % 2 == 0:
            feed(book, "EURUSD", [i / 2], latency_s=0.001)
    rates = []
    for i in range(21, 27):
        book.tick(T0 + i * NS // 2)
        if i % 2 == 0:
            feed(book, "EURUSD", [i / 2], latency_s=0.001)
        rates.append(book.snapshot(T0).rows[0].rate)
    assert all(0.8 <= r <= 1.2 for r in rates), rates
