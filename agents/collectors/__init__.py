"""The collectors: one module per kind of figure. Each is a class with

  name       the key in hello["collectors"]
  section    the key of its part of a sample ("cpu", "memory", "numa", "gpus", "nics", "disks")
  start()    returns None when it works here, else the reason it does not (said in the hello)
  collect()  the section's value for one sample (may raise: the agent reports it and goes on)
  close()    stop any helper process

A collector that cannot work is never asked to collect; the sample's `missing` says why.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Optional, overload

from ..context import Context

# One reading as a frame carries it (a section, or one item of a list section): field -> value,
# JSON-able. Its declared shape is protocol.py's TypedDict for the section; the collectors
# build it field by field (many under computed keys), so here it is a plain dict. Aliases are
# evaluated at import on the nodes' Python 3.9, hence Optional, not `|`.
Reading = dict[str, object]
Counters = Mapping[str, Optional[float]]


class Collector:
    name = "?"
    section = "?"
    source = ""  # where the figures come from, said in the hello ("/proc", "psutil", ...)
    note = ""    # a degraded mode worth saying in the hello (e.g. psutil missing)

    def __init__(self, machine: Context) -> None:
        self.machine = machine

    def start(self) -> str | None:
        return None

    def collect(self) -> Reading | list[Reading]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Rates:
    """Per-second rates of counters between two reads, keyed by (item, counter)."""

    def __init__(self) -> None:
        self.last: dict[object, tuple[float, Counters]] = {}

    def update(self, key: object, now: float, counters: Counters) -> dict[str, float | None]:
        """Rates (per second) of `counters` since the previous call with this key; None for
        each rate on the first call or when a counter went backwards (it was reset)."""
        before = self.last.get(key)
        self.last[key] = (now, counters)
        out: dict[str, float | None] = {}
        for name, value in counters.items():
            rate = None
            if before is not None and now > before[0]:
                prev = before[1].get(name)
                if prev is not None and value is not None and value >= prev:
                    rate = (value - prev) / (now - before[0])
            out[name] = rate
        return out

    def forget_except(self, keys: Container[object]) -> None:
        for key in [k for k in self.last if k not in keys]:
            del self.last[key]


def parse_cpulist(text: str | None) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]"""
    cpus: list[int] = []
    for part in (text or "").strip().split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.extend(range(int(lo), int(hi) + 1))
        else:
            cpus.append(int(part))
    return cpus


@overload
def round1(value: float) -> float: ...


@overload
def round1(value: None) -> None: ...


@overload
def round1(value: float | None) -> float | None: ...


def round1(value: float | None) -> float | None:

    return None if value is None else round(value, 1)
