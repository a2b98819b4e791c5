"""The trading-signal stream: the AISignal codec, the signal book, the ZeroMQ subscriber, a
demo publisher, and recordings. See docs/signals.md."""

from saf.signals.book import BookSettings, BookSnapshot, SignalBook, Weights, ensemble_score
from saf.signals.codec import AISignal, BadFrame, decode, encode

__all__ = ["AISignal", "BadFrame", "BookSettings", "BookSnapshot", "SignalBook", "Weights",
           "decode", "encode", "ensemble_score"]
