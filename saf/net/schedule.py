"""Which pairs of nodes a speed test measures, and in what rounds.

A tester serves one test at a time and a node's NIC is shared by everything it sends, so a
round never has two tests touching the same node: `all` pairs are scheduled by the circle
method (n - 1 rounds for an even n, n for an odd n, which is the fewest possible), `star`
pairs (the head with every other node) one per round.
"""

from __future__ import annotations

from dataclasses import dataclass

from saf.defaults import NET_PAIRS
from saf.errors import UsageError

PAIRS = NET_PAIRS

Pair = tuple[str, str]


@dataclass(frozen=True)
class Schedule:
    mode: str
    rounds: tuple[tuple[Pair, ...], ...]

    @property
    def pairs(self) -> list[Pair]:
        return [p for r in self.rounds for p in r]

    def seconds(self, tests_per_pair: int, warmup: float, duration: float,
                overhead: float = 1.5) -> float:
        """About how long the schedule takes: every round as long as one pair's tests."""
        return len(self.rounds) * (tests_per_pair * (warmup + duration) + overhead)


def pairs(nodes: list[str], mode: str, head: str | None = None) -> list[Pair]:
    """The unordered pairs to measure (each is measured both ways), in node order."""
    if mode not in PAIRS:
        raise UsageError(f"pairs must be one of {', '.join(PAIRS)}, not {mode!r}")
    if mode == "star":
        centre = head if head in nodes else (nodes[0] if nodes else None)
        return [(centre, n) for n in nodes if n != centre] if centre else []
    return [(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:]]


def schedule(nodes: list[str], mode: str = "all", head: str | None = None) -> Schedule:
    """Rounds of pairs in which no node appears twice."""
    wanted = pairs(nodes, mode, head)
    if mode == "star":
        return Schedule(mode, tuple((p,) for p in wanted))
    order = {n: i for i, n in enumerate(nodes)}
    ring: list[str | None] = list(nodes) + ([None] if len(nodes) % 2 else [])
    rounds = []
    for _ in range(len(ring) - 1):
        this = []
        for i in range(len(ring) // 2):
            a, b = ring[i], ring[-1 - i]
            if a is not None and b is not None:
                this.append((a, b) if order[a] < order[b] else (b, a))
        if this:
            rounds.append(tuple(sorted(this, key=lambda p: (order[p[0]], order[p[1]]))))
        ring = [ring[0], ring[-1], *ring[1:-1]]
    rounds.reverse()  # the head's pairs first
    assert sorted(p for r in rounds for p in r) == sorted(wanted)
    return Schedule(mode, tuple(rounds))
