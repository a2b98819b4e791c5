"""The store's fast reader of a frame shape gives exactly what flattening gives, however the
frames change from one to the next (an interface appearing, a figure turning null or being
left out, an interface renamed), and falls back when a frame is not of its shape. Both read
the gate's Structs (saf.metrics.frames), as the store does."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from saf.agents.protocol import FrameError

from saf.metrics.extract import Shape
from saf.metrics.frames import SampleFrame, check
from saf.metrics.store import flatten_lists

FRAMES = Path(__file__).parent / "fixtures" / "frames"


def recorded_samples() -> list[dict]:
    """Real-shaped sample frames: the recorded NVIDIA, Apple and NUMA nodes."""
    out = []
    for name in ("node-nvidia-2x-rtx4090.jsonl", "node-apple-mac-studio-m2-ultra.jsonl",
                 "node-numa-2s-xeon-e5-2695v3.jsonl"):
        for line in (FRAMES / name).read_text().splitlines():
            event = json.loads(line)
            frame = json.loads(event["raw"]) if "raw" in event else {}
            if frame.get("type") == "sample":
                out.append(frame)
    return out


SAMPLES = recorded_samples()


def typed(frame: dict) -> SampleFrame:
    checked = check({"type": "sample", **frame})
    assert isinstance(checked, SampleFrame)
    return checked


def read(shape: Shape, frame: dict) -> list[float] | None:
    values = shape.values(typed(frame))
    return None if values is None else list(values)


def shape_of(frame: dict) -> Shape | None:
    return Shape.of(typed(frame), *flatten_lists(typed(frame)))


def test_recorded_frames_read_through_their_shape():
    assert SAMPLES, "the recorded frames are missing"
    for frame in SAMPLES:
        names, values = flatten_lists(typed(frame))
        shape = Shape.of(typed(frame), names, values)
        assert shape is not None
        assert shape.names == names
        later = copy.deepcopy(frame)  # the same shape, other figures
        later["cpu"]["percent"] = 12.5
        names2, values2 = flatten_lists(typed(later))
        assert names2 == names
        assert read(shape, later) == values2


def test_a_frame_of_another_shape_is_refused():
    frame = next(f for f in SAMPLES if f.get("nics"))
    shape = shape_of(frame)
    assert shape is not None
    grown = copy.deepcopy(frame)
    grown["nics"].append({"name": "eth9", "rx_bytes": 1})
    renamed = copy.deepcopy(frame)
    renamed["nics"][0]["name"] = "other0"
    nulled = copy.deepcopy(frame)
    nulled["cpu"]["percent"] = None
    left_out = copy.deepcopy(frame)
    del left_out["memory"]["total"]
    no_memory = copy.deepcopy(frame)
    del no_memory["memory"]
    for changed in (grown, renamed, nulled, left_out, no_memory):
        assert read(shape, changed) is None
    # A field this saf does not declare (a newer agent's) is not read: the same shape.
    new_key = copy.deepcopy(frame)
    new_key["memory"]["cached"] = 5
    assert read(shape, new_key) == list(flatten_lists(typed(frame))[1])
    # cpu is read field by field (flatten ignores its other fields): one that was missing
    # and now holds a number is a new shape too; a list that appears is a new shape.
    before = {"cpu": {"count": 8}}
    shape = shape_of(before)
    assert shape is not None
    assert read(shape, {"cpu": {"count": 8, "percent": 3.0}}) is None
    assert read(shape, {"cpu": {"count": 8, "load": [1.0]}}) is None
    assert read(shape, {"cpu": {"count": 4, "missing": {"freq_mhz": "x"}}}) == [4.0]


# A frame made of small parts whose keys, types and items all vary (those the gate refuses,
# a bool where a number goes, text, are left out of the run: the store never sees them).
NUMBERS = st.one_of(st.none(), st.booleans(), st.integers(0, 100),
                    st.floats(0.0, 100.0), st.just("text"))
KEYS = st.sampled_from(["rx_bytes", "tx_bytes", "mtu", "util", "temp", "mem_used", "up"])


def items(key: str, names: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(st.fixed_dictionaries({key: names}, optional={}).flatmap(
        lambda head: st.dictionaries(KEYS, NUMBERS, max_size=4).map(
            lambda rest: {**rest, **head})), max_size=3)


FRAME = st.fixed_dictionaries({}, optional={
    "cpu": st.fixed_dictionaries({}, optional={
        "percent": NUMBERS, "count": NUMBERS, "freq_mhz": NUMBERS,
        "per_core": st.lists(NUMBERS, max_size=4), "load": st.lists(NUMBERS, max_size=4)}),
    "memory": st.dictionaries(st.sampled_from(["total", "used", "swap_used", "percent"]),
                              NUMBERS, max_size=4),
    "nics": items("name", st.sampled_from(["eth0", "eth1", "lo"])),
    "gpus": items("index", st.integers(0, 2)),
    "disks": items("name", st.sampled_from(["sda", "nvme0n1"])),
    "numa": items("node", st.one_of(st.integers(0, 1), st.none())),
})


@settings(max_examples=150, deadline=None)
@given(st.lists(FRAME, min_size=2, max_size=6))
def test_a_shape_reads_exactly_what_flattening_reads(frames):
    """Whatever the next frame is, the shape of the one before either refuses it or reads
    the very numbers flattening finds, under the very names."""
    shape = None
    for raw in frames:
        try:
            frame = typed(raw)
        except FrameError:
            continue
        names, values = flatten_lists(frame)
        if shape is not None:
            got = shape.values(frame)
            if got is not None:
                assert shape.names == names
                assert list(got) == values
        shape = Shape.of(frame, names, values) or shape
