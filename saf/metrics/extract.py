"""Reading a sample's numbers without walking it: a plan made once per frame shape.

A node's agent sends the same shape of frame every second (the same sections, the same
interfaces, the same keys), so the store need not walk each frame key by key to find its
numbers. `Shape.of(frame, names, values)` records, for every dict and list that
`flatten_lists` reads, which keys hold numbers (read with one `operator.itemgetter` call per
dict, in C) and which do not; `Shape.values(frame)` reads a later frame through that plan, and
gives None when the frame is not of the shape (a key added, gone or renamed, an interface
that appeared, a number that became null or the other way round). The store then flattens
that frame the slow way and makes a new shape. What `values` returns is always exactly what
`flatten_lists` would: a shape checks itself against the frame it was made from, and the
tests feed both ways the same frames.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

# What flatten_lists reads, said once for both ways of reading a frame: the cpu keys it
# takes (others there are ignored), and the sections that hold one dict per device, with the
# prefix of their metric names and the key that names the device.
CPU_KEYS = ("percent", "freq_mhz", "count")
SECTIONS = (("numa", "numa", "node"), ("gpus", "gpu", "index"), ("nics", "nic", "name"),
            ("disks", "disk", "name"))
_NUMBER = (float, int, bool)
Getter = Callable[[Any], tuple[Any, ...]]


def is_number(value: Any) -> bool:
    """What flatten counts as a number (bools are 0 and 1; None, text and lists are not)."""
    return type(value) in _NUMBER


def _getter(keys: Sequence[str]) -> Getter:
    """A C-speed reader of `keys` from a dict that always gives a tuple (itemgetter of one
    key gives the bare value)."""
    if not keys:
        return lambda _d: ()
    if len(keys) == 1:
        one = itemgetter(keys[0])
        return lambda d: (one(d),)
    return itemgetter(*keys)


class _Keys:
    """One dict of the frame: how many keys it has (None: not checked; flatten reads only
    some of cpu's), the keys that name it, hold numbers, hold something else, or are
    missing. The `others` and `absent` keys are read only to see they did not turn into
    numbers."""

    __slots__ = ("path", "size", "numbers", "others", "absent", "ident")

    def __init__(self, path: tuple[Any, ...], d: dict[str, Any], keys: Sequence[str] | None,
                 ident: str | None = None) -> None:
        looked = [k for k in (d if keys is None else keys) if k != ident]
        self.path = path
        self.size = len(d) if keys is None else None
        self.numbers = _getter([k for k in looked if k in d and is_number(d[k])])
        self.others = _getter([k for k in looked if k in d and not is_number(d[k])])
        self.absent = tuple(k for k in looked if k not in d)
        self.ident = None if ident is None else (ident, d[ident])


class Shape:
    """The plan for one frame shape: `names` are the metric names `values` fills, in order."""

    __slots__ = ("names", "_readers", "_lists", "_empty")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._readers: list[_Keys | tuple[Any, ...]] = []  # a dict, or the path of a list
        self._lists: list[tuple[tuple[Any, ...], int]] = []  # lists whose length is fixed
        self._empty: list[str] = []  # sections that were missing or empty

    @classmethod
    def of(cls, frame: dict[str, Any], names: list[str], values: Sequence[float]
           ) -> Shape | None:
        """The shape of `frame`, whose flattened names and values are `names` and `values`,
        or None when the frame has something the plan does not model (an item that is not
        a dict or has no name, a null among the per-core figures, more than three load
        averages): such frames are flattened the slow way every time."""
        shape = cls(names)
        if not shape._learn(frame):
            return None
        mine = shape.values(frame)
        return shape if mine is not None and list(mine) == list(values) else None

    def _learn(self, frame: dict[str, Any]) -> bool:
        cpu = frame.get("cpu")
        if not cpu:
            self._empty.append("cpu")
        elif not isinstance(cpu, dict):
            return False
        else:
            self._readers.append(_Keys(("cpu",), cpu, CPU_KEYS))
            for key in ("per_core", "load"):
                values = cpu.get(key)
                if key not in cpu:
                    self._readers.append(_Keys(("cpu",), cpu, (key,)))  # must stay away
                    continue
                if (not isinstance(values, list) or not all(is_number(v) for v in values)
                        or (key == "load" and len(values) > 3)):
                    return False
                self._lists.append((("cpu", key), len(values)))
                self._readers.append(("cpu", key))
        mem = frame.get("memory")
        if not mem:
            self._empty.append("memory")
        elif not isinstance(mem, dict):
            return False
        else:
            self._readers.append(_Keys(("memory",), mem, None))
        for section, _prefix, key in SECTIONS:
            items = frame.get(section)
            if not items:
                self._empty.append(section)
                continue
            if not isinstance(items, list):
                return False
            self._lists.append(((section,), len(items)))
            for i, item in enumerate(items):
                if not isinstance(item, dict) or item.get(key) is None:
                    return False
                self._readers.append(_Keys((section, i), item, None, ident=key))
        return True

    def values(self, frame: dict[str, Any]) -> array[float] | None:
        """The frame's numbers in `names` order, or None when it is not of this shape."""
        out: list[Any] = []
        extend = out.extend
        try:
            for section in self._empty:
                if frame.get(section):
                    return None
            for path, length in self._lists:
                if len(_at(frame, path)) != length:
                    return None
            for reader in self._readers:
                if isinstance(reader, tuple):
                    extend(_at(frame, reader))
                    continue
                d = _at(frame, reader.path)
                if reader.size is not None and len(d) != reader.size:
                    return None
                if reader.ident is not None and d[reader.ident[0]] != reader.ident[1]:
                    return None
                for value in reader.others(d):
                    if type(value) in _NUMBER:
                        return None
                for key in reader.absent:
                    if key in d:
                        return None
                extend(reader.numbers(d))
            # array() takes only numbers (a null or text that took a number's place raises).
            return array("d", out)
        except (KeyError, IndexError, TypeError, OverflowError):
            return None


def _at(frame: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        frame = frame[step]
    return frame
