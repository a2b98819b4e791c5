"""The signal book: what the stream says now, how fast and how late it is, and what went wrong.

The book never reads a clock: every call is given the receive time (ns since the epoch), so a
replay can run on recorded time and a test on scripted time. Its memory is bounded whatever
the stream does: symbols are capped, and latency samples, the rate history and the logs are
fixed-size rings.
"""

from __future__ import annotations

import heapq
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from saf.events import Emit, ignore
from saf.signals.codec import _STRUCT, ANOMALY_TYPES, SIZE, AISignal, BadFrame, decode
from saf.signals.events import SignalAnomaly, SignalGap

NS = 1_000_000_000
TOO_MANY_SYMBOLS = "too_many_symbols"
_unpack = _STRUCT.unpack  # a valid frame for a symbol past `max_symbols`


@dataclass(frozen=True)
class Weights:
    """Weights of the ensemble score, as the cluster's aggregator uses them."""

    price: float = 0.4
    sentiment: float = 0.3
    anomaly: float = 0.3


def ensemble_score(signal: AISignal, weights: Weights = Weights()) -> float:
    """The aggregator's ensemble score: the confidence-weighted price direction and the
    sentiment push the score up or down; anomaly probability always pulls it down.

        score = price·direction·confidence + sentiment·sentiment_score − anomaly·probability

    With the default weights (summing to 1) it lies in -1..0.7.
    """
    return (weights.price * signal.price_direction * signal.price_confidence
            + weights.sentiment * signal.sentiment_score
            - weights.anomaly * signal.anomaly_probability)


@dataclass
class BookSettings:
    weights: Weights = field(default_factory=Weights)
    anomaly_threshold: float = 0.8  # probability above which a signal is an anomaly
    gap_factor: float = 5.0  # silent for more than this many usual intervals is a gap
    min_intervals: int = 3  # intervals seen before a symbol's usual interval is trusted
    max_symbols: int = 4096
    latency_samples: int = 8192
    log_size: int = 200
    rate_every_s: float = 0.5  # how often rates are recomputed
    rate_window_s: float = 5.0  # rates shown are averaged over this long
    gap_every_s: float = 0.1  # how often silent symbols are looked for
    rate_history: int = 240  # points of total rate kept for the sparkline
    bad_examples: int = 20


class SymbolState:
    """What the book keeps per symbol. The newest frame is kept raw and decoded only when a
    face asks (`latest`): the hot path never builds a signal object."""

    __slots__ = ("symbol", "frame", "last_ts", "last_kind", "latest_recv_ns", "count",
                 "anomalies", "interval_ns", "intervals", "anomalous", "gap_open", "rate")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.frame = b""
        self.last_ts: int | None = None
        self.last_kind = 0
        self.latest_recv_ns = 0
        self.count = 0
        self.anomalies = 0  # frames that were anomalous
        self.interval_ns = 0.0  # usual interval between signals (EWMA of publisher times)
        self.intervals = 0
        self.anomalous = False
        self.gap_open = False
        self.rate = 0.0

    @property
    def latest(self) -> AISignal | None:
        return decode(self.frame) if self.frame else None


@dataclass(frozen=True)
class SymbolRow:
    symbol: str
    signal: AISignal
    score: float
    count: int
    rate: float
    age_s: float
    latency_s: float
    anomalous: bool
    anomalies: int
    usual_interval_s: float | None
    gap: bool


@dataclass(frozen=True)
class Latency:
    """Receive time minus the publisher's timestamp, over the recent samples. Includes the
    clock skew between the publisher's machine and this one: a negative value means the
    publisher's clock is ahead."""

    samples: int
    p50_s: float
    p90_s: float
    p99_s: float
    max_s: float
    min_s: float

    @property
    def skewed(self) -> bool:
        """Signals seem to arrive before they were made: the clocks disagree."""
        return self.min_s < 0


@dataclass(frozen=True)
class BookSnapshot:
    """A consistent copy of the book for a face to render."""

    now_ns: int
    rows: list[SymbolRow]  # the first `limit` matching symbols, by name
    total: int
    total_rate: float
    rate_history: list[float]
    latency: Latency | None
    bad: dict[str, int]
    bad_examples: list[tuple[int, str, str]]
    anomalies: list[SignalAnomaly]
    gaps: list[SignalGap]
    matching: int = 0  # symbols that match the filter; rows holds at most `limit` of them

    @property
    def bad_total(self) -> int:
        return sum(self.bad.values())


OnFrame = Callable[[int, AISignal | BadFrame, bytes], None]


