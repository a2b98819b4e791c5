"""The one gate between a node's stdout and saf: a decoded frame is checked against the
protocol's typed definitions (saf.agents.protocol) and the ranges below before anything reads it.

What comes from a node is untrusted: a `cpu` that is a string, a `memory` that is a list, an
`interval` of 1e308 or NaN (which would switch off hang detection) make a bad frame, counted
by its reason (`bad_type`, `out_of_range`), and the node keeps its last good values. The
checker is built once from the TypedDicts' annotations, so a field added to the protocol is
checked by its declared type at once. Keys the protocol does not define are let through
unread: a newer agent may send more than this saf knows.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable, Sized
from typing import Any, Union

from saf.agents import protocol
from saf.agents.protocol import FrameError

MAX_ITEMS = 4096  # per list: cores, GPUs, NICs, disks, NUMA nodes, processes
PERCENT = (0.0, 100.0)
# A number's range by its field name; every other number must be finite and >= 0.
RANGES: dict[str, tuple[float, float]] = {
    "interval": (protocol.MIN_INTERVAL, protocol.MAX_INTERVAL),
    "percent": PERCENT, "per_core": PERCENT, "swap_percent": PERCENT,
    "util": PERCENT, "mem_util": PERCENT,
    "fan": (0.0, 255.0),  # percent of full speed: NVML says a fan may run past 100
    "temp": (-100.0, 250.0),  # °C: a sensor below freezing is real, above 250 is not
}

Check = Callable[[Any], None]


class _Bad(Exception):
    """A field that breaks the protocol; its path (innermost first) grows as it is raised
    through the containers, so a good frame never builds a path string."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
        self.path: list[str] = []


def check_frame(frame: dict[str, Any]) -> None:
    """Raise FrameError (bad_type or out_of_range, naming the field) unless `frame`, already
    decoded by protocol.decode, holds what the protocol says with sane values."""
    kind = str(frame["type"])
    try:
        _CHECKS[kind](frame)
    except _Bad as bad:
        raise FrameError(bad.reason, f"{kind}{''.join(reversed(bad.path))}: "
                                     f"{bad.message}") from None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(field: str, integer: bool) -> Check:
    low, high = RANGES.get(field, (0.0, math.inf))
    kind = "a whole number" if integer else "a number"

    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise _Bad("bad_type", f"expected {kind}, got {_shown(value)}")
        if not (low <= value <= high):  # NaN fails every comparison, so it lands here too
            span = f"{low:g} to {high:g}" if high != math.inf else f">= {low:g}"
            raise _Bad("out_of_range", f"{_shown(value)} is outside {span}")

    return check


def _plain(kind: type, name: str) -> Check:
    def check(value: Any) -> None:
        if not isinstance(value, kind):
            raise _Bad("bad_type", f"expected {name}, got {_shown(value)}")

    return check


def _optional(inner: Check) -> Check:
    def check(value: Any) -> None:
        if value is not None:
            inner(value)

    return check


def _container(kind: type[Sized], what: str, unit: str) -> Check:
    """The checks every list and object shares: its type and its size."""
    def check(value: Any) -> None:
        if not isinstance(value, kind):
            raise _Bad("bad_type", f"expected {what}, got {_shown(value)}")
        if len(value) > MAX_ITEMS:
            raise _Bad("out_of_range", f"{len(value)} {unit} (at most {MAX_ITEMS})")

    return check


def _list(inner: Check) -> Check:
    outer = _container(list, "a list", "items")

    def check(value: Any) -> None:
        outer(value)
        for index, item in enumerate(value):
            try:
                inner(item)
            except _Bad as bad:
                bad.path.append(f"[{index}]")
                raise

    return check


def _mapping(inner: Check) -> Check:
    outer = _container(dict, "an object", "keys")

    def check(value: Any) -> None:
        outer(value)
        for key, item in value.items():
            try:
                inner(item)
            except _Bad as bad:
                bad.path.append(f".{key}")
                raise

    return check


def _typed(cls: type) -> Check:
    fields = {name: _for(hint, name)
              for name, hint in typing.get_type_hints(cls).items()}

    def check(value: Any) -> None:
        if not isinstance(value, dict):
            raise _Bad("bad_type", f"expected an object, got {_shown(value)}")
        for name, field_check in fields.items():
            if name in value:
                try:
                    field_check(value[name])
                except _Bad as bad:
                    bad.path.append(f".{name}")
                    raise

    return check


def _for(hint: Any, field: str) -> Check:
    """The check for one annotation of the protocol's TypedDicts."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Union:
        inner = [a for a in args if a is not type(None)]
        assert len(inner) == 1, hint  # the protocol uses Optional[X] only
        return _optional(_for(inner[0], field))
    if origin is list:
        return _list(_for(args[0], field))
    if origin is dict:
        return _mapping(_for(args[1], field))
    if typing.is_typeddict(hint):
        return _typed(hint)
    if hint is bool:
        return _plain(bool, "true or false")
    if hint is int:
        return _number(field, integer=True)
    if hint is float:
        return _number(field, integer=False)
    if hint is str:
        return _plain(str, "a string")
    if hint is object:
        return lambda value: None
    raise TypeError(f"saf.agent.validate cannot check {hint!r} ({field})")


_CHECKS: dict[str, Check] = {kind: _typed(cls) for kind, cls in protocol.FRAME_FIELDS.items()}
