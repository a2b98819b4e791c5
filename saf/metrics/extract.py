"""Reading a sample's numbers without walking it: a plan made once per frame shape.

A node's agent sends the same shape of frame every second (the same sections, the same
interfaces, the same fields measured), so the store need not walk each frame field by field
to find its numbers. The frame is the gate's Struct (saf.metrics.frames.SampleFrame), whose
fields are fixed: what varies is which hold numbers (a figure may turn null or be left out,
UNSET) and how many items each list has. `Shape.of(frame, names, values)` records, for every
Struct that `flatten_lists` reads, which fields hold numbers (read with one
`operator.attrgetter` call per Struct, in C) and which do not; `Shape.values(frame)` reads a
later frame through that plan, and gives None when the frame is not of the shape (an
interface that appeared or was renamed, a number that became null or the other way round, a
section that came or went). The store then flattens that frame the slow way and makes a new
shape. What `values` returns is always exactly what `flatten_lists` would: a shape checks
itself against the frame it was made from, and the tests feed both ways the same frames.
"""

from __future__ import annotations

import functools
import typing
from array import array
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from msgspec import UNSET, Struct

from saf.metrics.frames import SampleFrame

# What flatten_lists reads, said once for both ways of reading a frame: the cpu fields it
# takes (others there are ignored), and the sections that hold one Struct per device, with
# the prefix of their metric names and the field that names the device.
CPU_KEYS = ("percent", "freq_mhz", "count")
SECTIONS = (("numa", "numa", "node"), ("gpus", "gpu", "index"), ("nics", "nic", "name"),
            ("disks", "disk", "name"))
_NUMBER = (float, int, bool)
Getter = Callable[[Any], tuple[Any, ...]]


def is_number(value: Any) -> bool:
    """What flatten counts as a number (bools are 0 and 1; None, UNSET, text and lists are
    not)."""
    return type(value) in _NUMBER


def named(item: Struct, key: str) -> bool:
    """Whether a section's item has the field that names it (flatten skips one that has
    not: its metrics would have no name)."""
    value = getattr(item, key)
    return value is not None and value is not UNSET


def _getter(fields: Sequence[str]) -> Getter:
    """A C-speed reader of `fields` from a Struct that always gives a tuple (attrgetter of
    one name gives the bare value)."""
    if not fields:
        return lambda _d: ()
    if len(fields) == 1:
        one = attrgetter(fields[0])
        return lambda d: (one(d),)
    return attrgetter(*fields)


class _Fields:
    """One Struct of the frame: the fields that name it, hold numbers, or hold something
    else (None, UNSET, text, lists). The `others` are read only to see their types did not
    change (one tuple of types compared, in C: a Struct has some twenty such fields, most
    of them UNSET; a change of type among them is a new shape, and a number among them
    always is)."""

    __slots__ = ("get", "numbers", "others", "other_types", "ident")

    def __init__(self, path: tuple[Any, ...], part: Struct, fields: Sequence[str] | None,
                 ident: str | None = None) -> None:
        looked = [f for f in (part.__struct_fields__ if fields is None else fields)
                  if f != ident]
        self.get = _path_getter(path)
        self.numbers = _getter([f for f in looked if is_number(getattr(part, f))])
        can = _numeric_fields(type(part))  # the others that never hold a number: not read
        self.others = _getter([f for f in looked if not is_number(getattr(part, f))
                               and f in can])
        self.other_types = tuple(map(type, self.others(part)))
        self.ident = None if ident is None else (ident, getattr(part, ident))


class Shape:
    """The plan for one frame shape: `names` are the metric names `values` fills, in order."""

    __slots__ = ("names", "_readers", "_lists", "_empty")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._readers: list[_Fields | tuple[Any, ...]] = []  # a Struct, or the path of a list
        self._lists: list[tuple[tuple[Any, ...], int]] = []  # lists whose length is fixed
        self._empty: list[str] = []  # sections (cpu, memory) that were left out

    @classmethod
    def of(cls, frame: SampleFrame, names: list[str], values: Sequence[float]
           ) -> Shape | None:
        """The shape of `frame`, whose flattened names and values are `names` and `values`,
        or None when the frame has something the plan does not model (an item with no name,
        a null among the per-core figures, more than three load averages): such frames are
        flattened the slow way every time."""
        shape = cls(names)
        if not shape._learn(frame):
            return None
        mine = shape.values(frame)
        return shape if mine is not None and list(mine) == list(values) else None

    def _learn(self, frame: SampleFrame) -> bool:
        cpu = frame.cpu
        if not cpu:  # UNSET
            self._empty.append("cpu")
        else:
            self._readers.append(_Fields(("cpu",), cpu, CPU_KEYS))
            for key in ("per_core", "load"):
                # null or left out reads as no list: the length 0 stands for both
                got: list[Any] = getattr(cpu, key) or []
                if not all(is_number(v) for v in got) or (key == "load" and len(got) > 3):
                    return False
                self._lists.append((("cpu", key), len(got)))
                self._readers.append(("cpu", key))
        if not frame.memory:
            self._empty.append("memory")
        else:
            self._readers.append(_Fields(("memory",), frame.memory, None))
        for section, _prefix, key in SECTIONS:
            items: list[Any] = getattr(frame, section) or []
            self._lists.append(((section,), len(items)))
            for i, item in enumerate(items):
                if not named(item, key):
                    return False  # flatten skips it
                self._readers.append(_Fields((section, i), item, None, ident=key))
        return True

    def values(self, frame: SampleFrame) -> array[float] | None:
        """The frame's numbers in `names` order, or None when it is not of this shape."""
        out: list[Any] = []
        extend = out.extend
        try:
            for section in self._empty:
                if getattr(frame, section):
                    return None
            for path, length in self._lists:
                if len(_at(frame, path) or ()) != length:
                    return None
            for reader in self._readers:
                if isinstance(reader, tuple):
                    extend(_at(frame, reader) or ())
                    continue
                d = reader.get(frame)
                if reader.ident is not None and getattr(d, reader.ident[0]) != reader.ident[1]:
                    return None
                if tuple(map(type, reader.others(d))) != reader.other_types:
                    return None
                extend(reader.numbers(d))
            # array() takes only numbers (a null that took a number's place raises).
            return array("d", out)
        except (AttributeError, IndexError, TypeError, OverflowError):
            return None


@functools.cache
def _numeric_fields(cls: type[Struct]) -> frozenset[str]:
    """The fields of a frame Struct whose declared type lets them hold a number."""
    def numeric(hint: Any) -> bool:
        return hint in _NUMBER or any(numeric(a) for a in typing.get_args(hint))
    hints = typing.get_type_hints(cls)
    return frozenset(name for name in cls.__struct_fields__ if numeric(hints[name]))


def _path_getter(path: tuple[Any, ...]) -> Callable[[Any], Any]:
    """`_at(frame, path)` as one call: `frame.cpu`, or `frame.gpus[1]`."""
    if len(path) == 1:
        return attrgetter(path[0])
    section, index = attrgetter(path[0]), path[1]
    return lambda frame: section(frame)[index]


def _at(frame: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        frame = frame[step] if type(step) is int else getattr(frame, step)
    return frame
