"""The frame gate's Structs (saf.metrics.frames) against the protocol's TypedDicts
(agents/protocol.py, which the nodes run and so cannot import msgspec): the same fields with the
same types, so a field added on one side only fails here; and the gate's own verdicts."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

import msgspec
import pytest
from saf.agents import protocol
from saf.agents.protocol import FrameError

from saf.metrics import frames


def _plain(hint: Any) -> Any:
    """A type with its ranges (Annotated), UNSET and Optional spelling taken off, TypedDicts
    and Structs named alike: what both sides must agree on."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return _plain(args[0])
    if origin in (typing.Union, types.UnionType):
        kept = frozenset(_plain(a) for a in args if a is not msgspec.UnsetType)
        return next(iter(kept)) if len(kept) == 1 else ("union", kept)
    if origin is not None:
        return (origin, tuple(_plain(a) for a in args))
    if hint is Any:
        return object
    if isinstance(hint, type) and (typing.is_typeddict(hint)
                                   or issubclass(hint, msgspec.Struct)):
        return ("record", hint.__name__)
    return hint


def _records() -> list[tuple[type, type]]:
    """Every TypedDict the frames reach, with the Struct of the same name."""
    seen: dict[str, type] = {}

    def walk(hint: Any) -> None:
        if isinstance(hint, type) and typing.is_typeddict(hint):
            if hint.__name__ not in seen:
                seen[hint.__name__] = hint
                for inner in typing.get_type_hints(hint).values():
                    walk(inner)
            return
        for arg in typing.get_args(hint):
            walk(arg)

    for cls in protocol.FRAME_FIELDS.values():
        walk(cls)
    return [(typed, getattr(frames, name, None)) for name, typed in seen.items()]


@pytest.mark.parametrize(("typed", "struct"), _records(), ids=lambda c: getattr(c, "__name__", ""))
def test_each_struct_declares_its_typeddicts_fields_with_the_same_types(typed, struct) -> None:
    assert struct is not None, f"saf.metrics.frames has no {typed.__name__}"
    hints = typing.get_type_hints(typed)
    info = msgspec.inspect.type_info(struct)
    if info.tag_field is not None:  # a frame: `type` is its tag, not a field
        assert info.tag_field == "type"
        assert hints.pop("type") is str
        assert protocol.FRAME_FIELDS[info.tag] is typed
    theirs = {name: _plain(hint) for name, hint in hints.items()}
    mine = {name: _plain(hint)
            for name, hint in typing.get_type_hints(struct, include_extras=True).items()}
    assert mine == theirs


def test_every_frame_type_has_its_struct() -> None:
    assert set(frames.FRAMES) == set(protocol.FRAME_TYPES) == set(protocol.FRAME_FIELDS)


def _verdict(frame: dict[str, Any]) -> tuple[str, str]:
    try:
        frames.read_frame(json.dumps(frame) + "\n")
    except FrameError as exc:
        return exc.reason, str(exc)
    return "ok", ""


@pytest.mark.parametrize(("frame", "reason", "message"), [
    ({"cpu": {"per_core": [1.0, None, "x"]}}, "bad_type",
     "sample.cpu.per_core[2]: expected a number, got 'x'"),
    ({"gpus": [{"index": 0, "processes": [{"pid": -3}]}]}, "out_of_range",
     "sample.gpus[0].processes[0].pid: -3 is outside >= 0"),
    ({"gpus": [{"index": 0, "power_w": float("inf")}]}, "out_of_range",
     "sample.gpus[0].power_w: inf is not a finite number"),
    ({"gpus": [{"index": 0, "temp": -120.0}]}, "out_of_range",
     "sample.gpus[0].temp: -120.0 is outside -100 to 250"),
    ({"numa": [{"node": i} for i in range(4097)]}, "out_of_range",
     "sample.numa: 4097 items (at most 4096)"),
    ({"missing": {"gpus": 3}}, "bad_type", "sample.missing[...]: expected a string"),
    ({"disks": [{"name": "sda", "read_bytes": 1.5}]}, "bad_type",
     "sample.disks[0].read_bytes: expected a whole number, got 1.5"),
])
def test_a_wrong_type_or_range_anywhere_is_counted_by_its_reason(frame, reason, message) -> None:
    assert _verdict({"type": "sample", **frame}) == (reason, message)


def test_fields_a_newer_agent_adds_pass_the_gate_and_stay_in_the_frame() -> None:
    """A newer agent may send more than this saf knows: not checked, not lost (the store
    reads the decoded frame, recordings keep the raw line)."""
    line = json.dumps({"type": "sample", "seq": 1, "future": {"x": [1, "y"]},
                       "gpus": [{"index": 0, "util": 5.0, "hbm_temp": "warm"}]}) + "\n"
    frame, typed = frames.read_frame(line)
    assert frame["future"] == {"x": [1, "y"]}
    assert frame["gpus"][0]["hbm_temp"] == "warm"
    assert isinstance(typed, frames.SampleFrame)
    assert typed.seq == 1
    assert typed.gpus[0].util == 5.0
    assert typed.cpu is msgspec.UNSET
