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
  (later issues add more commands; an unknown command gets an error reply, never a crash)

The agent exits when its stdin closes, so it never outlives its connection.
"""

import json

PROTOCOL_VERSION = 1
FRAME_TYPES = ("hello", "sample", "error", "reply")
MAX_LINE = 4 * 1024 * 1024


class FrameError(ValueError):
    """A line that is not a valid frame. `reason` is a short word for counting."""

    def __init__(self, reason, message):
        ValueError.__init__(self, message)
        self.reason = reason


def encode(frame):
    """One frame as a line of compact JSON (with the newline)."""
    return json.dumps(frame, separators=(",", ":"), allow_nan=False) + "\n"


def decode(line):
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
        raise FrameError("bad_json", "not JSON: %s" % exc)
    if not isinstance(frame, dict):
        raise FrameError("not_object", "frame is not a JSON object")
    kind = frame.get("type")
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", "unknown frame type %r" % (kind,))
    if kind == "hello" and frame.get("protocol") != PROTOCOL_VERSION:
        raise FrameError("version", "agent speaks protocol %r, saf speaks %d"
                         % (frame.get("protocol"), PROTOCOL_VERSION))
    return frame
