"""The agent's wire contract: JSON lines between the node agent and saf.

This module is shared by both sides: the agent (Python >= 3.9, stdlib only here) and saf's
agent link. Nothing in it may need a newer Python or a third-party package.

Agent -> saf, on stdout, one JSON object per line:

  {"type": "hello", "protocol": 1, "agent": "0.1.0", "host": "alpha", "os": "linux",
   "arch": "x86_64", "kernel": "6.1.0", "python": "3.11.7", "pid": 1234,
   "collectors": {"cpu": {"ok": true}, "nvml": {"ok": false, "reason": "no NVIDIA driver"}}}

  {"type": "sample", "seq": 7, "time": 1763900000.25, "interval": 1.0,
   "cpu": {...}, "memory": {...}, "numa": [...], "gpus": [...], "nics": [...], "disks": [...],
   "missing": {"numa": "not Linux", "gpus": "no GPU collector"}}

  {"type": "error", "message": "..."}             a collector failed; the agent goes on
  {"type": "reply", "id": 3, "ok": true, ...}      answer to a command that had an "id"

A section the node cannot measure is absent (or a field null) and `missing` says why: a value
is never a made-up zero.

saf -> agent, on stdin, one JSON object per line:

  {"cmd": "interval", "seconds": 0.5}             change the sampling interval
  (an unknown command gets an error reply, never a crash)

The agent exits when its stdin closes, so it never outlives its connection.
"""

import json
from collections.abc import Mapping
from typing import Optional, TypedDict, Union

PROTOCOL_VERSION = 1
# The agent's own version, in its hello: the agent runs on nodes where saf is not installed, so
# it cannot read saf's (the package metadata); raise it when the agent's behaviour changes.
AGENT_VERSION = "0.1.0"
FRAME_TYPES = ("hello", "sample", "error", "reply")
MAX_LINE = 4 * 1024 * 1024
MIN_INTERVAL = 0.05    # seconds between samples: the agent keeps to this range, and saf
MAX_INTERVAL = 3600.0  # refuses a frame that claims another (it would turn off hang detection)
# The oldest Python the agent runs on, and the exit status of its zipapp's first lines on an
# older one (which fails importing this module: `TypedDict` is 3.8's, `dict[...]` 3.9's).
MIN_PYTHON = (3, 9)
TOO_OLD_EXIT = 79


# -- the frames' fields, typed ----------------------------------------------------------------
# What the agent's collectors write (agents/main.py, agents/collectors/) and what saf reads
# (saf/metrics/view.py reads nothing else). `total=False`: a section or field a node cannot
# measure is absent, and `missing` says why. typing.TypedDict, not `X | Y`: the agent runs on
# Python 3.9.

Missing = dict[str, str]  # field or section -> why it is not measured


class CollectorStatus(TypedDict, total=False):
    ok: bool
    section: str
    source: str
    note: str
    reason: str


class HelloFrame(TypedDict, total=False):
    type: str
    protocol: int
    agent: str
    host: str
    os: str
    system: str
    arch: str
    kernel: str
    python: str
    executable: str
    pid: int
    interval: float
    collectors: dict[str, CollectorStatus]
    modules: dict[str, dict[str, object]]


class CpuSection(TypedDict, total=False):
    percent: Optional[float]
    per_core: list[Optional[float]]
    count: int
    freq_mhz: Optional[float]
    load: Optional[list[float]]
    missing: Missing


class MemorySection(TypedDict, total=False):
    total: int
    available: int
    used: int
    percent: float
    swap_total: int
    swap_used: int
    swap_percent: float


class NumaNode(TypedDict, total=False):
    node: int
    cpus: str  # a Linux cpulist: "0-13,28-41"
    cpu_count: int
    distances: Optional[list[int]]
    mem_total: Optional[int]
    mem_free: Optional[int]
    mem_available: Optional[int]  # as MemAvailable is reckoned, for this node's memory
    mem_used: Optional[int]  # mem_total - mem_available (what `free` calls used)
    numa_hit: int
    numa_miss: int
    numa_foreign: int
    interleave_hit: int
    local_node: int
    other_node: int
    numa_hit_rate: Optional[float]  # per second; the agent's own rate of each counter
    numa_miss_rate: Optional[float]
    numa_foreign_rate: Optional[float]
    interleave_hit_rate: Optional[float]
    local_node_rate: Optional[float]
    other_node_rate: Optional[float]


