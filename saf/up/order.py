"""An order of parts that respects what each must come after (a topological order).

Ties keep the order the parts were given in, so the same declaration always gives the same
order; a cycle is reported as the chain that closes it (`a -> b -> a`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class CycleError(ValueError):
    """The parts wait for each other in a ring; `chain` names it, first part repeated last."""

    def __init__(self, chain: list[str]) -> None:
        super().__init__(" -> ".join(chain))
        self.chain = chain


def topological(after: Mapping[str, Sequence[str]]) -> list[str]:
    """The keys of `after` in an order where each comes after every part it names. A name
    that is not a key is ignored (the caller checked what may be named). Among parts ready
    at once, the one given first goes first."""
    rank = {name: i for i, name in enumerate(after)}
    waiting = {name: {d for d in deps if d in rank and d != name} for name, deps in
               after.items()}
    for name, deps in after.items():
        if name in deps:
            raise CycleError([name, name])
    done: list[str] = []
    placed: set[str] = set()
    while len(done) < len(waiting):
        ready = [n for n in waiting if n not in placed and waiting[n] <= placed]
        if not ready:
            raise CycleError(_cycle({n: waiting[n] - placed for n in waiting
                                     if n not in placed}, rank))
        first = min(ready, key=rank.__getitem__)
        done.append(first)
        placed.add(first)
    return done


def _cycle(left: Mapping[str, set[str]], rank: Mapping[str, int]) -> list[str]:
    """One ring among the parts left (each waits for another of them): walk from the first
    part given, always to the first part it waits for, until a part comes again."""
    node = min(left, key=rank.__getitem__)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(left[node], key=rank.__getitem__)
    return path[path.index(node):] + [node]
