"""Exponential backoff with jitter: the one retry policy. The caller that tries again owns its
Backoff and shows the delay (the agent link's `retry in`); a connector tries once. (Within one
try, the handshake gate spaces the redials of dropped handshakes with one too.)"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.current = initial

    def next(self) -> float:
        """The next delay: grows by `factor` up to `maximum`, with up to 25 % jitter."""
        delay = self.current
        self.current = min(self.current * self.factor, self.maximum)
        return delay * (0.75 + random.random() * 0.25)

    def reset(self) -> None:
        self.current = self.initial