class GpuProcess(TypedDict, total=False):
    pid: int
    name: Optional[str]
    type: str  # compute, graphics, compute+graphics
    mem_used: Optional[int]


class GpuItem(TypedDict, total=False):
    index: int
    vendor: str  # nvidia, apple, intel, amd
    name: str
    uuid: Optional[str]
    util: Optional[float]
    mem_util: Optional[float]
    mem_used: Optional[int]
    mem_total: Optional[int]
    gtt_used: Optional[int]  # AMD: system RAM the GPU has mapped (GTT), apart from VRAM
    gtt_total: Optional[int]
    temp: Optional[float]
    power_w: Optional[float]
    power_limit_w: Optional[float]
    clock_graphics_mhz: Optional[float]
    clock_sm_mhz: Optional[float]  # NVIDIA's shader clock
    clock_mem_mhz: Optional[float]
    freq_mhz: Optional[float]  # Apple's GPU clock
    fan: Optional[float]
    pcie_tx_bps: Optional[float]
    pcie_rx_bps: Optional[float]
    persistence: Optional[bool]
    driver: Optional[str]  # the kernel driver (Intel: i915 or xe)
    processes: list[GpuProcess]
    ane_power_w: Optional[float]
    cpu_power_w: Optional[float]
    soc_power_w: Optional[float]
    sys_power_w: Optional[float]
    missing: Missing


class NicItem(TypedDict, total=False):
    name: str
    up: Optional[bool]
    operstate: Optional[str]
    mtu: Optional[int]
    speed_mbps: Optional[int]
    duplex: Optional[str]
    addresses: list[str]
    cluster: bool  # carries an address the cluster reaches this node by
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    rx_errors: int
    tx_errors: int
    rx_drops: int
    tx_drops: int
    rx_bps: Optional[float]  # bytes per second
    tx_bps: Optional[float]
    rx_pps: Optional[float]
    tx_pps: Optional[float]
    missing: Missing


class DiskItem(TypedDict, total=False):
    name: str
    read_count: int
    write_count: int
    read_bytes: int
    write_bytes: int
    read_bps: Optional[float]
    write_bps: Optional[float]


class FilesystemItem(TypedDict, total=False):
    mount: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int  # what an ordinary user may still write (df's "Avail")
    missing: Missing


class SampleFrame(TypedDict, total=False):
    type: str
    seq: int
    time: float
    interval: float
    cpu: CpuSection
    memory: MemorySection
    numa: list[NumaNode]
    gpus: list[GpuItem]
    nics: list[NicItem]
    disks: list[DiskItem]
    filesystems: list[FilesystemItem]
    missing: Missing


class ErrorFrame(TypedDict, total=False):
    type: str
    message: str
    collector: str


class ReplyFrame(TypedDict, total=False):
    type: str
    id: int
    cmd: object  # the command's name, echoed as saf sent it
    ok: bool
    error: str
    seconds: float


FRAME_FIELDS = {"hello": HelloFrame, "sample": SampleFrame, "error": ErrorFrame,
                "reply": ReplyFrame}


class FrameError(ValueError):
    """A line that is not a valid frame. `reason` is a short word for counting."""

    def __init__(self, reason: str, message: str) -> None:
        ValueError.__init__(self, message)
        self.reason = reason


def encode(frame: Mapping[str, object]) -> str:
    """One frame as a line of compact JSON (with the newline)."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n"


def decode(line: Union[str, bytes]) -> dict[str, object]:

    """Parse one line into a frame dict, or raise FrameError saying what is wrong."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")
    if len(line) > MAX_LINE:
        raise FrameError("too_long", "frame longer than %d bytes" % MAX_LINE)
    if not line.endswith("\n"):
        raise FrameError("truncated", "line ended without a newline (stream cut?)")
    try:
        frame = json.loads(line)
    except ValueError as exc:
        raise FrameError("bad_json", "not JSON: %s" % exc) from None
    if not isinstance(frame, dict):
        raise FrameError("not_object", "frame is not a JSON object")
    kind = frame.get("type")
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", "unknown frame type %r" % (kind,))
    if kind == "hello" and frame.get("protocol") != PROTOCOL_VERSION:
        raise FrameError("version", "agent speaks protocol %r, saf speaks %d"
                         % (frame.get("protocol"), PROTOCOL_VERSION))
    return frame
