"""The one gate between a node's stdout and saf: each line is decoded (agents/protocol.decode)
and converted into the typed frames below, msgspec Structs that declare every field of the
protocol's TypedDicts with its type and range, before anything reads it.

What comes from a node is untrusted: a `cpu` that is a string, a `memory` that is a list, an
`interval` of 1e308 or NaN (which would switch off hang detection) make a bad frame, counted
by its reason (`bad_type`, `out_of_range`), and the node keeps its last good values.

What the rest of saf reads of a frame is its Struct (the events' `typed`): the store, the view
and the Prometheus export read attributes, never keys. Keys the protocol does not define pass
unread: a newer agent may send more than this saf knows, so the Structs ignore them (their
values are not checked, and a bad one is no bad frame), while the decoded dict, kept beside
the Struct as the frame as sent, keeps them for `saf top --json`, and recordings keep the raw
line. A reading this saf does not know is therefore shown nowhere and graphed nowhere until
it is declared here and in the protocol (docs/agent.md, "Frames from a newer agent").

The Structs live in saf.metrics, the layer of the agents' readings, below the links that
decode them (saf.agentlink.link calls `read_frame`; the events, store and view import the
types); not in agents/protocol.py, because the protocol runs on the nodes (stdlib only,
Python 3.9). tests/test_agent_frames.py checks that the two declare the same fields with the
same types, so they cannot drift.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from saf.agents import protocol
from saf.agents.protocol import FrameError

MAX_ITEMS = 4096  # per list or object: cores, GPUs, NICs, disks, NUMA nodes, processes
PERCENT = (0.0, 100.0)
_FINITE = sys.float_info.max
# A number's range by its field name; every other number must be finite and >= 0.
RANGES: dict[str, tuple[float, float]] = {
    "interval": (protocol.MIN_INTERVAL, protocol.MAX_INTERVAL),
    "percent": PERCENT, "per_core": PERCENT, "swap_percent": PERCENT,
    "util": PERCENT, "mem_util": PERCENT,
    "fan": (0.0, 255.0),  # percent of full speed: NVML says a fan may run past 100
    "temp": (-100.0, 250.0),  # °C: a sensor below freezing is real, above 250 is not
}

# The numbers, by range (an int field takes no float and no bool: msgspec is strict).
Count = Annotated[int, Meta(ge=0)]
Amount = Annotated[float, Meta(ge=0.0, le=_FINITE)]  # finite: NaN and infinities are refused
Percent = Annotated[float, Meta(ge=PERCENT[0], le=PERCENT[1])]
Interval = Annotated[float, Meta(ge=RANGES["interval"][0], le=RANGES["interval"][1])]
Fan = Annotated[float, Meta(ge=RANGES["fan"][0], le=RANGES["fan"][1])]
Temp = Annotated[float, Meta(ge=RANGES["temp"][0], le=RANGES["temp"][1])]
_SIZE = Meta(max_length=MAX_ITEMS)
Missing = Annotated[dict[str, str], _SIZE]  # field or section -> why it is not measured


class _Part(Struct, omit_defaults=True):
    """A section or item of a frame: every field may be absent (UNSET), as in the protocol's
    `total=False` TypedDicts."""


class CollectorStatus(_Part):
    ok: bool | UnsetType = UNSET
    section: str | UnsetType = UNSET
    source: str | UnsetType = UNSET
    note: str | UnsetType = UNSET
    reason: str | UnsetType = UNSET


class CpuSection(_Part):
    percent: Percent | None | UnsetType = UNSET
    per_core: Annotated[list[Percent | None], _SIZE] | UnsetType = UNSET
    count: Count | UnsetType = UNSET
    freq_mhz: Amount | None | UnsetType = UNSET
    load: Annotated[list[Amount], _SIZE] | None | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET


class MemorySection(_Part):
    total: Count | UnsetType = UNSET
    available: Count | UnsetType = UNSET
    used: Count | UnsetType = UNSET
    percent: Percent | UnsetType = UNSET
    swap_total: Count | UnsetType = UNSET
    swap_used: Count | UnsetType = UNSET
    swap_percent: Percent | UnsetType = UNSET


class NumaNode(_Part):
    node: Count | UnsetType = UNSET
    cpus: str | UnsetType = UNSET
    cpu_count: Count | UnsetType = UNSET
    distances: Annotated[list[Count], _SIZE] | None | UnsetType = UNSET
    mem_total: Count | None | UnsetType = UNSET
    mem_free: Count | None | UnsetType = UNSET
    mem_available: Count | None | UnsetType = UNSET
    mem_used: Count | None | UnsetType = UNSET
    numa_hit: Count | UnsetType = UNSET
    numa_miss: Count | UnsetType = UNSET
    numa_foreign: Count | UnsetType = UNSET
    interleave_hit: Count | UnsetType = UNSET
    local_node: Count | UnsetType = UNSET
    other_node: Count | UnsetType = UNSET
    numa_hit_rate: Amount | None | UnsetType = UNSET
    numa_miss_rate: Amount | None | UnsetType = UNSET
    numa_foreign_rate: Amount | None | UnsetType = UNSET
    interleave_hit_rate: Amount | None | UnsetType = UNSET
    local_node_rate: Amount | None | UnsetType = UNSET
    other_node_rate: Amount | None | UnsetType = UNSET


class GpuProcess(_Part):
    pid: Count | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    type: str | UnsetType = UNSET
    mem_used: Count | None | UnsetType = UNSET


class GpuItem(_Part):
    index: Count | UnsetType = UNSET
    vendor: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    uuid: str | None | UnsetType = UNSET
    util: Percent | None | UnsetType = UNSET
    mem_util: Percent | None | UnsetType = UNSET
    mem_used: Count | None | UnsetType = UNSET
    mem_total: Count | None | UnsetType = UNSET
    gtt_used: Count | None | UnsetType = UNSET
    gtt_total: Count | None | UnsetType = UNSET
    temp: Temp | None | UnsetType = UNSET
    power_w: Amount | None | UnsetType = UNSET
    power_limit_w: Amount | None | UnsetType = UNSET
    clock_graphics_mhz: Amount | None | UnsetType = UNSET
    clock_sm_mhz: Amount | None | UnsetType = UNSET
    clock_mem_mhz: Amount | None | UnsetType = UNSET
    freq_mhz: Amount | None | UnsetType = UNSET
    fan: Fan | None | UnsetType = UNSET
    pcie_tx_bps: Amount | None | UnsetType = UNSET
    pcie_rx_bps: Amount | None | UnsetType = UNSET
    persistence: bool | None | UnsetType = UNSET
    driver: str | None | UnsetType = UNSET
    processes: Annotated[list[GpuProcess], _SIZE] | UnsetType = UNSET
    ane_power_w: Amount | None | UnsetType = UNSET
    cpu_power_w: Amount | None | UnsetType = UNSET
    soc_power_w: Amount | None | UnsetType = UNSET
    sys_power_w: Amount | None | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET


class NicItem(_Part):
    name: str | UnsetType = UNSET
    up: bool | None | UnsetType = UNSET
    operstate: str | None | UnsetType = UNSET
    mtu: Count | None | UnsetType = UNSET
    speed_mbps: Count | None | UnsetType = UNSET
    duplex: str | None | UnsetType = UNSET
    addresses: Annotated[list[str], _SIZE] | UnsetType = UNSET
    cluster: bool | UnsetType = UNSET
    rx_bytes: Count | UnsetType = UNSET
    tx_bytes: Count | UnsetType = UNSET
    rx_packets: Count | UnsetType = UNSET
    tx_packets: Count | UnsetType = UNSET
    rx_errors: Count | UnsetType = UNSET
    tx_errors: Count | UnsetType = UNSET
    rx_drops: Count | UnsetType = UNSET
    tx_drops: Count | UnsetType = UNSET
    rx_bps: Amount | None | UnsetType = UNSET
    tx_bps: Amount | None | UnsetType = UNSET
    rx_pps: Amount | None | UnsetType = UNSET
    tx_pps: Amount | None | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET


class DiskItem(_Part):
    name: str | UnsetType = UNSET
    read_count: Count | UnsetType = UNSET
    write_count: Count | UnsetType = UNSET
    read_bytes: Count | UnsetType = UNSET
    write_bytes: Count | UnsetType = UNSET
    read_bps: Amount | None | UnsetType = UNSET
    write_bps: Amount | None | UnsetType = UNSET


class FilesystemItem(_Part):
    mount: str | UnsetType = UNSET
    device: str | UnsetType = UNSET
    fstype: str | UnsetType = UNSET
    total_bytes: Count | UnsetType = UNSET
    used_bytes: Count | UnsetType = UNSET
    free_bytes: Count | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET


class _Frame(_Part, tag_field="type"):
    """A frame: its `type` is the tag that picks the Struct."""


class HelloFrame(_Frame, tag="hello"):
    protocol: Count | UnsetType = UNSET
    agent: str | UnsetType = UNSET
    host: str | UnsetType = UNSET
    os: str | UnsetType = UNSET
    system: str | UnsetType = UNSET
    arch: str | UnsetType = UNSET
    kernel: str | UnsetType = UNSET
    python: str | UnsetType = UNSET
    executable: str | UnsetType = UNSET
    pid: Count | UnsetType = UNSET
    interval: Interval | UnsetType = UNSET
    collectors: Annotated[dict[str, CollectorStatus], _SIZE] | UnsetType = UNSET
    modules: Annotated[dict[str, Annotated[dict[str, Any], _SIZE]], _SIZE] | UnsetType = UNSET


class SampleFrame(_Frame, tag="sample"):
    seq: Count | UnsetType = UNSET
    time: Amount | UnsetType = UNSET
    interval: Interval | UnsetType = UNSET
    cpu: CpuSection | UnsetType = UNSET
    memory: MemorySection | UnsetType = UNSET
    numa: Annotated[list[NumaNode], _SIZE] | UnsetType = UNSET
    gpus: Annotated[list[GpuItem], _SIZE] | UnsetType = UNSET
    nics: Annotated[list[NicItem], _SIZE] | UnsetType = UNSET
    disks: Annotated[list[DiskItem], _SIZE] | UnsetType = UNSET
    filesystems: Annotated[list[FilesystemItem], _SIZE] | UnsetType = UNSET
    missing: Missing | UnsetType = UNSET


class ErrorFrame(_Frame, tag="error"):
    message: str | UnsetType = UNSET
    collector: str | UnsetType = UNSET


class ReplyFrame(_Frame, tag="reply"):
    id: Count | UnsetType = UNSET
    cmd: Any = UNSET  # the command's name, echoed as saf sent it
    ok: bool | UnsetType = UNSET
    error: str | UnsetType = UNSET
    seconds: Amount | UnsetType = UNSET


Frame = HelloFrame | SampleFrame | ErrorFrame | ReplyFrame
FRAMES: dict[str, type[Frame]] = {"hello": HelloFrame, "sample": SampleFrame,
                                   "error": ErrorFrame, "reply": ReplyFrame}


def read_frame(line: str | bytes) -> tuple[dict[str, Any], Frame]:
    """The gate: `line` as the decoded dict (every key, a newer agent's too, for the store
    and recordings) and as its typed frame, or FrameError with the reason to count (the
    protocol's too_long, truncated, bad_json, not_object, unknown_type, version; then
    bad_type or out_of_range, naming the field)."""
    frame = protocol.decode(line)
    return frame, check(frame)


def check(frame: dict[str, Any]) -> Frame:
    """The typed form of `frame` (decoded by protocol.decode, so its `type` is known), or
    FrameError(bad_type | out_of_range) naming the field, its value and what was expected."""
    try:
        return msgspec.convert(frame, FRAMES[frame["type"]])
    except msgspec.ValidationError as exc:
        raise _rejected(frame, str(exc)) from None


# msgspec's message: "Expected `float` <= 100.0 - at `$.gpus[0].util`"
_MESSAGE = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>.*)`)?$", re.DOTALL)
_EXPECTED = re.compile(r"^Expected `(?P<type>[^`|\s]*)[^`]*`(?P<rest>.*)$", re.DOTALL)
_STEP = re.compile(r"\[(\d+)\]|\.([^.\[]+)")
_WORDS = {"object": "an object", "array": "a list", "int": "a whole number",
          "float": "a number", "str": "a string", "bool": "true or false"}


def _rejected(frame: dict[str, Any], text: str) -> FrameError:
    """msgspec's error in the gate's words: its reason, the field's path, the value found."""
    match = _MESSAGE.match(text)
    what, path = (match["what"], match["path"] or "") if match else (text, "")
    value = _at(frame, path)
    expected = _EXPECTED.match(what)
    if expected is None:  # not a message this gate knows: said as msgspec says it
        reason, message = "bad_type", what.replace("`", "")
    elif "of length" in expected["rest"] and isinstance(value, (list, dict)):
        unit = "items" if isinstance(value, list) else "keys"
        reason, message = "out_of_range", f"{len(value)} {unit} (at most {MAX_ITEMS})"
    elif expected["rest"].lstrip().startswith(("<", ">")):
        reason, message = "out_of_range", _outside(value, _field(path))
    else:
        word = _WORDS.get(expected["type"], expected["type"])
        shown = "" if value is _NOWHERE else f", got {_shown(value)}"
        reason, message = "bad_type", f"expected {word}{shown}"
    text = f"{frame['type']}{path}: {message}"
    return FrameError(reason, " ".join(text.split()))  # one line, whatever the keys hold


def _field(path: str) -> str:
    names = [key for index, key in _STEP.findall(path) if key]
    return names[-1] if names else ""


def _outside(value: Any, field: str) -> str:
    low, high = RANGES.get(field, (0.0, math.inf))
    if isinstance(value, float) and math.isinf(value) and high == math.inf:
        return f"{_shown(value)} is not a finite number"
    span = f"{low:g} to {high:g}" if high != math.inf else f">= {low:g}"
    return f"{_shown(value)} is outside {span}"


_NOWHERE = object()


def _at(frame: Any, path: str) -> Any:
    """The value at msgspec's `path` (`.cpu.per_core[3]`), or _NOWHERE when the walk fails
    (a key that holds `.` or `[`, or a value inside an object, which msgspec writes `[...]`)."""
    value = frame
    for index, key in _STEP.findall(path):
        try:
            value = value[int(index)] if index else value[key]
        except (KeyError, IndexError, TypeError):
            return _NOWHERE
    return value if path != "[...]" and not path.endswith("[...]") else _NOWHERE


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
