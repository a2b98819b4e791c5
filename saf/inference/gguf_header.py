"""The header of a GGUF model file (llama.cpp's format), read without loading the model.

A GGUF file is: the magic `GGUF`, a version (2 or 3), the tensor count and the metadata count
(uint64 each), then the metadata (key string, value type, value), then one info per tensor
(name, dimensions, ggml type, offset into the data), then the tensor data from the next
multiple of `general.alignment` (default 32). All little-endian; a string is a uint64 length
and UTF-8 bytes.

saf reads it with this small reader rather than the `gguf` package: the operator's side then
needs no numpy and no package that follows llama.cpp's releases, and every count and length
in the file is checked against the file's own size before it is believed, so a hostile or
broken file is refused with a reason (a SafError), never a MemoryError or a long loop. Arrays
(the tokenizer's 150,000 tokens) are skipped, keeping only their length; only scalars are kept.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from saf.errors import SafError

MAGIC = b"GGUF"
MAX_KEY = 65_535          # bytes of a metadata key (llama.cpp's own keys are under 64)
MAX_STRING = 16 << 20     # bytes of one string value (a chat template is a few KiB)
MAX_DIMS = 4              # GGML_MAX_DIMS
MAX_DEPTH = 2             # an array of arrays, no deeper
DEFAULT_ALIGNMENT = 32

# value type -> struct format of a fixed-size scalar (8: string and 9: array are not fixed)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
STRING, ARRAY = 8, 9

Scalar = int | float | bool | str


@dataclass(frozen=True)
class GgufHeader:
    """What saf needs from a GGUF file: its scalar metadata, the length of each array, the
    tensor count and the bytes of tensor data (file size minus where the data starts)."""

    path: Path
    version: int
    metadata: dict[str, Scalar] = field(repr=False)
    array_lengths: dict[str, int] = field(repr=False)
    tensors: int
    data_start: int
    data_bytes: int

    def number(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value


class _Reader:
    def __init__(self, f: BinaryIO, size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path

    def fail(self, why: str) -> SafError:
        return SafError(f"{self.path}: not a GGUF model saf can read: {why} "
                        f"(at byte {self.f.tell()})")

    def take(self, n: int) -> bytes:
        if n > self.size - self.f.tell():
            raise self.fail(f"{n} bytes asked, the file ends first")
        data = self.f.read(n)
        if len(data) != n:
            raise self.fail("the file ends early")
        return data

    def skip(self, n: int) -> None:
        if n > self.size - self.f.tell():
            raise self.fail(f"{n} bytes to skip, the file ends first")
        self.f.seek(n, 1)

    def unpack(self, fmt: str) -> Scalar:
        value: Scalar = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def u32(self) -> int:
        return int(self.unpack("<I"))

    def u64(self) -> int:
        return int(self.unpack("<Q"))

    def string(self, limit: int = MAX_STRING) -> str:
        n = self.u64()
        if n > limit:
            raise self.fail(f"a string of {n} bytes (at most {limit})")
        return self.take(n).decode("utf-8", "replace")

    def skip_strings(self, count: int) -> None:
        """Skip `count` length-prefixed strings, walking a 1 MiB buffer rather than reading
        each length from the file (a tokenizer's 150,000 tokens in a few reads, not 150,000)."""
        start = self.f.tell()
        buf, base, pos = b"", start, 0  # buf holds the file from `base`; pos is within it
        for _ in range(count):
            if pos + 8 > len(buf):
                base += pos
                if base > self.size:
                    break
                self.f.seek(base)
                buf, pos = self.f.read(1 << 20), 0
                if len(buf) < 8:
                    break
            (n,) = struct.unpack_from("<Q", buf, pos)
            if n > MAX_STRING:
                self.f.seek(base + pos)
                raise self.fail(f"a string of {n} bytes (at most {MAX_STRING})")
            pos += 8 + n
        else:
            if base + pos <= self.size:
                self.f.seek(base + pos)
                return
        self.f.seek(min(base + pos, self.size))
        raise self.fail(f"{count} strings from byte {start}: the file ends first")

    def skip_array(self, depth: int) -> int:
        kind, count = self.u32(), self.u64()
        if kind in _SCALARS:
            width = struct.calcsize(_SCALARS[kind])
            if count > (self.size - self.f.tell()) // width:
                raise self.fail(f"an array of {count} values longer than the file")
            self.skip(count * width)
        elif kind == STRING:
            if count > (self.size - self.f.tell()) // 8:  # each string has an 8-byte length
                raise self.fail(f"an array of {count} strings longer than the file")
            self.skip_strings(count)
        elif kind == ARRAY and depth < MAX_DEPTH:
            if count > (self.size - self.f.tell()) // 12:
                raise self.fail(f"an array of {count} arrays longer than the file")
            for _ in range(count):
                self.skip_array(depth + 1)
        else:
            raise self.fail(f"an array of value type {kind}")
        return count


def read_gguf(path: Path) -> GgufHeader:
    """The header of the GGUF file at `path` (SafError when it is not one saf can read)."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as exc:
        raise SafError(f"{path}: {exc.strerror or exc}") from None
    with f:
        r = _Reader(f, size, path)
        if size < 24 or r.take(4) != MAGIC:
            raise SafError(f"{path}: not a GGUF model (no GGUF magic at the start)")
        version = r.u32()
        if version not in (2, 3):
            raise r.fail(f"GGUF version {version} (saf reads 2 and 3)")
        tensors, kv_count = r.u64(), r.u64()
        # Each metadata entry takes at least 13 bytes (key length, type, one byte of value),
        # each tensor info at least 24: more than the file can hold is a lie.
        if kv_count > size // 13 or tensors > size // 24:
            raise r.fail(f"{kv_count} metadata entries and {tensors} tensors in {size} bytes")
        metadata: dict[str, Scalar] = {}
        arrays: dict[str, int] = {}
        for _ in range(kv_count):
            key = r.string(MAX_KEY)
            kind = r.u32()
            if kind in _SCALARS:
                metadata[key] = r.unpack(_SCALARS[kind])
            elif kind == STRING:
                metadata[key] = r.string()
            elif kind == ARRAY:
                arrays[key] = r.skip_array(1)
            else:
                raise r.fail(f"metadata {key!r} has value type {kind}")
        last_end = 0
        for _ in range(tensors):
            name = r.string(MAX_KEY)
            dims = r.u32()
            if dims > MAX_DIMS:
                raise r.fail(f"tensor {name!r} has {dims} dimensions (at most {MAX_DIMS})")
            r.skip(8 * dims)
            r.u32()  # ggml type: the data's size comes from the offsets and the file size
            last_end = max(last_end, r.u64())
        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or isinstance(alignment, bool) or not (
                0 < alignment <= 1 << 20):
            raise r.fail(f"general.alignment is {alignment!r}")
        data_start = -(-f.tell() // alignment) * alignment
        if data_start > size or last_end > size - data_start:
            raise r.fail("a tensor's data lies beyond the end of the file")
    return GgufHeader(path=path, version=version, metadata=metadata, array_lengths=arrays,
                      tensors=tensors, data_start=data_start, data_bytes=size - data_start)
