"""The hub's local wire: how `saf serve`'s hub and the cockpits it feeds talk over a UNIX socket.

A message is a 5-byte header (one kind byte, then the payload's length as a big-endian
unsigned 32-bit number) and its payload:

- `J`: one JSON object (UTF-8). From the hub: first its hello (`{"saf_hub": 2, "cluster",
  "nodes", "inventory", "readonly", "interval", "signals", "signals_error"}`, or
  `{"saf_hub": 2, "error"}` when it refuses the cockpit), then typed messages of
  saf.serve.messages tagged by their `msg`: `{"msg": "agent", "event"}` (an agent event
  exactly as a recording writes it, `saf.recording.event_line`: a frame event carries its
  `raw` line, which the client checks again through the same gate), `{"msg": "reply",
  "req": id, "ok", "message"}`, `{"msg": "signal_state", "endpoint", "state", "message"}`.
  A message the client does not understand is counted (`HubLink.bad_messages`) and passed
  over. From a client: first `{"hello": 2, "token": str | null}`, then requests, each a typed
  message of saf.serve.requests tagged by its `op`: `{"req": id, "op": "signal", "node", "pid",
  "signal"}`, `{"op": "signals"}` (send me the signal stream from now on), `{"req": id,
  "op": "recipe", "recipe", "overrides", "selector", "check", "start_step", "resumed_from"}`
  (answered by `{"msg": "recipe_event", "req": id, "event"}` per event, `{"msg":
  "ask_password", "req": id, "ask": n, "prompt"}` when the run needs one, which the client
  answers with `{"op": "password", "req": id, "ask": n, "password"}`, and the reply), and
  `{"op": "cancel", "req": id}`. A request the hub does not understand is answered
  `{"msg": "reply", "req": id | null, "ok": false, "message"}` and counted; the connection
  stays.
- `S`: a batch of raw signal frames: the time they were received (ns since the epoch, 8 bytes)
  then, per frame, its length (2 bytes) and its bytes, exactly as the ZeroMQ subscriber got
  them (bad ones too: the client's book counts them as the hub's does).

A payload over `MAX_PAYLOAD` is a protocol error that ends the connection.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterable
from typing import Any

import msgspec

HEADER = struct.Struct(">cI")
JSON = b"J"
SIGNALS = b"S"
MAX_PAYLOAD = 16 * 1024 * 1024
VERSION = 2  # 2: the hub's messages are tagged by `msg` (saf.serve.messages)


class WireError(Exception):
    """The other end sent something that is not a hub message."""


def pack_json(data: dict[str, Any]) -> bytes:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return HEADER.pack(JSON, len(body)) + body


def pack_struct(message: msgspec.Struct) -> bytes:
    """A typed message (saf.serve.requests) as one JSON object, its tag included."""
    body = msgspec.json.encode(message)
    return HEADER.pack(JSON, len(body)) + body


def pack_json_text(text: str) -> bytes:
    """A JSON object already written as text (a recording's event line)."""
    body = text.rstrip("\n").encode()
    return HEADER.pack(JSON, len(body)) + body


def pack_signals(frames: Iterable[bytes], recv_ns: int) -> bytes:
    parts = [struct.pack(">q", recv_ns)]
    for frame in frames:
        frame = frame[:0xFFFF]
        parts.append(struct.pack(">H", len(frame)))
        parts.append(frame)
    body = b"".join(parts)
    return HEADER.pack(SIGNALS, len(body)) + body


def unpack_signals(body: bytes) -> tuple[list[bytes], int]:
    if len(body) < 8:
        raise WireError("a signal batch shorter than its timestamp")
    (recv_ns,) = struct.unpack_from(">q", body)
    frames: list[bytes] = []
    at = 8
    while at < len(body):
        if at + 2 > len(body):
            raise WireError("a signal batch cut inside a frame's length")
        (size,) = struct.unpack_from(">H", body, at)
        at += 2
        if at + size > len(body):
            raise WireError("a signal batch cut inside a frame")
        frames.append(body[at:at + size])
        at += size
    return frames, recv_ns


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """The next (kind, payload), or None at a clean end of the stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise WireError("the stream ended inside a message header") from None
        return None
    kind, size = HEADER.unpack(header)
    if kind not in (JSON, SIGNALS):
        raise WireError(f"unknown message kind {kind!r}")
    if size > MAX_PAYLOAD:
        raise WireError(f"a message of {size} bytes (the limit is {MAX_PAYLOAD})")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise WireError("the stream ended inside a message") from None
    return kind, body


def decode_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WireError("a JSON message that is not an object")
    return data
