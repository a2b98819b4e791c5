"""The header of a .safetensors file: a little-endian uint64 N, then N bytes of JSON naming each
tensor's dtype, shape and [begin, end) byte offsets in the data that follows. Only the header
is read (never the weights); N is checked against the file's size and the format's own limit
(100 MB, as the safetensors library enforces) before it is read.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from saf.errors import SafError

MAX_HEADER = 100_000_000


def tensor_bytes(path: Path) -> int:
    """The bytes of tensor data the header declares (SafError when it is not a header)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            start = f.read(8)
            if len(start) != 8:
                raise SafError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", start)
            if n > MAX_HEADER or n > size - 8:
                raise SafError(f"{path}: not a safetensors file (a {n}-byte header in a "
                               f"{size}-byte file)")
            raw = f.read(n)
    except OSError as exc:
        raise SafError(f"{path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SafError(f"{path}: the safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise SafError(f"{path}: the safetensors header is not a JSON object")
    total = 0
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data):
            raise SafError(f"{path}: tensor {name!r} has data_offsets {offsets!r} outside "
                           f"the file's {data} bytes of data")
        total += offsets[1] - offsets[0]
    return total
