"""One node's bounded history: a ring of samples, each a row of floats in one array.

A node sends the same metrics in the same order sample after sample, so a sample is stored
as one slice assignment of the frame's numbers (C speed) into a row-major matrix of
`capacity` rows: column `j` of every row is one metric. When the names change (an interface
came or went), the columns are reordered once so that the sample's names come first, in its
order, and the columns it does not carry follow, NaN in its row. A metric not seen for a
whole ring is dropped; a node has at most `max_metrics` names (a counter's rate counts).

Rates of counters (`nic.eth0.rx_bytes/s`, ...) are not stored: they are worked out when read,
from two consecutive rows and the agent's own sample times. A counter that goes backwards
(agent restarted, interface reset), a gap, or a new agent (`restart`) yields no rate for that
step, never a negative one.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence

NAN = float("nan")
RATE = "/s"  # a counter's rate: its name with this appended

COUNTERS = frozenset({
    "rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors",
    "rx_drops", "tx_drops", "read_bytes", "write_bytes", "read_count", "write_count",
    "numa_hit", "numa_miss", "numa_foreign", "interleave_hit", "local_node", "other_node",
})


def is_counter(name: str) -> bool:
    return name.rsplit(".", 1)[-1] in COUNTERS


def _nans(n: int) -> array[float]:
    return array("d", [NAN]) * n


class History:
    """One node's sample times and metric values, `capacity` samples deep."""

    def __init__(self, capacity: int, max_metrics: int) -> None:
        self.capacity = capacity
        self.max_metrics = max_metrics
        self.times = _nans(capacity)   # when saf received each sample
        self.clocks = _nans(capacity)  # the agent's time of each sample (for rates)
        self.count = 0                 # samples ever appended
        self.columns: dict[str, int] = {}  # metric name -> column
        self.width = 0
        self.data = array("d")         # capacity rows of `width` floats
        self.last_seen: list[int] = []  # per column: self.count after it was last filled
        self.counters = 0              # counter columns (each has a rate name too)
        self.dropped: set[str] = set()  # names refused because of max_metrics (bounded)
        self.restarts: list[int] = []  # sample counts where a new agent began (no rate there)
        self._names: list[str] | None = None  # the last sample's names, in order
        self._filled = 0   # the leading columns a sample fills (its names, in order)
        self._scatter: list[int] | None = None  # when names were refused: value i -> column
        self._tail = array("d")  # NaN for the columns after the filled ones
        self._seen_at = 0  # self.count after the last sample that followed the plan

    # -- writing --------------------------------------------------------------------------
    def append(self, when: float, agent_time: float | None, names: list[str],
               values: Sequence[float]) -> None:
        """One sample: `names` and `values` as `flatten_lists` (or a frame's shape) makes
        them."""
        if names is not self._names and names != self._names:
            self._replan(names)
        slot = self.count % self.capacity
        self.times[slot] = when
        self.clocks[slot] = agent_time if agent_time is not None else when
        start, width, filled = slot * self.width, self.width, self._filled
        if self._scatter is None:
            if len(values) != filled:  # a slice of another length would resize the matrix
                raise ValueError(f"{len(values)} values for {filled} names")
            self.data[start:start + filled] = (values if isinstance(values, array)
                                               else array("d", values))
        else:
            row = _nans(filled)
            for column, value in zip(self._scatter, values, strict=True):
                if column >= 0:
                    row[column] = value
            self.data[start:start + filled] = row
        if filled < width:
            self.data[start + filled:start + width] = self._tail
        self.count += 1
        self._seen_at = self.count
        if self.count % 64 == 0:
            self._forget()

    def restart(self) -> None:
        """A new agent: its counters start over, so no rate spans the two."""
        self.restarts = [c for c in self.restarts if self.count - c < self.capacity]
        self.restarts.append(self.count)

    def _settle(self) -> None:
        """Write the plan's "seen" marks into last_seen (kept implicit while it holds)."""
        for column in range(self._filled):
            self.last_seen[column] = max(self.last_seen[column], self._seen_at)

    def _replan(self, names: list[str]) -> None:
        """Reorder the columns: `names` first in their order (new ones added, as room
        allows), then the others."""
        self._settle()
        order: list[str] = []
        scatter: list[int] = []
        taken: set[str] = set()
        room = self.max_metrics - len(self.columns) - self.counters
        for name in names:
            if name in taken:  # the same name twice in one frame: the first one counts
                scatter.append(-1)
                continue
            if name not in self.columns:
                need = 2 if is_counter(name) else 1
                if need > room:
                    if len(self.dropped) < 64:
                        self.dropped.add(name)
                    scatter.append(-1)
                    continue
                room -= need
            taken.add(name)
            scatter.append(len(order))
            order.append(name)
        filled = len(order)
        order += [name for name in self.columns if name not in taken]
        self._rebuild(order)
        self._names, self._filled = names, filled
        self._scatter = None if len(scatter) == filled else scatter
        self._tail = _nans(self.width - filled)

    def _rebuild(self, order: list[str]) -> None:
        """Lay the matrix out with the columns in `order`: one strided copy a column."""
        old, old_width, old_columns = self.data, self.width, self.columns
        width = len(order)
        data = _nans(self.capacity * width)
        seen = [0] * width
        for j, name in enumerate(order):
            i = old_columns.get(name)
            if i is not None:
                data[j::width] = old[i::old_width]
                seen[j] = self.last_seen[i]
        self.data, self.width, self.last_seen = data, width, seen
        self.columns = {name: j for j, name in enumerate(order)}
        self.counters = sum(1 for name in order if is_counter(name))

    def _forget(self) -> None:
        """Drop metrics not seen for a whole ring, so churning names cannot grow memory."""
        self._settle()
        gone = {name for name, j in self.columns.items()
                if self.count - self.last_seen[j] >= self.capacity}
        if gone:
            self._rebuild([name for name in self.columns if name not in gone])
            self._names = None  # the plan may hold dropped columns: make a new one next time

    # -- reading --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every metric name, the counters' rates included."""
        return list(self.columns) + [n + RATE for n in self.columns if is_counter(n)]

    def positions(self, last: int | None) -> range:
        """Sample numbers, oldest first, of the last `last` samples (all kept when None)."""
        kept = min(self.count, self.capacity)
        n = kept if last is None else max(0, min(last, kept))
        return range(self.count - n, self.count)

    def _slice(self, ring: array[float], positions: range, width: int = 1,
               j: int = 0) -> array[float]:
        """Over `positions`, the ring's values (`width` 1), or column j of a `width`-wide
        matrix: two (strided) slices at most."""
        if not positions:
            return array("d")
        start, stop = positions.start % self.capacity, (positions.stop - 1) % self.capacity + 1
        if start < stop:
            return ring[start * width + j:(stop - 1) * width + j + 1:width]
        return ring[start * width + j::width] + ring[j:(stop - 1) * width + j + 1:width]

    def _raw(self, name: str, positions: range) -> array[float] | list[float] | None:
        """A metric's values (NaN where none) over `positions`; None when it is unknown."""
        j = self.columns.get(name)
        if j is not None:
            return self._slice(self.data, positions, self.width, j)
        if not name.endswith(RATE):
            return None
        j = self.columns.get(name[:-len(RATE)])
        if j is None or not is_counter(name[:-len(RATE)]):
            return None
        # One more sample before the first, when kept: the first rate needs it.
        first = max(positions.start - 1, self.count - min(self.count, self.capacity))
        wide = range(first, positions.stop)
        values = self._slice(self.data, wide, self.width, j)
        clocks = self._slice(self.clocks, wide)
        rates: list[float] = []
        restarts = self.restarts
        for k in range(len(wide) - len(positions), len(wide)):
            if k == 0 or (restarts and wide.start + k in restarts):
                rates.append(NAN)
                continue
            v0, v1, c0, c1 = values[k - 1], values[k], clocks[k - 1], clocks[k]
            # NaN compares false: a gap on either side yields no rate.
            rates.append((v1 - v0) / (c1 - c0) if c1 > c0 and v1 >= v0 else NAN)
        return rates

    def latest(self, name: str) -> float | None:
        if self.count == 0:
            return None
        raw = self._raw(name, self.positions(1))
        if not raw:
            return None
        v = raw[-1]
        return None if math.isnan(v) else v

    def values(self, name: str, last: int | None) -> list[float | None]:
        """The last `last` values of a metric, oldest first (sparklines read this for every
        row drawn)."""
        raw = self._raw(name, self.positions(last))
        if raw is None:
            return []
        total = sum(raw)
        if total == total:  # no NaN among them (a NaN makes the sum NaN): no gap to mark
            return list(raw)
        return [None if v != v else v for v in raw]  # NaN -> None

    def series(self, name: str, last: int | None,
               since: float | None) -> list[tuple[float, float | None]]:
        positions = self.positions(last)
        raw = self._raw(name, positions)
        if raw is None:
            return []
        times = self._slice(self.times, positions)
        return [(t, None if v != v else v) for t, v in zip(times, raw, strict=True)
                if since is None or t >= since]