class SignalBook:
    def __init__(self, settings: BookSettings | None = None, *, emit: Emit = ignore,
                 on_frame: OnFrame | None = None) -> None:
        self.settings = s = settings or BookSettings()
        self.emit = emit
        self.on_frame = on_frame  # called with every frame, decoded or bad (for --json)
        self.symbols: dict[str, SymbolState] = {}
        self.total_rate = 0.0
        self.bad: dict[str, int] = {}
        self.bad_examples: deque[tuple[int, str, str]] = deque(maxlen=s.bad_examples)
        self.latencies: deque[int] = deque(maxlen=s.latency_samples)
        self.rate_history: deque[float] = deque(maxlen=s.rate_history)
        self.anomaly_log: deque[SignalAnomaly] = deque(maxlen=s.log_size)
        self.gap_log: deque[SignalGap] = deque(maxlen=s.log_size)
        # (time, total, count per symbol) every rate_every_s, over the rate window
        self._marks: deque[tuple[int, int, dict[str, int]]] = deque(
            maxlen=max(2, int(s.rate_window_s / s.rate_every_s) + 1))
        self._gap_ns = 0
        self._by_raw: dict[bytes, SymbolState] = {}
        self.bad_total = 0
        # Compared with float32 values: round the threshold the same way, so a probability
        # sent as exactly the threshold is not "over" it.
        self._threshold = struct.unpack("<f", struct.pack("<f", s.anomaly_threshold))[0]

    # -- the hot path -------------------------------------------------------------------------

    def add(self, frame: bytes, recv_ns: int) -> AISignal | None:
        """Take one frame received at `recv_ns`; the decoded signal, or None if it was bad."""
        bad = self.bad_total
        self.add_many((frame,), recv_ns)
        return None if self.bad_total != bad else decode(frame)

    def add_many(self, frames: Iterable[bytes], recv_ns: int) -> None:
        """Take a batch of frames received together at `recv_ns` (one drain of the socket).

        This is the subscriber's hot path (hundreds of thousands of frames a second), so it
        unpacks and range-checks inline, finds the symbol by its raw 16 bytes, and leaves
        everything rare (bad frames, new symbols, anomalies, gaps) to other methods."""
        by_raw = self._by_raw
        latency = self.latencies.append
        threshold = self._threshold
        gap_factor = self.settings.gap_factor
        min_intervals = self.settings.min_intervals
        on_frame = self.on_frame
        unpack = _unpack
        for frame in frames:
            if len(frame) != SIZE:
                self._reject(frame, recv_ns)
                continue
            ts, raw, direction, confidence, sentiment, probability, kind, _ = unpack(frame)
            state = by_raw.get(raw)
            if state is None or kind > 3 or not (
                    -1.0 <= direction <= 1.0 and 0.0 <= confidence <= 1.0
                    and -1.0 <= sentiment <= 1.0 and 0.0 <= probability <= 1.0):
                state = self._first_sight(frame, raw, recv_ns)
                if state is None:
                    continue
            previous = state.last_ts
            state.frame = frame
            state.last_ts = ts
            state.count += 1
            latency(recv_ns - ts)
            if previous is not None:
                delta = ts - previous
                if delta > 0:
                    usual = state.interval_ns
                    if state.gap_open or (state.intervals >= min_intervals
                                          and delta > gap_factor * usual):
                        self._gap_ended(state, delta, recv_ns)
                    else:
                        state.interval_ns = usual + 0.1 * (delta - usual) \
                            if state.intervals else float(delta)
                        state.intervals += 1
            state.latest_recv_ns = recv_ns
            if kind or probability > threshold:
                state.anomalies += 1
                if not state.anomalous or state.last_kind != kind:
                    state.anomalous = True
                    self._anomaly(decode(frame), recv_ns)
            elif state.anomalous:
                state.anomalous = False
            state.last_kind = kind
            if on_frame is not None:
                on_frame(recv_ns, decode(frame), frame)

    def _first_sight(self, frame: bytes, raw: bytes, recv_ns: int) -> SymbolState | None:
        """A frame that failed the quick checks or whose raw symbol is not known yet: decode
        it fully; its state, or None when it is bad (counted) or over the symbol cap."""
        try:
            sig = decode(frame)
        except BadFrame as exc:
            self._bad(exc.reason, exc.detail, frame, recv_ns)
            if self.on_frame is not None:
                self.on_frame(recv_ns, exc, frame)
            return None
        state = self.symbols.get(sig.symbol)
        if state is None:
            if len(self.symbols) >= self.settings.max_symbols:
                self._bad(TOO_MANY_SYMBOLS, f"symbol {sig.symbol!r}: the book holds "
                          f"{len(self.symbols)} symbols", frame, recv_ns)
                return None
            state = self.symbols[sig.symbol] = SymbolState(sig.symbol)
        self._by_raw[raw] = state  # only valid symbols with a state: bounded like symbols
        return state

    def _reject(self, frame: bytes, recv_ns: int) -> None:
        try:
            decode(frame)
        except BadFrame as exc:
            self._bad(exc.reason, exc.detail, frame, recv_ns)
            if self.on_frame is not None:
                self.on_frame(recv_ns, exc, frame)

    def _gap_ended(self, state: SymbolState, delta_ns: int, recv_ns: int) -> None:
        """A symbol is heard again after a gap: one seen while it lasted (`gap_open`), or one
        seen only now in the publisher's timestamps. Intervals are learnt from the publisher's
        own clock (immune to receive batching and clock skew); a gap teaches nothing."""
        state.gap_open = False
        silent_ns = max(delta_ns, recv_ns - state.latest_recv_ns)  # the longer of the two views
        event = SignalGap(symbol=state.symbol, silent_s=silent_ns / NS,
                          usual_s=state.interval_ns / NS, ended=True, time=recv_ns / NS)
        self.gap_log.append(event)
        self.emit(event)

    def _anomaly(self, sig: AISignal, recv_ns: int) -> None:
        event = SignalAnomaly(symbol=sig.symbol, anomaly_type=sig.anomaly_type,
                              anomaly_name=ANOMALY_TYPES[sig.anomaly_type],
                              probability=sig.anomaly_probability,
                              timestamp_ns=sig.timestamp_ns, time=recv_ns / NS)
        self.anomaly_log.append(event)
        self.emit(event)

    def refused(self, reason: str, detail: str, recv_ns: int) -> None:
        """Count a frame refused before it reached the book (the subscriber's size limit)."""
        self._bad(reason, detail, b"", recv_ns)

    def _bad(self, reason: str, detail: str, frame: bytes, recv_ns: int) -> None:
        self.bad[reason] = self.bad.get(reason, 0) + 1
        self.bad_total += 1
        self.bad_examples.append((recv_ns, reason, f"{detail} [{frame[:48].hex()}]"))

    # -- the slow path: called a few times a second ---------------------------------------

    def tick(self, now_ns: int) -> None:
        """Notice symbols gone silent (at most every `gap_every_s`) and recompute rates (at
        most every `rate_every_s`). Cheap enough to call after every batch."""
        if now_ns - self._gap_ns >= self.settings.gap_every_s * NS:
            self._gap_ns = now_ns
            self.check_gaps(now_ns)
        last = self._marks[-1][0] if self._marks else None
        if last is not None and now_ns - last < self.settings.rate_every_s * NS:
            return
        counts = {name: st.count for name, st in self.symbols.items()}
        total = sum(counts.values())
        if last is not None and now_ns > last:
            # the sparkline's point: the rate since the previous mark
            self.rate_history.append((total - self._marks[-1][1]) / ((now_ns - last) / NS))
            # the figures shown: rates over the whole window, steady for slow symbols
            then, then_total, then_counts = self._marks[0]
            seconds = (now_ns - then) / NS
            self.total_rate = (total - then_total) / seconds
            for name, state in self.symbols.items():
                state.rate = (state.count - then_counts.get(name, 0)) / seconds
        self._marks.append((now_ns, total, counts))

    def check_gaps(self, now_ns: int) -> None:
        factor = self.settings.gap_factor
        for state in self.symbols.values():
            if state.gap_open or state.intervals < self.settings.min_intervals:
                continue
            silent = now_ns - state.latest_recv_ns
            if silent > factor * state.interval_ns:
                state.gap_open = True
                event = SignalGap(symbol=state.symbol, silent_s=silent / NS,
                                  usual_s=state.interval_ns / NS, ended=False, time=now_ns / NS)
                self.gap_log.append(event)
                self.emit(event)

    def total_count(self) -> int:
        return sum(s.count for s in self.symbols.values())

    def latency(self) -> Latency | None:
        if not self.latencies:
            return None
        values = sorted(self.latencies)
        n = len(values)

        def pct(p: float) -> float:
            return values[min(n - 1, int(p * n))] / NS

        return Latency(n, pct(0.5), pct(0.9), pct(0.99), values[-1] / NS, values[0] / NS)

    def snapshot(self, now_ns: int, *, symbols: str = "",
                 limit: int | None = None) -> BookSnapshot:
        """A copy for a face; `symbols` keeps only symbols containing that text (any case),
        and `limit` rows at most are made (a face shows what fits: with thousands of symbols
        the rows it cannot show must cost nothing), the first by name; `matching` says how
        many there are in all."""
        weights = self.settings.weights
        needle = symbols.upper()
        names = [n for n in self.symbols if needle in n.upper()] if needle else list(self.symbols)
        matching = len(names)
        if limit is not None and limit < matching:
            names = heapq.nsmallest(max(0, limit), names)
        else:
            names.sort()
        rows = []
        for name in names:
            st = self.symbols[name]
            sig = st.latest
            assert sig is not None
            rows.append(SymbolRow(
                symbol=name, signal=sig, score=ensemble_score(sig, weights), count=st.count,
                rate=st.rate, age_s=max(0.0, (now_ns - st.latest_recv_ns) / NS),
                latency_s=(st.latest_recv_ns - sig.timestamp_ns) / NS,
                anomalous=st.anomalous, anomalies=st.anomalies,
                usual_interval_s=st.interval_ns / NS if st.intervals else None,
                gap=st.gap_open))
        return BookSnapshot(
            now_ns=now_ns, rows=rows, total=self.total_count(), total_rate=self.total_rate,
            rate_history=list(self.rate_history), latency=self.latency(), bad=dict(self.bad),
            bad_examples=list(self.bad_examples), anomalies=list(self.anomaly_log),
            gaps=list(self.gap_log), matching=matching)

